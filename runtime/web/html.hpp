// Building pages: the page frame and small pieces shared by the pages of
// pages.cpp, and the instance listing it shares with the API. Every argument that holds data is
// escaped here or by the caller with html_escape(); nothing else writes HTML.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "runtime/http/request.hpp"
#include "saga/serve.hpp"
#include "saga/store.hpp"

namespace saga::web {

// A page of GET /api/instances, and of the web view's list (api.cpp): the
// query's status, saga, limit and before -> {"instances": [summary...],
// "next": the cursor of the next page, or null}.
Result<nlohmann::json> instance_page(Store& store, const serve::Request& req);
// The ?limit=N of a listing (api.cpp): 50 when absent, 1..1000 (else
// kInvalidArgument naming the rule).
Result<size_t> limit_of(const serve::Request& req);

// A complete page: the title (escaped here), the navigation, and `body`
// (already HTML).
serve::Response page(std::string_view title, const std::string& body, int status = 200);
// A link: href and text escaped.
std::string link(std::string_view href, std::string_view text);
// A path segment or query value, percent-encoded (the HTTP client's encoder).
using http::url_encode;

}  // namespace saga::web
