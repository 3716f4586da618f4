// `sagactl worker --listen` end to end: a real worker on an ephemeral
// loopback port over a database of completed, compensated, stuck and running
// instances. The API's records are byte for byte the CLI's --json records;
// paging, filters, health, operator actions, the token rules, escaping in
// the pages, `dlq ls` and `ls --stalled`.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "saga/store.hpp"
#include "tests/serve/worker_fixture.hpp"
#include "tests/support/http_call.hpp"

namespace saga::test {
namespace {

using nlohmann::json;

class Listener : public WorkerFixture {
 protected:
  HttpReply get(const std::string& target) { return http_call(port_, "GET", target); }
  HttpReply post(const std::string& target, const std::map<std::string, std::string>& headers = {},
                 const std::string& body = {}) {
    return http_call(port_, "POST", target, body, headers);
  }
  void wait_running() {
    ASSERT_TRUE(eventually([&] { return status_of(running_) == "running"; }))
        << status_of(running_);
  }
};

TEST_F(Listener, ApiRecordsAreTheCliRecordsByteForByte) {
  make_instances();
  start_worker();
  wait_running();
  for (const std::string& id : {completed_, compensated_, stuck_, running_}) {
    auto reply = get("/api/instances/" + id);
    ASSERT_EQ(reply.status, 200) << reply.body;
    EXPECT_EQ(reply.headers["content-type"], "application/json");
    EXPECT_EQ(reply.body, sagactl_stdout({"show", id, "--db", db_, "--json"})) << id;
    auto history = get("/api/instances/" + id + "/history");
    ASSERT_EQ(history.status, 200);
    EXPECT_EQ(json::parse(history.body), json::parse(reply.body)["history"]);
  }
  // The listing: the same records, in the same order, as ls --json.
  auto api = json::parse(get("/api/instances").body);
  auto cli = json::parse(sagactl_stdout({"ls", "--db", db_, "--json"}));
  ASSERT_EQ(api["instances"].size(), 4u);
  ASSERT_EQ(cli.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(api["instances"][i].dump(2), cli[i].dump(2));
  EXPECT_TRUE(api["next"].is_null());
  // A summary is the detail's fields of the same name.
  auto detail = json::parse(get("/api/instances/" + stuck_).body);
  for (const auto& r : cli) {
    if (r["id"] != stuck_) continue;
    for (const auto& [k, v] : r.items()) EXPECT_EQ(detail[k], v) << k;
  }
  // Dead letters: the whole listing is the same text.
  auto letters = get("/api/dead-letters");
  ASSERT_EQ(letters.status, 200);
  EXPECT_EQ(letters.body, sagactl_stdout({"dlq", "ls", "--db", db_, "--json"}));
  auto list = json::parse(letters.body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["instance"], stuck_);
  EXPECT_EQ(list[0]["saga"], "stuck");
  EXPECT_EQ(list[0]["step"], "second");
  EXPECT_EQ(list[0]["status"], "stuck");
  EXPECT_EQ(list[0]["attempts"], 1);
  // The instance's own dead letters have the same shape.
  EXPECT_EQ(detail["dead_letters"], list);
  // Programs and their sagas.
  auto programs = json::parse(get("/api/programs").body);
  std::set<std::string> sagas;
  for (const auto& p : programs) {
    EXPECT_EQ(p["hash"].get<std::string>().size(), 32u);
    for (const auto& s : p["sagas"]) sagas.insert(s);
  }
  EXPECT_EQ(sagas, (std::set<std::string>{"hello", "fails", "stuck", "slow"}));
}

TEST_F(Listener, PagesNewestFirstWithACursor) {
  make_instances();
  start_worker();
  auto first = json::parse(get("/api/instances?limit=3").body);
  ASSERT_EQ(first["instances"].size(), 3u);
  ASSERT_TRUE(first["next"].is_string());
  EXPECT_EQ(first["next"], first["instances"][2]["id"]);
  auto second =
      json::parse(get("/api/instances?limit=3&before=" + first["next"].get<std::string>()).body);
  ASSERT_EQ(second["instances"].size(), 1u);
  EXPECT_TRUE(second["next"].is_null());
  // Newest first: the one started last comes first, the first run last.
  EXPECT_EQ(first["instances"][0]["id"], running_);
  EXPECT_EQ(second["instances"][0]["id"], completed_);
  auto stuck = json::parse(get("/api/instances?status=stuck").body);
  ASSERT_EQ(stuck["instances"].size(), 1u);
  EXPECT_EQ(stuck["instances"][0]["id"], stuck_);
  auto fails = json::parse(get("/api/instances?saga=fails").body);
  ASSERT_EQ(fails["instances"].size(), 1u);
  EXPECT_EQ(fails["instances"][0]["id"], compensated_);
  EXPECT_EQ(json::parse(get("/api/instances?saga=fails&status=stuck").body)["instances"].size(),
            0u);
  EXPECT_EQ(get("/api/instances?status=sleepy").status, 400);
  EXPECT_EQ(get("/api/instances?limit=0").status, 400);
  EXPECT_EQ(get("/api/instances?limit=x").status, 400);
  auto stale = get("/api/instances?before=nope");
  EXPECT_EQ(stale.status, 404);
  EXPECT_NE(json::parse(stale.body)["error"]["message"].get<std::string>().find("nope"),
            std::string::npos);
  EXPECT_EQ(get("/api/instances/nope").status, 404);
  EXPECT_EQ(get("/api/instances/nope/history").status, 404);
  EXPECT_EQ(get("/api/nothing").status, 404);
  EXPECT_EQ(http_call(port_, "DELETE", "/api/instances").status, 405);
}

// Whether the scrape has a sample line of `series` (its name and the `{`)
// whose labels contain `label` and whose value is `value` (" 1").
bool has_sample(const std::string& scrape, const std::string& series, const std::string& label,
                const std::string& value) {
  size_t at = 0;
  while ((at = scrape.find("\n" + series, at)) != std::string::npos) {
    const size_t begin = at + 1;
    const size_t end = scrape.find('\n', begin);
    const std::string line = scrape.substr(begin, end - begin);
    if (line.find(label) != std::string::npos && line.ends_with(value)) return true;
    at = begin;
  }
  return false;
}

// GET /metrics: the Prometheus text of the worker's saga::Metrics, its
// instances by status read from the database at the scrape, and the cancel
// done through the API counted as an ended instance.
TEST_F(Listener, ServesMetrics) {
  make_instances();
  start_worker();
  wait_running();
  auto scrape = get("/metrics");
  ASSERT_EQ(scrape.status, 200) << scrape.body;
  EXPECT_TRUE(scrape.headers["content-type"].starts_with("text/plain; version=0.0.4"))
      << scrape.headers["content-type"];
  for (const char* line :
       {"saga_instances{status=\"completed\"} 1\n", "saga_instances{status=\"compensated\"} 1\n",
        "saga_instances{status=\"stuck\"} 1\n", "saga_instances{status=\"running\"} 1\n"}) {
    EXPECT_NE(scrape.body.find(line), std::string::npos) << line << "\n" << scrape.body;
  }
  EXPECT_NE(scrape.body.find("# TYPE saga_instances_finished_total counter"), std::string::npos);
  ASSERT_EQ(post("/api/instances/" + running_ + "/cancel").status, 202);
  ASSERT_TRUE(eventually([&] { return status_of(running_) == "cancelled"; }));
  EXPECT_TRUE(eventually([&] {
    auto after = get("/metrics").body;
    return after.find("saga_instances{status=\"cancelled\"} 1\n") != std::string::npos &&
           has_sample(after, "saga_instances_finished_total{", "status=\"cancelled\"", " 1");
  })) << get("/metrics").body;
}

TEST_F(Listener, ServesHealth) {
  make_instances();
  start_worker();
  auto live = get("/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(json::parse(live.body)["status"], "live");
  auto ready = get("/health/ready");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(json::parse(ready.body)["status"], "ready");
  // What ready asks the store: a store that cannot take commits says why.
  StoreOptions read_only;
  read_only.read_only = true;
  auto reader = open_sqlite_store(db_, read_only);
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE(reader.value()->check_ready().ok());
}

TEST_F(Listener, CancelsARunningInstanceAndRefusesWrongStates) {
  make_instances();
  start_worker();
  wait_running();
  auto done = post("/api/instances/" + completed_ + "/cancel");
  EXPECT_EQ(done.status, 409) << done.body;
  EXPECT_NE(json::parse(done.body)["error"]["message"].get<std::string>().find("completed"),
            std::string::npos)
      << done.body;
  EXPECT_EQ(post("/api/instances/nope/cancel").status, 404);
  auto cancel = post("/api/instances/" + running_ + "/cancel");
  ASSERT_EQ(cancel.status, 202) << cancel.body;
  EXPECT_EQ(json::parse(cancel.body)["action"], "cancel");
  EXPECT_TRUE(eventually([&] { return status_of(running_) == "cancelled"; }))
      << status_of(running_);
}

TEST_F(Listener, AFormPostRedirectsBackToTheInstance) {
  make_instances();
  start_worker();
  wait_running();
  auto reply = post("/api/instances/" + running_ + "/cancel",
                    {{"Content-Type", "application/x-www-form-urlencoded"}}, "action=cancel");
  EXPECT_EQ(reply.status, 303) << reply.body;
  EXPECT_EQ(reply.headers["location"], "/instances/" + running_);
  EXPECT_TRUE(eventually([&] { return status_of(running_) == "cancelled"; }));
  // A refused form post says why on a page.
  auto again = post("/api/instances/" + running_ + "/cancel",
                    {{"Content-Type", "application/x-www-form-urlencoded"}}, "action=cancel");
  EXPECT_EQ(again.status, 409);
  EXPECT_NE(again.headers["content-type"].find("text/html"), std::string::npos);
}

TEST_F(Listener, ActionsNeedTheTokenWhenOneIsConfigured) {
  make_instances();
  std::ofstream(dir_ / "token") << "  s3cret-token \n";
  start_worker({"--admin-token-file", (dir_ / "token").string()});
  wait_running();
  const std::string target = "/api/instances/" + running_ + "/cancel";
  EXPECT_EQ(post(target).status, 401);
  EXPECT_EQ(post(target, {{"Authorization", "Bearer wrong"}}).status, 403);
  EXPECT_EQ(post(target, {{"Authorization", "Bearer s3cret-tok"}}).status, 403);
  EXPECT_EQ(status_of(running_), "running");
  // Reads stay open on loopback.
  EXPECT_EQ(get("/api/instances").status, 200);
  EXPECT_EQ(get("/").status, 200);
  // The login form sets the cookie with which forms post.
  auto login =
      post("/login", {{"Content-Type", "application/x-www-form-urlencoded"}}, "token=s3cret-token");
  ASSERT_EQ(login.status, 303) << login.body;
  const std::string cookie = login.headers["set-cookie"];
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos) << cookie;
  EXPECT_EQ(
      post("/login", {{"Content-Type", "application/x-www-form-urlencoded"}}, "token=nope").status,
      403);
  auto by_cookie = post(target,
                        {{"Cookie", cookie.substr(0, cookie.find(';'))},
                         {"Content-Type", "application/x-www-form-urlencoded"}},
                        "action=cancel");
  EXPECT_EQ(by_cookie.status, 303) << by_cookie.body;
  EXPECT_TRUE(eventually([&] { return status_of(running_) == "cancelled"; }));
  EXPECT_EQ(
      post("/api/instances/" + running_ + "/cancel", {{"Authorization", "Bearer s3cret-token"}})
          .status,
      409);
}

TEST_F(Listener, RefusesAPostFromAnotherSitesPage) {
  make_instances();
  start_worker();
  wait_running();
  auto reply = post("/api/instances/" + running_ + "/cancel", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(reply.status, 403);
  EXPECT_EQ(status_of(running_), "running");
}

TEST_F(Listener, PagesShowInstanceDataAsText) {
  make_instances();
  start_worker();
  auto page = get("/instances/" + completed_);
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.headers["content-type"].find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("&lt;script&gt;window.sagaPwned=1&lt;/script&gt;"), std::string::npos);
  EXPECT_EQ(page.body.find("<script>"), std::string::npos);
  EXPECT_NE(page.headers["content-security-policy"].find("default-src 'none'"), std::string::npos);
  auto list = get("/");
  EXPECT_EQ(list.status, 200);
  for (const std::string& id : {completed_, compensated_, stuck_, running_}) {
    EXPECT_NE(list.body.find(id), std::string::npos) << id;
  }
  auto css = get("/static/style.css");
  EXPECT_EQ(css.status, 200);
  EXPECT_NE(css.body.find("ol.timeline"), std::string::npos);
  EXPECT_EQ(get("/instances/nope").status, 404);
  EXPECT_EQ(get("/dead-letters").status, 200);
  EXPECT_NE(get("/dead-letters").body.find(stuck_), std::string::npos);
  EXPECT_NE(get("/programs").body.find("stuck"), std::string::npos);
}

TEST_F(Listener, RefusesAddressesItShouldNotListenOn) {
  std::string out;
  EXPECT_EQ(sagactl({"worker", "--db", db_, "--listen", "example.com:80"}, &out), 2);
  EXPECT_NE(out.find("not an IP address"), std::string::npos) << out;
  EXPECT_EQ(sagactl({"worker", "--db", db_, "--listen", "0.0.0.0:0"}, &out), 2);
  EXPECT_NE(out.find("needs --admin-token-file"), std::string::npos) << out;
  EXPECT_EQ(sagactl({"worker", "--db", db_, "--listen", ":0", "--public-read"}, &out), 2);
  EXPECT_NE(out.find("--public-read"), std::string::npos) << out;
  EXPECT_EQ(sagactl({"worker", "--db", db_, "--listen", "0:0", "--admin-token-file",
                     (dir_ / "missing").string()},
                    &out),
            2);
  EXPECT_EQ(sagactl({"worker", "--db", db_, "--listen", ":0", "--admin-token-file",
                     (dir_ / "missing").string()},
                    &out),
            1);
  EXPECT_NE(out.find("missing"), std::string::npos) << out;
}

TEST_F(Listener, DlqAndStalledListings) {
  make_instances();
  std::string out;
  ASSERT_EQ(sagactl({"dlq", "ls", "--db", db_}, &out), 0);
  EXPECT_NE(out.find(stuck_), std::string::npos) << out;
  EXPECT_NE(out.find("second"), std::string::npos) << out;
  EXPECT_NE(out.find("arithmetic"), std::string::npos) << out;
  // The pending instance has made no progress for 0 s, but not for a day.
  auto stalled = json::parse(sagactl_stdout({"ls", "--db", db_, "--stalled", "0s", "--json"}));
  ASSERT_EQ(stalled.size(), 1u) << stalled.dump();
  EXPECT_EQ(stalled[0]["id"], running_);
  EXPECT_EQ(json::parse(sagactl_stdout({"ls", "--db", db_, "--stalled", "1d", "--json"})).size(),
            0u);
  ASSERT_EQ(sagactl({"ls", "--db", db_, "--stalled", "0s"}, &out), 0);
  EXPECT_NE(out.find("NO PROGRESS FOR"), std::string::npos) << out;
  EXPECT_EQ(sagactl({"ls", "--db", db_, "--stalled", "10 minutes"}, &out), 2);
  EXPECT_EQ(sagactl({"ls", "--db", db_, "--stalled", "1m", "--status", "completed"}, &out), 2);
  // --saga filters the listing.
  auto hello = json::parse(sagactl_stdout({"ls", "--db", db_, "--saga", "hello", "--json"}));
  ASSERT_EQ(hello.size(), 1u);
  EXPECT_EQ(hello[0]["id"], completed_);
}

}  // namespace
}  // namespace saga::test
