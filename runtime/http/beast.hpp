// The one way runtime/http includes Boost.Asio networking and Boost.Beast.
// runtime/asio.hpp comes first: it includes <utility> before any Asio header,
// which GCC 12 needs in C++20 mode (docs: STYLE.md, "Toolchain facts").
// Include it only from .cpp files of runtime/http, runtime/serve, samples/participants and tests;
// no public header may need it.
#pragma once

#include "runtime/asio.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
