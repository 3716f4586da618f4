// POST /instances/{id}/signals/{name} on `sagactl worker --listen`: a
// signal to samples/approval.saga over HTTP moves it on; an unknown
// instance, a finished one and data that is not JSON are refused with 404,
// 409 and 400; with an admin token the route needs it, like every
// state-changing route.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/serve/worker_fixture.hpp"
#include "tests/support/http_call.hpp"

namespace saga::test {
namespace {

using nlohmann::json;

class SignalRoute : public WorkerFixture {
 protected:
  // Starts an expense of samples/approval.saga; returns its id.
  std::string start_expense(const std::string& employee) {
    std::string out;
    EXPECT_EQ(sagactl({"start", std::string(SAGA_SOURCE_DIR) + "/samples/approval.saga", "--db",
                       db_, "--input", R"({"employee": ")" + employee + R"(", "amount": 7})"},
                      &out),
              0)
        << out;
    return out.substr(0, out.find('\n'));
  }
  // Whether the instance waits at its await (show --json's "waiting").
  bool awaits(const std::string& id) {
    auto view = json::parse(sagactl_stdout({"show", id, "--db", db_, "--json"}), nullptr, false);
    if (!view.is_object() || !view.contains("waiting")) return false;
    for (const auto& w : view["waiting"]) {
      if (w.value("kind", "") == "signal" && w.value("signal", "") == "approve") return true;
    }
    return false;
  }
  HttpReply post(const std::string& target, const std::string& body,
                 const std::map<std::string, std::string>& headers = {}) {
    return http_call(port_, "POST", target, body, headers);
  }
};

TEST_F(SignalRoute, ASignalOverHttpMovesTheInstanceOn) {
  const std::string id = start_expense("ada");
  start_worker();
  ASSERT_TRUE(eventually([&] { return awaits(id); }));
  const std::string target = "/instances/" + id + "/signals/approve";
  EXPECT_EQ(post("/instances/nope/signals/approve", "{}").status, 404);
  auto bad = post(target, "{not json");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("not JSON"), std::string::npos) << bad.body;
  auto sent = post(target, R"({"approved": true, "by": "grace"})");
  ASSERT_EQ(sent.status, 202) << sent.body;
  EXPECT_EQ(json::parse(sent.body)["signal"], "approve");
  ASSERT_TRUE(eventually([&] { return status_of(id) == "completed"; })) << status_of(id);
  auto view = json::parse(sagactl_stdout({"show", id, "--db", db_, "--json"}));
  EXPECT_EQ(view["output"]["approved_by"], "grace");
  auto late = post(target, "{}");
  EXPECT_EQ(late.status, 409) << late.body;
  EXPECT_NE(late.body.find("is completed"), std::string::npos) << late.body;
}

TEST_F(SignalRoute, WithATokenTheRouteNeedsIt) {
  const std::string id = start_expense("bob");
  std::ofstream(dir_ / "token") << "s3cret\n";
  start_worker({"--admin-token-file", (dir_ / "token").string()});
  ASSERT_TRUE(eventually([&] { return awaits(id); }));
  const std::string target = "/instances/" + id + "/signals/approve";
  const std::string body = R"({"approved": false, "by": "carol"})";
  EXPECT_EQ(post(target, body).status, 401);
  EXPECT_EQ(post(target, body, {{"Authorization", "Bearer wrong"}}).status, 403);
  EXPECT_TRUE(awaits(id)) << "a refused signal is not posted";
  auto sent = post(target, body, {{"Authorization", "Bearer s3cret"}});
  ASSERT_EQ(sent.status, 202) << sent.body;
  ASSERT_TRUE(eventually([&] { return status_of(id) == "compensated"; })) << status_of(id);
}

}  // namespace
}  // namespace saga::test
