// The one way the project includes Boost.Asio. With GCC 12 and -std=c++20,
// Asio's coroutine headers (awaitable.hpp) need <utility> first; including
// Asio only through this wrapper keeps that fix in one place. Include it only
// from .cpp files: Asio is heavy, and no public header may need it.
#pragma once

#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
