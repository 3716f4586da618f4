// Fuzz target: a participant's HTTP response as the client hands it to
// classify_response(): the input is the status code (2 bytes), then the
// reason phrase, the Retry-After header and the body, separated by
// newlines. Also parse_retry_after() and parse_url() on parts of it, and
// quote_body() on the body. Properties: nothing crashes; a 2xx with a
// JSON body is ok with that value; every other outcome has an error class
// and a message that is valid UTF-8 (it is stored and printed); a delay
// from Retry-After is never negative nor more than a day.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/http/request.hpp"
#include "runtime/value/utf8.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

// The next newline-separated part of `rest`.
std::string_view take_line(std::string_view& rest) {
  const size_t cut = rest.find('\n');
  std::string_view part = rest.substr(0, cut);
  rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
  return part;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int status = (data[0] | (data[1] << 8)) % 1000;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::string_view reason = take_line(rest);
  const std::string_view retry_after = take_line(rest);
  const std::string_view body = rest;
  constexpr int64_t kNow = 1'767'225'600'000;

  saga::ServiceOutcome out = saga::http::classify_response(status, reason, body, retry_after, kNow,
                                                           "POST http://127.0.0.1:1/op");
  if (out.ok) {
    saga::fuzz::fuzz_check(status >= 200 && status < 300, "only a 2xx is ok");
  } else {
    saga::fuzz::fuzz_check(!out.error_class.empty(), "a failed response has an error class");
    saga::fuzz::fuzz_check(saga::is_valid_utf8(out.message), "an error message is valid UTF-8");
  }
  if (auto delay = saga::http::parse_retry_after(retry_after, kNow)) {
    saga::fuzz::fuzz_check(*delay >= 0 && *delay <= 24LL * 3600 * 1000,
                           "a Retry-After delay is between 0 and a day");
  }
  std::string error;
  (void)saga::http::parse_url(reason, &error);
  (void)saga::http::quote_body(body, 64);
  return 0;
}
