// Incoming CloudEvents end to end: `sagactl worker --listen 127.0.0.1:0
// --program tests/serve/events.saga` on a real database, and POST /events in
// structured and binary mode. Checks that a trigger's arguments reach the
// saga's input, that a redelivery (same source and id, either mode, also
// after kill -9 of the worker) starts nothing twice, that an event no
// trigger matches is recorded and listed (`sagactl events ls`, GET
// /api/events), that malformed events get 400 and store nothing, that a
// worker without --program records them for its awaits, and the token rule.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/serve/worker_fixture.hpp"
#include "tests/support/http_call.hpp"

namespace saga::test {
namespace {

using nlohmann::json;

const std::map<std::string, std::string> kStructured = {
    {"Content-Type", "application/cloudevents+json"}};

std::string order_event(const std::string& id, const std::string& source = "shop",
                        const std::string& type = "order.placed") {
  return json{{"specversion", "1.0"},
              {"id", id},
              {"source", source},
              {"type", type},
              {"data", {{"order", "A-" + id}, {"amount", 12.5}}}}
      .dump();
}

std::map<std::string, std::string> binary_headers(const std::string& id) {
  return {{"ce-specversion", "1.0"},
          {"ce-id", id},
          {"ce-source", "shop"},
          {"ce-type", "order.placed"},
          {"Content-Type", "application/json"}};
}

class EventsTest : public WorkerFixture {
 protected:
  std::string program() const { return std::string(SAGA_SOURCE_DIR) + "/tests/serve/events.saga"; }

  HttpReply post_event(const std::string& body, const std::map<std::string, std::string>& headers) {
    return http_call(port_, "POST", "/events", body, headers);
  }

  json events(bool unmatched = false) {
    std::vector<std::string> args = {"events", "ls", "--db", db_, "--json"};
    if (unmatched) args.push_back("--unmatched");
    return json::parse(sagactl_stdout(args), nullptr, false);
  }

  json instances() {
    return json::parse(sagactl_stdout({"ls", "--db", db_, "--json"}), nullptr, false);
  }

  json output_of(const std::string& id) {
    json view = json::parse(sagactl_stdout({"show", id, "--db", db_, "--json"}), nullptr, false);
    return view.is_object() ? view["output"] : json();
  }

  // Waits for the instance to complete.
  void expect_completed(const std::string& id) {
    EXPECT_TRUE(eventually([&] { return status_of(id) == "completed"; })) << status_of(id);
  }
};

TEST_F(EventsTest, AStructuredEventStartsItsTriggerWithArgumentsFromTheEvent) {
  start_worker({"--program", program()});
  HttpReply r = post_event(order_event("e-1"), kStructured);
  ASSERT_EQ(r.status, 202) << r.body;
  json body = json::parse(r.body);
  EXPECT_FALSE(body["duplicate"].get<bool>());
  EXPECT_TRUE(body["matched"].get<bool>());
  ASSERT_EQ(body["started"].size(), 1u);
  const std::string id = body["started"][0];
  expect_completed(id);
  EXPECT_EQ(output_of(id), json({{"order", "A-e-1"}, {"amount", 12.5}, {"from", "shop"}}));

  // The same event again: answered as a duplicate, with the first id.
  HttpReply again = post_event(order_event("e-1"), kStructured);
  ASSERT_EQ(again.status, 200) << again.body;
  json dup = json::parse(again.body);
  EXPECT_TRUE(dup["duplicate"].get<bool>());
  EXPECT_EQ(dup["started"], json::array({id}));
  EXPECT_EQ(instances().size(), 1u);
  json listed = events();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["started"], json::array({id}));
  EXPECT_EQ(listed[0]["event"]["data"]["order"], "A-e-1");
}

TEST_F(EventsTest, BinaryModeIsTheSameEventAndDeduplicatesAcrossModes) {
  start_worker({"--program", program()});
  const std::string data = R"({"order": "B-7", "amount": 3})";
  HttpReply r = post_event(data, binary_headers("b-7"));
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = json::parse(r.body)["started"][0];
  expect_completed(id);
  EXPECT_EQ(output_of(id), json({{"order", "B-7"}, {"amount", 3}, {"from", "shop"}}));
  // The same (source, id) in binary mode and in structured mode.
  HttpReply binary_again = post_event(data, binary_headers("b-7"));
  EXPECT_EQ(binary_again.status, 200) << binary_again.body;
  EXPECT_TRUE(json::parse(binary_again.body)["duplicate"].get<bool>());
  HttpReply structured = post_event(order_event("b-7"), kStructured);
  EXPECT_EQ(structured.status, 200) << structured.body;
  EXPECT_TRUE(json::parse(structured.body)["duplicate"].get<bool>());
  EXPECT_EQ(instances().size(), 1u);
  // Another source with the same id is another event.
  HttpReply other = post_event(order_event("b-7", "shop-2"), kStructured);
  EXPECT_EQ(other.status, 202) << other.body;
  EXPECT_TRUE(eventually([&] { return instances().size() == 2u; }));
}

TEST_F(EventsTest, AnEventNoTriggerMatchesIsRecordedAndListedAndStartsNothing) {
  start_worker({"--program", program()});
  HttpReply r = post_event(order_event("u-1", "shop", "order.cancelled"), kStructured);
  ASSERT_EQ(r.status, 202) << r.body;
  json body = json::parse(r.body);
  EXPECT_FALSE(body["matched"].get<bool>());
  EXPECT_TRUE(body["started"].empty());
  json unmatched = events(/*unmatched=*/true);
  ASSERT_EQ(unmatched.size(), 1u) << unmatched;
  EXPECT_EQ(unmatched[0]["type"], "order.cancelled");
  EXPECT_FALSE(unmatched[0]["matched"].get<bool>());
  HttpReply api = http_call(port_, "GET", "/api/events?unmatched=1");
  ASSERT_EQ(api.status, 200) << api.body;
  EXPECT_EQ(json::parse(api.body), unmatched);
  EXPECT_TRUE(instances().empty());
  // The table view names it too.
  std::string table = sagactl_stdout({"events", "ls", "--db", db_});
  EXPECT_NE(table.find("order.cancelled"), std::string::npos) << table;
}

TEST_F(EventsTest, MalformedEventsGet400AndStoreNothing) {
  start_worker({"--program", program()});
  struct Case {
    std::string body;
    std::map<std::string, std::string> headers;
    std::string names;  // In the error message.
  };
  json no_id = json::parse(order_event("x"));
  no_id.erase("id");
  json old = json::parse(order_event("y"));
  old["specversion"] = "0.3";
  auto no_type = binary_headers("z");
  no_type.erase("ce-type");
  const std::vector<Case> cases = {
      {no_id.dump(), kStructured, "'id'"},
      {old.dump(), kStructured, "specversion"},
      {"{not json", kStructured, "not JSON"},
      {"[1, 2]", kStructured, "JSON object"},
      {R"({"order": 1})", {{"Content-Type", "application/json"}}, "not a CloudEvent"},
      {"{not json", binary_headers("w"), "not JSON"},
      {"{}", no_type, "'type'"},
  };
  for (const Case& c : cases) {
    HttpReply r = post_event(c.body, c.headers);
    EXPECT_EQ(r.status, 400) << c.body << ": " << r.body;
    json err = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(err.is_object()) << r.body;
    const std::string message = err["error"]["message"];
    EXPECT_NE(message.find(c.names), std::string::npos) << message;
  }
  EXPECT_TRUE(events().empty());
  EXPECT_TRUE(instances().empty());
}

TEST_F(EventsTest, AnEventWhoseTriggerCannotStartIsRecordedWithWhy) {
  start_worker({"--program", program()});
  json event = json::parse(order_event("n-1"));
  event["data"].erase("amount");
  HttpReply r = post_event(event.dump(), kStructured);
  ASSERT_EQ(r.status, 422) << r.body;
  json body = json::parse(r.body);
  EXPECT_TRUE(body["matched"].get<bool>());
  EXPECT_TRUE(body["started"].empty());
  EXPECT_NE(body["note"].get<std::string>().find("event.data.amount is missing"), std::string::npos)
      << body;
  HttpReply again = post_event(event.dump(), kStructured);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_TRUE(instances().empty());
  ASSERT_EQ(events().size(), 1u);
}

// A delivery, kill -9 of the worker, a new worker, the same delivery: the
// record survived, so nothing starts twice, and the first instance still
// runs to its end.
TEST_F(EventsTest, ARedeliveryAfterKill9OfTheWorkerStartsNothingTwice) {
  start_worker({"--program", program()});
  HttpReply r = post_event(order_event("k-1"), kStructured);
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = json::parse(r.body)["started"][0];
  worker_->kill();
  worker_.reset();
  start_worker({"--program", program()});
  // Redelivered in the other mode: the same (source, id).
  HttpReply again = post_event(R"({"order": "A-k-1", "amount": 12.5})", binary_headers("k-1"));
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body)["started"], json::array({id}));
  expect_completed(id);
  EXPECT_EQ(instances().size(), 1u);
}

// A worker that serves no trigger still takes events: its instances'
// `await event` may be waiting for them. One nothing waits for is recorded
// unmatched.
TEST_F(EventsTest, AWorkerWithoutProgramsRecordsEventsForItsAwaits) {
  start_worker();
  HttpReply r = post_event(order_event("p-1"), kStructured);
  ASSERT_EQ(r.status, 202) << r.body;
  json body = json::parse(r.body);
  EXPECT_FALSE(body["matched"].get<bool>());
  EXPECT_EQ(body["started"], json::array());
  EXPECT_EQ(body["woke"], json::array());
  json listed = events(/*unmatched=*/true);
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["id"], "p-1");
}

TEST_F(EventsTest, ProgramsWithoutTriggersAreRefusedAtStart) {
  std::string out;
  const std::string hello = std::string(SAGA_SOURCE_DIR) + "/samples/hello.saga";
  EXPECT_EQ(sagactl({"worker", "--db", db_, "--program", hello}, &out), 1);
  EXPECT_NE(out.find("has no trigger"), std::string::npos) << out;
}

// Also: --program takes a compiled .sagac (its triggers are in the file).
TEST_F(EventsTest, WithATokenPostingAnEventNeedsIt) {
  std::ofstream(dir_ / "token") << "ev-token\n";
  const std::string sagac = (dir_ / "events.sagac").string();
  ASSERT_EQ(sagactl({"compile", program(), "-o", sagac}), 0);
  start_worker({"--program", sagac, "--admin-token-file", (dir_ / "token").string()});
  EXPECT_EQ(post_event(order_event("t-1"), kStructured).status, 401);
  auto with = kStructured;
  with["Authorization"] = "Bearer wrong";
  EXPECT_EQ(post_event(order_event("t-1"), with).status, 403);
  EXPECT_TRUE(events().empty());
  with["Authorization"] = "Bearer ev-token";
  EXPECT_EQ(post_event(order_event("t-1"), with).status, 202);
}

}  // namespace
}  // namespace saga::test
