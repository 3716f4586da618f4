// The web view in a real browser: a `sagactl worker --listen 127.0.0.1:0`
// over a database of completed, compensated, stuck and running instances,
// chromedriver on a free loopback port, and headless Chromium driven through
// the W3C WebDriver protocol (the small client below, over the tests' HTTP
// helper). It checks what a user must see, presses Cancel on the running
// instance and sees its status change, checks that an input holding a
// <script> shows as text and did not run, and saves screenshots in
// tests/browser/artifacts/ of the build tree.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/serve/worker_fixture.hpp"
#include "tests/support/http_call.hpp"

namespace saga::test {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kChromium = "/usr/bin/chromium";
constexpr const char* kChromedriver = "/usr/bin/chromedriver";
// The key under which WebDriver returns an element reference.
constexpr const char* kElement = "element-6066-11e4-a52e-4f735466cecf";

// A port nobody listens on now (the kernel's choice for port 0).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string base64_decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0, buffer = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) continue;
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

// A WebDriver session in chromedriver: each call is one HTTP request.
class Browser {
 public:
  Browser(int port, const fs::path& profile) : port_(port) {
    json caps = {{"capabilities",
                  {{"alwaysMatch",
                    {{"goog:chromeOptions",
                      {{"binary", kChromium},
                       {"args",
                        {"--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run", "--window-size=1280,900",
                         "--user-data-dir=" + profile.string()}}}}}}}}};
    json reply = call("POST", "/session", caps);
    session_ = reply["value"].value("sessionId", "");
    if (session_.empty()) throw std::runtime_error("no WebDriver session: " + reply.dump());
  }
  ~Browser() {
    if (!session_.empty()) call("DELETE", "/session/" + session_);
  }

  void go(const std::string& url) { command("POST", "/url", {{"url", url}}); }
  std::string url() { return command("GET", "/url")["value"]; }
  std::string title() { return command("GET", "/title")["value"]; }
  // The element a CSS selector finds, or "" when there is none.
  std::string find(const std::string& css) {
    std::vector<std::string> all = find_all(css);
    return all.empty() ? std::string() : all.front();
  }
  std::vector<std::string> find_all(const std::string& css) {
    json v = command("POST", "/elements", {{"using", "css selector"}, {"value", css}})["value"];
    std::vector<std::string> out;
    for (const auto& e : v) out.push_back(e[kElement]);
    return out;
  }
  std::string text(const std::string& element) {
    return command("GET", "/element/" + element + "/text")["value"];
  }
  void click(const std::string& element) {
    command("POST", "/element/" + element + "/click", json::object());
  }
  json script(const std::string& body) {
    return command("POST", "/execute/sync", {{"script", body}, {"args", json::array()}})["value"];
  }
  void screenshot(const fs::path& file) {
    std::string png = base64_decode(command("GET", "/screenshot")["value"]);
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << png;
  }

 private:
  json command(const std::string& method, const std::string& path, const json& body = nullptr) {
    return call(method, "/session/" + session_ + path, body);
  }
  json call(const std::string& method, const std::string& target, const json& body = nullptr) {
    HttpReply r = http_call(port_, method, target, body.is_null() ? std::string() : body.dump());
    json parsed = json::parse(r.body, nullptr, false);
    if (r.status != 200) {
      throw std::runtime_error(method + " " + target + ": " + std::to_string(r.status) + " " +
                               r.body.substr(0, 500));
    }
    return parsed;
  }
  int port_;
  std::string session_;
};

class BrowserTest : public WorkerFixture {
 protected:
  void SetUp() override {
    WorkerFixture::SetUp();
    ASSERT_TRUE(fs::exists(kChromium) && fs::exists(kChromedriver))
        << "the browser test needs Debian's chromium and chromium-driver (./dev.sh installs them)";
  }
};

TEST_F(BrowserTest, AnOperatorSeesInstancesAndCancelsOne) {
  make_instances();
  start_worker();
  ASSERT_TRUE(eventually([&] { return status_of(running_) == "running"; }));
  const int driver_port = free_port();
  samples::ChildProcess driver({kChromedriver, "--port=" + std::to_string(driver_port)},
                               dir_ / "chromedriver.log");
  ASSERT_TRUE(eventually([&] {
    auto r = http_call(driver_port, "GET", "/status");
    return r.status == 200 && json::parse(r.body, nullptr, false)["value"].value("ready", false);
  })) << driver.output();
  const fs::path artifacts = fs::path(SAGA_BINARY_DIR) / "artifacts";
  const std::string base = "http://127.0.0.1:" + std::to_string(port_);
  try {
    Browser browser(driver_port, dir_ / "profile");

    // The list: every instance, with its status.
    browser.go(base + "/");
    EXPECT_EQ(browser.title(), "Instances - saga");
    auto rows = browser.find_all("#instances tbody tr");
    EXPECT_EQ(rows.size(), 4u);
    std::map<std::string, std::string> shown;
    for (const std::string& id : {completed_, compensated_, stuck_, running_}) {
      std::string row = browser.find("tr[data-id='" + id + "'] .status");
      ASSERT_FALSE(row.empty()) << id;
      shown[id] = browser.text(row);
    }
    EXPECT_EQ(shown[completed_], "completed");
    EXPECT_EQ(shown[compensated_], "compensated");
    EXPECT_EQ(shown[stuck_], "stuck");
    EXPECT_EQ(shown[running_], "running");
    browser.screenshot(artifacts / "instances.png");

    // Filtering by status through the form.
    browser.go(base + "/?status=stuck");
    EXPECT_EQ(browser.find_all("#instances tbody tr").size(), 1u);

    // A <script> in the input shows as text and did not run.
    browser.go(base + "/instances/" + completed_);
    EXPECT_NE(browser.text(browser.find("#input")).find(kScriptName), std::string::npos);
    EXPECT_TRUE(browser.script("return window.sagaPwned === undefined;").get<bool>());
    EXPECT_EQ(browser.find_all("main script").size(), 0u);
    EXPECT_NE(browser.text(browser.find("#history")).find("completed"), std::string::npos);

    // The stuck instance: its dead letter and the compensation in its timeline.
    browser.go(base + "/instances/" + stuck_);
    EXPECT_NE(browser.text(browser.find("#dead-letters")).find("second"), std::string::npos);
    EXPECT_FALSE(browser.find("#history li.event[data-kind='stuck']").empty());
    EXPECT_FALSE(browser.find("#history li.event[data-kind='compensating']").empty());
    EXPECT_TRUE(browser.find("#actions").empty()) << "no action applies to a stuck instance yet";

    // Cancel the running one: the form posts, the page comes back, the status changes.
    browser.go(base + "/instances/" + running_);
    EXPECT_EQ(browser.text(browser.find("#status")), "running");
    std::string button = browser.find("#actions button[value='cancel']");
    ASSERT_FALSE(button.empty());
    // Mark this document, so that the one the form's redirect loads is told
    // apart from it: navigating before the post went out would cancel the post.
    browser.script("document.body.dataset.before = 'click';");
    browser.click(button);
    ASSERT_TRUE(eventually([&] {
      return browser
          .script(
              "return document.readyState === 'complete' && "
              "document.body.dataset.before === undefined;")
          .get<bool>();
    })) << browser.url();
    EXPECT_TRUE(eventually([&] {
      browser.go(base + "/instances/" + running_);
      return browser.text(browser.find("#status")) == "cancelled";
    })) << browser.text(browser.find("#status"));
    EXPECT_EQ(browser.url(), base + "/instances/" + running_);
    EXPECT_TRUE(browser.find("#actions").empty());
    browser.screenshot(artifacts / "cancelled.png");

    // Programs and dead letters.
    browser.go(base + "/programs");
    EXPECT_NE(browser.text(browser.find("#programs")).find("slow"), std::string::npos);
    browser.go(base + "/dead-letters");
    EXPECT_NE(browser.text(browser.find("#dead-letters")).find(stuck_), std::string::npos);
  } catch (const std::exception& e) {
    FAIL() << e.what() << "\nchromedriver:\n" << driver.output();
  }
  EXPECT_GT(fs::file_size(artifacts / "cancelled.png"), 1000u);
  driver.stop();
}

}  // namespace
}  // namespace saga::test
