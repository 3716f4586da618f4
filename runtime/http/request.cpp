// Urls, request targets, trace context, Retry-After and response
// classification for the HTTP transport (see request.hpp and docs/http.md).
#include "runtime/http/request.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "runtime/value/utf8.hpp"

namespace saga::http {
namespace {

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

// FNV-1a, 64 bits, with a seed mixed into the offset basis.
uint64_t fnv1a(std::string_view text, uint64_t seed) {
  uint64_t h = 14695981039346656037ull ^ (seed * 0x9E3779B97F4A7C15ull);
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

bool is_method_without_body(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "DELETE";
}

}  // namespace

std::string Url::authority() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::optional<Url> parse_url(std::string_view url, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<Url> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  if (iequals_prefix(url, "https://")) {
    return fail(
        fmt::format("https is not supported yet: '{}' (use http://; TLS termination "
                    "belongs in a proxy for now)",
                    url));
  }
  if (!iequals_prefix(url, "http://")) {
    return fail(fmt::format("'{}' is not an http:// url", url));
  }
  std::string_view rest = url.substr(7);
  if (auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return fail(fmt::format("'{}': user information in urls is not supported", url));
  }
  Url out;
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail(fmt::format("'{}': unclosed '['", url));
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail(fmt::format("'{}': bad host", url));
      port_text = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty()) return fail(fmt::format("'{}' has no host", url));
  std::transform(out.host.begin(), out.host.end(), out.host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!port_text.empty()) {
    unsigned long port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port > 65535) {
        return fail(fmt::format("'{}' has a bad port", url));
      }
      port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (port == 0 || port > 65535) return fail(fmt::format("'{}' has a bad port", url));
    out.port = static_cast<uint16_t>(port);
  }
  size_t q = path.find('?');
  if (q != std::string_view::npos) {
    out.query = std::string(path.substr(q + 1));
    path = path.substr(0, q);
  }
  out.path = std::string(path);
  out.base_path = out.path;
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  return out;
}

std::string url_encode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string arg_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

std::optional<Target> build_target(const ServiceCall& call, const Url& url, std::string* error) {
  Target t;
  nlohmann::json args = call.args.is_object() ? call.args : nlohmann::json::object();
  std::string path;
  if (call.method.empty()) {
    t.method = "POST";
    path = "/" + call.op;
  } else {
    t.method = call.method;
    std::transform(t.method.begin(), t.method.end(), t.method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    // Substitute ${name} placeholders; the compiler checked their shape.
    std::string_view tpl = call.path;
    size_t i = 0;
    while (i < tpl.size()) {
      size_t open = tpl.find("${", i);
      if (open == std::string_view::npos) {
        path.append(tpl.substr(i));
        break;
      }
      path.append(tpl.substr(i, open - i));
      size_t close = tpl.find('}', open);
      if (close == std::string_view::npos) {
        path.append(tpl.substr(open));
        break;
      }
      std::string name(tpl.substr(open + 2, close - open - 2));
      auto it = args.find(name);
      if (it == args.end() && call.args.is_object() && call.args.contains(name)) {
        // A placeholder used twice: the first use took it out of args.
        path += url_encode(arg_text(call.args[name]));
      } else if (it == args.end()) {
        if (error) {
          *error = fmt::format("the route of {}.{} ({} \"{}\") needs the argument '{}'",
                               call.service, call.op, t.method, call.path, name);
        }
        return std::nullopt;
      } else {
        path += url_encode(arg_text(*it));
        args.erase(it);
      }
      i = close + 1;
    }
  }
  t.target = url.base_path + path;
  std::string query = url.query;
  if (is_method_without_body(t.method)) {
    for (auto& [key, value] : args.items()) {
      if (!query.empty()) query += '&';
      query += url_encode(key) + "=" + url_encode(arg_text(value));
    }
  } else {
    t.body = std::move(args);
  }
  if (!query.empty()) t.target += (t.target.find('?') == std::string::npos ? "?" : "&") + query;
  if (t.target.empty()) t.target = "/";
  return t;
}

std::string traceparent(const std::string& instance_id, const std::string& step, uint32_t attempt,
                        bool compensation) {
  std::string trace;
  for (char c : instance_id) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      trace += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (c != '-') {
      trace.clear();
      break;
    }
  }
  if (trace.size() != 32 || trace.find_first_not_of('0') == std::string::npos) {
    trace = fmt::format("{:016x}{:016x}", fnv1a(instance_id, 1), fnv1a(instance_id, 2));
  }
  uint64_t span = fnv1a(fmt::format("{}#{}#{}", step, attempt, compensation ? "undo" : "do"), 3);
  if (span == 0) span = 1;
  return fmt::format("00-{}-{:016x}-01", trace, span);
}

std::optional<int64_t> parse_retry_after(std::string_view value, int64_t now_unix_ms) {
  constexpr int64_t kMaxMs = 86'400'000;
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (value.size() > 9) return kMaxMs;
    int64_t seconds = std::stoll(std::string(value));
    return std::min(seconds * 1000, kMaxMs);
  }
  std::string text(value);
  // IMF-fixdate, then the obsolete RFC 850 and asctime forms (RFC 9110 5.6.7).
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), format, &tm);
    if (!end || *end != '\0') continue;
    int64_t at_ms = static_cast<int64_t>(timegm(&tm)) * 1000;
    return std::clamp<int64_t>(at_ms - now_unix_ms, 0, kMaxMs);
  }
  return std::nullopt;
}

// The body goes into an error message, which is stored and printed: bytes
// that are not UTF-8 (any participant can send them) become U+FFFD.
std::string quote_body(std::string_view body, size_t max) {
  if (body.size() <= max) return scrub_utf8(body);
  size_t cut = max;
  // Do not split a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  return fmt::format("{}... ({} bytes)", scrub_utf8(body.substr(0, cut)), body.size());
}

bool is_localhost_name(std::string_view host) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  std::string h = lower(host);
  if (!h.empty() && h.back() == '.') h.pop_back();  // The absolute form, "localhost.".
  return h == "localhost" || (h.size() > 10 && h.compare(h.size() - 10, 10, ".localhost") == 0);
}

ServiceOutcome classify_response(int status, std::string_view reason, std::string_view body,
                                 std::string_view retry_after, int64_t now_unix_ms,
                                 const std::string& what) {
  ServiceOutcome out;
  // The reason phrase and Retry-After are the server's bytes, like its body:
  // they go into a message that is stored and printed, so it must be UTF-8.
  auto status_text = [&] {
    return reason.empty() ? fmt::format("HTTP {}", status)
                          : fmt::format("HTTP {} {}", status, scrub_utf8(reason));
  };
  auto with_body = [&](std::string text) {
    if (!body.empty()) text += ": " + quote_body(body);
    return text;
  };
  if (status >= 200 && status < 300) {
    bool blank = std::all_of(body.begin(), body.end(),
                             [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
    if (blank) {
      out.ok = true;
      out.result = nullptr;
      return out;
    }
    auto parsed = nlohmann::json::parse(body, nullptr, false);
    if (parsed.is_discarded()) {
      out.error_class = "error";
      out.message =
          fmt::format("{}: service returned a non-JSON body: {}", what, quote_body(body, 200));
      return out;
    }
    out.ok = true;
    out.result = std::move(parsed);
    return out;
  }
  if (status == 408) {
    out.error_class = "timeout";
    out.message = with_body(fmt::format("{}: {}", what, status_text()));
    return out;
  }
  if (status == 429 || (status >= 500 && status < 600)) {
    out.error_class = "unavailable";
    out.message = with_body(fmt::format("{}: {}", what, status_text()));
    if (auto ms = parse_retry_after(retry_after, now_unix_ms)) {
      out.retry_after_ms = *ms;
      out.message += fmt::format(" (Retry-After: {})", scrub_utf8(retry_after));
    }
    return out;
  }
  if (status >= 400 && status < 500) {
    out.error_class = "rejected";
    out.message = with_body(fmt::format("{}: {}", what, status_text()));
    return out;
  }
  out.error_class = "error";
  out.message =
      with_body(fmt::format("{}: unexpected {}{}", what, status_text(),
                            status >= 300 && status < 400 ? " (redirects are not followed)" : ""));
  return out;
}

}  // namespace saga::http
