// The escaper and the page frame (html.hpp, saga/web.hpp).
#include "runtime/web/html.hpp"

#include <fmt/format.h>

#include "runtime/value/markup.hpp"
#include "runtime/value/utf8.hpp"
#include "saga/web.hpp"

namespace saga::web {

std::string html_escape(std::string_view text) {
  return escape_markup(scrub_utf8(text));
}

std::string link(std::string_view href, std::string_view text) {
  return fmt::format("<a href=\"{}\">{}</a>", html_escape(href), html_escape(text));
}

serve::Response page(std::string_view title, const std::string& body, int status) {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{} - saga</title>\n<link rel=\"stylesheet\" href=\"/static/style.css\">\n"
      "</head>\n<body>\n<nav><a href=\"/\">Instances</a> <a href=\"/programs\">Programs</a> "
      "<a href=\"/dead-letters\">Dead letters</a></nav>\n<main>\n<h1>{}</h1>\n{}</main>\n"
      "</body>\n</html>\n",
      html_escape(title), html_escape(title), body);
  // No script of any origin runs in these pages; inline styles are not used either.
  return {status,
          "text/html; charset=utf-8",
          std::move(html),
          {{"Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'"}}};
}

}  // namespace saga::web
