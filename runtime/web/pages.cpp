// The web view (saga/web.hpp): server-rendered pages that read without
// JavaScript, built from the same records as the JSON API. Every value taken
// from the store goes through html_escape() (or link(), which escapes); the
// operator buttons are forms posting to the API's action routes, which
// redirect back here.
#include <fmt/format.h>

#include "runtime/web/html.hpp"
#include "saga/events.hpp"
#include "saga/records_json.hpp"
#include "saga/web.hpp"

namespace saga::web {

// The stylesheet, compiled in (cmake/embed.cmake).
extern const char kStyleCss[];
extern const size_t kStyleCssSize;

namespace {

// A JSON string field as text ("" when absent or not a string).
std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A JSON value as indented text, for <pre>.
std::string pretty(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string status_badge(const std::string& status) {
  return fmt::format("<span class=\"status status-{}\">{}</span>", html_escape(status),
                     html_escape(status));
}

// The tone of an event kind (events.def), as a CSS class.
const char* tone_class(const std::string& kind) {
  const EventInfo* info = find_event(kind);
  if (info == nullptr) return "info";
  switch (info->tone) {
    case EventTone::kGood:
      return "good";
    case EventTone::kBad:
      return "bad";
    case EventTone::kUndo:
      return "undo";
    case EventTone::kInfo:
      break;
  }
  return "info";
}

serve::Response error_page(int status, const std::string& message) {
  return page("Error", fmt::format("<p class=\"error\">{}</p>", html_escape(message)), status);
}

int status_of(const Status& s) {
  return s.code() == StatusCode::kNotFound          ? 404
         : s.code() == StatusCode::kInvalidArgument ? 400
                                                    : 500;
}

serve::Response instances_page(Store& store, const serve::Request& req) {
  auto result = instance_page(store, req);
  if (!result.ok()) return error_page(status_of(result.status()), result.status().message());
  const std::string status = req.arg("status"), saga = req.arg("saga");
  std::string body = "<form class=\"filter\" method=\"get\" action=\"/\">\n";
  body += "<label>Status <select name=\"status\"><option value=\"\">any</option>";
  for (int s = 0; s <= static_cast<int>(InstanceStatus::kCancelled); ++s) {
    const std::string name = to_string(static_cast<InstanceStatus>(s));
    body +=
        fmt::format("<option{}>{}</option>", name == status ? " selected" : "", html_escape(name));
  }
  body += fmt::format(
      "</select></label>\n<label>Saga <input name=\"saga\" value=\"{}\"></label>\n"
      "<button type=\"submit\">Filter</button>\n</form>\n",
      html_escape(saga));
  const nlohmann::json& list = result.value()["instances"];
  if (list.empty()) {
    body += "<p id=\"empty\">No instances.</p>\n";
  } else {
    body +=
        "<table id=\"instances\">\n<thead><tr><th>Instance</th><th>Saga</th><th>Status</th>"
        "<th>Created</th><th>Updated</th><th>Error</th></tr></thead>\n<tbody>\n";
    for (const auto& r : list) {
      const std::string error = str(r, "error_class").empty()
                                    ? ""
                                    : str(r, "error_class") + ": " + str(r, "error_message");
      body += fmt::format(
          "<tr data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
          "</tr>\n",
          html_escape(str(r, "id")), link("/instances/" + url_encode(str(r, "id")), str(r, "id")),
          html_escape(str(r, "saga")), status_badge(str(r, "status")),
          html_escape(str(r, "created")), html_escape(str(r, "updated")), html_escape(error));
    }
    body += "</tbody>\n</table>\n";
  }
  const nlohmann::json& next = result.value()["next"];
  if (next.is_string()) {
    std::string href = "/?before=" + url_encode(next.get<std::string>());
    if (!status.empty()) href += "&status=" + url_encode(status);
    if (!saga.empty()) href += "&saga=" + url_encode(saga);
    if (!req.arg("limit").empty()) href += "&limit=" + url_encode(req.arg("limit"));
    body += "<p class=\"paging\">" + link(href, "Older instances") + "</p>\n";
  }
  return page("Instances", body);
}

// The buttons of the operator actions that apply to an instance in `status`.
std::string action_forms(const std::string& id, const std::string& status) {
  std::string out;
  for (const OperatorAction& a : operator_actions()) {
    bool applies = false;
    for (InstanceStatus s : a.applies_to) applies = applies || to_string(s) == status;
    if (!applies) continue;
    out += fmt::format(
        "<form class=\"action\" method=\"post\" action=\"/api/instances/{}/{}\">"
        "<button type=\"submit\" name=\"action\" value=\"{}\" title=\"{}\">{}</button></form>\n",
        html_escape(url_encode(id)), html_escape(a.name), html_escape(a.name), html_escape(a.doc),
        html_escape(a.label));
  }
  return out.empty() ? out : "<div id=\"actions\">\n" + out + "</div>\n";
}

serve::Response instance_detail_page(Store& store, const serve::Request& req) {
  const std::string& id = req.params.at("id");
  auto view = records::instance_detail(store, id);
  if (!view.ok()) return error_page(status_of(view.status()), view.status().message());
  const nlohmann::json& v = view.value();
  const std::string status = str(v, "status");
  std::string body = "<dl class=\"summary\">\n";
  auto row = [&body](const char* name, const std::string& html) {
    body += fmt::format("<dt>{}</dt><dd>{}</dd>\n", name, html);
  };
  row("Instance", "<code id=\"instance-id\">" + html_escape(str(v, "id")) + "</code>");
  row("Saga", link("/?saga=" + url_encode(str(v, "saga")), str(v, "saga")));
  row("Status", "<span id=\"status\">" + status_badge(status) + "</span>");
  row("Program", "<code>" + html_escape(str(v, "program")) + "</code>");
  row("Created", html_escape(str(v, "created")));
  row("Updated", html_escape(str(v, "updated")));
  if (!str(v, "error_class").empty()) {
    row("Error", html_escape(str(v, "error_class") + ": " + str(v, "error_message")));
  }
  body += "</dl>\n";
  body += action_forms(id, status);
  body += "<h2>Input</h2>\n<pre id=\"input\">" + html_escape(pretty(v["input"])) + "</pre>\n";
  if (!v["output"].is_null()) {
    body += "<h2>Output</h2>\n<pre id=\"output\">" + html_escape(pretty(v["output"])) + "</pre>\n";
  }
  if (v.contains("waiting") && !v["waiting"].empty()) {
    body += "<h2>Waiting</h2>\n<ul id=\"waiting\">\n";
    for (const auto& w : v["waiting"]) {
      std::string what =
          str(w, "kind") == "join"
              ? "its fibers"
              : fmt::format("{} {} (attempt {}){}", str(w, "kind"), str(w, "action"),
                            w.value("attempt", 0),
                            str(w, "wake_at").empty() ? "" : ", next at " + str(w, "wake_at"));
      body += "<li>" + html_escape(str(w, "step").empty() ? what : str(w, "step") + ": " + what) +
              "</li>\n";
    }
    body += "</ul>\n";
  }
  if (v.contains("checkpoint_error")) {
    body += "<p class=\"error\">" + html_escape(str(v, "checkpoint_error")) + "</p>\n";
  }
  if (!v["dead_letters"].empty()) {
    body += "<h2>Dead letter</h2>\n<ul id=\"dead-letters\">\n";
    for (const auto& d : v["dead_letters"]) {
      body +=
          fmt::format("<li>the undo of step <b>{}</b> gave up after {} attempt{} at {}: {}</li>\n",
                      html_escape(str(d, "step")), d.value("attempts", 0),
                      d.value("attempts", 0) == 1 ? "" : "s", html_escape(str(d, "time")),
                      html_escape(str(d, "error_class") + ": " + str(d, "message")));
    }
    body += "</ul>\n";
  }
  body += "<h2>History</h2>\n<ol id=\"history\" class=\"timeline\">\n";
  for (const auto& e : v["history"]) {
    std::string detail = str(e, "error_class");
    if (!detail.empty()) detail += ": ";
    detail += str(e, "message");
    const int attempt = e.value("attempt", 0);
    body += fmt::format(
        "<li class=\"event {}\" data-kind=\"{}\"><time>{}</time> <b>{}</b>{}{}{}</li>\n",
        tone_class(str(e, "kind")), html_escape(str(e, "kind")), html_escape(str(e, "time")),
        html_escape(str(e, "kind")),
        str(e, "step").empty() ? ""
                               : " <span class=\"step\">" + html_escape(str(e, "step")) + "</span>",
        attempt > 0 ? fmt::format(" <span class=\"attempt\">attempt {}</span>", attempt) : "",
        detail.empty() ? "" : " <span class=\"detail\">" + html_escape(detail) + "</span>");
  }
  body += "</ol>\n";
  return page("Instance " + id, body);
}

serve::Response programs_page(Store& store) {
  auto list = records::program_list(store);
  if (!list.ok()) return error_page(500, list.status().message());
  std::string body =
      "<table id=\"programs\">\n<thead><tr><th>Program</th><th>Hash</th><th>Stored</th>"
      "<th>Sagas</th></tr></thead>\n<tbody>\n";
  for (const auto& p : list.value()) {
    std::string sagas;
    for (const auto& s : p["sagas"]) {
      sagas += (sagas.empty() ? "" : ", ") +
               link("/?saga=" + url_encode(s.get<std::string>()), s.get<std::string>());
    }
    if (p.contains("error")) sagas += html_escape(str(p, "error"));
    body += fmt::format("<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
                        html_escape(str(p, "name")), html_escape(str(p, "hash")),
                        html_escape(str(p, "created")), sagas);
  }
  body += "</tbody>\n</table>\n";
  return page("Programs", body);
}

serve::Response dead_letters_page(Store& store) {
  auto letters = store.list_dead_letters(500);
  if (!letters.ok()) return error_page(500, letters.status().message());
  if (letters->empty()) return page("Dead letters", "<p id=\"empty\">No dead letters.</p>\n");
  std::string body =
      "<table id=\"dead-letters\">\n<thead><tr><th>Instance</th><th>Saga</th><th>Status</th>"
      "<th>Step</th><th>Error</th><th>Attempts</th><th>Since</th></tr></thead>\n<tbody>\n";
  for (const DeadLetterEntry& entry : letters.value()) {
    const nlohmann::json d = records::dead_letter(entry);
    body += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        link("/instances/" + url_encode(str(d, "instance")), str(d, "instance")),
        html_escape(str(d, "saga")), status_badge(str(d, "status")), html_escape(str(d, "step")),
        html_escape(str(d, "error_class") + ": " + str(d, "message")), d.value("attempts", 0),
        html_escape(str(d, "time")));
  }
  body += "</tbody>\n</table>\n";
  return page("Dead letters", body);
}

serve::Response login_page(const std::string& message) {
  return page("Log in",
              (message.empty() ? "" : "<p class=\"error\">" + html_escape(message) + "</p>\n") +
                  "<p>Actions need the admin token (the contents of --admin-token-file).</p>\n"
                  "<form method=\"post\" action=\"/login\"><label>Token <input type=\"password\" "
                  "name=\"token\" autocomplete=\"off\"></label> <button type=\"submit\">Log "
                  "in</button></form>\n",
              message.empty() ? 200 : 403);
}

}  // namespace

void add_web_routes(serve::Router& router, const Context& context) {
  Store* store = context.store;
  router.add("GET", "/",
             [store](const serve::Request& req) { return instances_page(*store, req); });
  router.add("GET", "/instances/{id}",
             [store](const serve::Request& req) { return instance_detail_page(*store, req); });
  router.add("GET", "/programs", [store](const serve::Request&) { return programs_page(*store); });
  router.add("GET", "/dead-letters",
             [store](const serve::Request&) { return dead_letters_page(*store); });
  router.add("GET", "/static/style.css", [](const serve::Request&) {
    return serve::Response{
        200, "text/css; charset=utf-8", std::string(kStyleCss, kStyleCssSize), {}};
  });
  if (context.token_configured) {
    router.add("GET", "/login", [](const serve::Request&) { return login_page({}); });
    // The access rule lets only a request with the right token through
    // (POST /login is state-changing), so the token in the form's field is
    // checked before this runs: the handler only turns it into the cookie.
    router.add("POST", "/login", [](const serve::Request& req) {
      auto fields = serve::parse_form(req.body);
      if (!fields || !fields->contains("token")) return login_page("no token given");
      serve::Response r = serve::redirect("/");
      r.headers.emplace_back("Set-Cookie", "saga_token=" + url_encode(fields->at("token")) +
                                               "; Path=/; HttpOnly; SameSite=Strict");
      return r;
    });
  }
}

}  // namespace saga::web
