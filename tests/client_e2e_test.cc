// End-to-end tests of internimage-client and internimage-loadgen: the real binaries against
// fake_vision_server processes (the real front end over the deterministic fake engine,
// tests/fake_engine.h), each started on free ports by the test.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli/palette.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "tests/metrics_scrape.h"

namespace iis::client {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// ---- processes -------------------------------------------------------------------------------

// The build tree: CTest passes it in IIS_BINARY_DIR; a direct run falls back to the configure-time
// path.
fs::path BinaryDir() {
  const char* dir = std::getenv("IIS_BINARY_DIR");
  return dir != nullptr && *dir != '\0' ? fs::path(dir) : fs::path(IIS_E2E_BINARY_DIR);
}

std::string ClientBinary() { return (BinaryDir() / "bin" / "internimage-client").string(); }
std::string LoadgenBinary() { return (BinaryDir() / "bin" / "internimage-loadgen").string(); }
std::string ServerBinary() { return (BinaryDir() / "tests" / "fake_vision_server").string(); }

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A fresh directory under the test's temporary directory.
fs::path MakeTempDir(const std::string& name) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / absl::StrCat("client_e2e_", name, "_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Starts `argv` with stdout and stderr redirected to files; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  const pid_t pid = fork();
  if (pid == 0) {
    // Servers must not outlive a test that crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

struct RunResult {
  int exit_code = -1;  // -1: killed after the timeout
  std::string out;
  std::string err;
};

// Runs a client binary to completion (killing it after `timeout`).
RunResult RunProcess(const std::vector<std::string>& argv,
                     std::chrono::seconds timeout = std::chrono::seconds(60)) {
  static int counter = 0;
  const fs::path dir = fs::path(::testing::TempDir());
  const fs::path out = dir / absl::StrCat("client_e2e_run_", getpid(), "_", counter, ".out");
  const fs::path err = dir / absl::StrCat("client_e2e_run_", getpid(), "_", counter++, ".err");
  const pid_t pid = Spawn(argv, out, err);
  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.out = ReadText(out);
      result.err = ReadText(err);
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadText(out);
  result.err = ReadText(err);
  fs::remove(out);
  fs::remove(err);
  return result;
}

// Waits for a port file written by fake_vision_server `pid`; returns the port, or -1 when the
// process exits first or the timeout passes.
int ReadPortFile(const fs::path& path, pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path);
    int port = -1;
    if (in >> port) return port;
    siginfo_t info{};  // has it exited? (WNOWAIT: the owner still reaps it)
    if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

// A fake_vision_server process on free ports, stopped (SIGTERM) when the object goes.
class FakeServer {
 public:
  explicit FakeServer(const std::string& name, std::vector<std::string> extra_flags = {}) {
    dir_ = MakeTempDir(name);
    std::vector<std::string> argv = {ServerBinary(),
                                     "--port=0",
                                     "--metrics-port=0",
                                     "--port-file=" + (dir_ / "port").string(),
                                     "--metrics-port-file=" + (dir_ / "metrics_port").string(),
                                     "--drain-grace=1s",
                                     "--max-queue-size=256"};
    // An extra flag replaces a default of the same name (each option may be given once).
    for (const std::string& extra : extra_flags) {
      const std::string name = extra.substr(0, extra.find('='));
      argv.erase(std::remove_if(argv.begin() + 1, argv.end(),
                                [&name](const std::string& arg) {
                                  return arg.substr(0, arg.find('=')) == name;
                                }),
                 argv.end());
      argv.push_back(extra);
    }
    pid_ = Spawn(argv, dir_ / "server.out", dir_ / "server.log");
    port_ = ReadPortFile(dir_ / "port", pid_, std::chrono::seconds(30));
    metrics_port_ = ReadPortFile(dir_ / "metrics_port", pid_, std::chrono::seconds(5));
  }
  ~FakeServer() {
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500 && waitpid(pid_, &status, WNOHANG) != pid_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    fs::remove_all(dir_);
  }
  bool ok() const { return port_ > 0 && metrics_port_ > 0; }
  // Starts the server's drain (health turns NOT_SERVING, calls in flight finish).
  void Terminate() const { kill(pid_, SIGTERM); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string log() const { return ReadText(dir_ / "server.log"); }

  // Waits until `count` RPCs of `method` are in flight (iis_inflight_requests); false after 30 s.
  bool WaitForInFlight(const std::string& method, double count) const {
    const std::string label = absl::StrCat("method=\"", method, "\"");
    for (int i = 0; i < 1500; ++i) {
      double in_flight = 0;
      for (const auto& [series, value] : ParseExposition(HttpGet(metrics_port_, "/metrics"))) {
        if (absl::StartsWith(series, "iis_inflight_requests{") &&
            series.find(label) != std::string::npos) {
          in_flight += value;
        }
      }
      if (in_flight >= count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Sums iis_requests_total over the series whose labels include every one of `labels`
  // (e.g. {"method=\"Classify\"", "code=\"OK\""}), read from the /metrics endpoint.
  double RequestCount(const std::vector<std::string>& labels) const {
    double total = 0;
    for (const auto& [series, value] : ParseExposition(HttpGet(metrics_port_, "/metrics"))) {
      if (!absl::StartsWith(series, "iis_requests_total{")) continue;
      bool match = true;
      for (const std::string& label : labels) match &= series.find(label) != std::string::npos;
      if (match) total += value;
    }
    return total;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = -1;
  int metrics_port_ = -1;
};

// ---- JSON -------------------------------------------------------------------------------------

// Parses a JSON document into a protobuf Struct (a generic JSON tree).
google::protobuf::Struct ParseJson(const std::string& text) {
  google::protobuf::Struct document;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &document);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << text;
  return document;
}

const google::protobuf::Value& Field(const google::protobuf::Struct& object,
                                     const std::string& key) {
  static const auto* const kNull = new google::protobuf::Value();
  auto it = object.fields().find(key);
  EXPECT_NE(it, object.fields().end()) << "no field " << key;
  return it == object.fields().end() ? *kNull : it->second;
}

// ---- images -----------------------------------------------------------------------------------

// A 320x240 dark-blue image with a bright 120x120 square at (100, 60): the fake models answer
// "blue" first, detect "bright" at exactly that square, and segment it as "bright" (class 3).
fs::path WriteTestImage(const fs::path& dir, const std::string& name) {
  cv::Mat image(240, 320, CV_8UC3, cv::Scalar(90, 60, 30));  // BGR
  image(cv::Rect(100, 60, 120, 120)).setTo(cv::Scalar(250, 250, 250));
  const fs::path path = dir / name;
  cv::imwrite(path.string(), image);
  return path;
}

int ColourDistance(const cv::Vec3b& pixel, const cv::Scalar& colour) {
  return static_cast<int>(std::abs(pixel[0] - colour[0]) + std::abs(pixel[1] - colour[1]) +
                          std::abs(pixel[2] - colour[2]));
}

int ColourDistance(const cv::Vec3b& a, const cv::Vec3b& b) {
  return ColourDistance(a, cv::Scalar(b[0], b[1], b[2]));
}

// Number of pixels within `tolerance` (sum of channel differences) of `colour`.
int PixelsNear(const cv::Mat& image, const cv::Scalar& colour, int tolerance) {
  int count = 0;
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      count += ColourDistance(image.at<cv::Vec3b>(y, x), colour) <= tolerance;
    }
  }
  return count;
}

class ClientE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string& binary : {ClientBinary(), LoadgenBinary(), ServerBinary()}) {
      ASSERT_TRUE(fs::exists(binary)) << binary << " is not built";
    }
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    image_ = WriteTestImage(dir_, "square.png");
    server_ = std::make_unique<FakeServer>("server");
    ASSERT_TRUE(server_->ok()) << server_->log();
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunResult Client(std::vector<std::string> args) {
    args.insert(args.begin(), ClientBinary());
    return RunProcess(args);
  }
  RunResult Loadgen(std::vector<std::string> args) {
    args.insert(args.begin(), LoadgenBinary());
    args.push_back("--no-progress");
    return RunProcess(args);
  }

  fs::path dir_;
  fs::path image_;
  std::unique_ptr<FakeServer> server_;
};

// ---- internimage-client -----------------------------------------------------------------------

TEST_F(ClientE2eTest, ClassifyDetectSegmentPrintTheAnswers) {
  fs::create_directories(dir_ / "more");
  WriteTestImage(dir_ / "more", "copy.jpg");
  const RunResult classify = Client({"classify", "--target", server_->target(), image_.string(),
                                     (dir_ / "more").string(), "--top-k", "2"});
  ASSERT_EQ(classify.exit_code, 0) << classify.err;
  EXPECT_THAT(classify.out, HasSubstr("square.png: model fake_classifier"));
  EXPECT_THAT(classify.out, HasSubstr("copy.jpg: model fake_classifier"));
  EXPECT_THAT(classify.out, HasSubstr("blue"));
  EXPECT_THAT(classify.out, ::testing::Not(HasSubstr(" red")));  // top-2 only

  const RunResult detect = Client({"detect", "--target", server_->target(), image_.string()});
  ASSERT_EQ(detect.exit_code, 0) << detect.err;
  EXPECT_THAT(detect.out, HasSubstr("3 detections in 320x240"));
  // "bright" is the square: box (100, 60)-(220, 180), a 14400-pixel mask.
  EXPECT_THAT(detect.out,
              ::testing::ContainsRegex("1 +0 +0.900 +100.0 +60.0 +220.0 +180.0 +14400 +bright"));

  const RunResult segment =
      Client({"segment", "--target", server_->target(), image_.string(), "--raw"});
  ASSERT_EQ(segment.exit_code, 0) << segment.err;
  EXPECT_THAT(segment.out, HasSubstr("320x240, 2 classes"));
  EXPECT_THAT(segment.out, ::testing::ContainsRegex("3 +14400 +18.75% +bright"));
}

TEST_F(ClientE2eTest, JsonIsOneDocumentWithEveryResult) {
  const RunResult result = Client({"detect", "--target", server_->target(), "--json", "--no-masks",
                                   image_.string(), image_.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const google::protobuf::Struct document = ParseJson(result.out);
  EXPECT_EQ(Field(document, "command").string_value(), "detect");
  const auto& results = Field(document, "results").list_value();
  ASSERT_EQ(results.values_size(), 2);
  const auto& first = results.values(0).struct_value();
  EXPECT_TRUE(Field(first, "ok").bool_value());
  const auto& detections =
      Field(Field(first, "response").struct_value(), "detections").list_value();
  ASSERT_EQ(detections.values_size(), 3);
  const auto& best = detections.values(0).struct_value();
  EXPECT_EQ(Field(best, "label").string_value(), "bright");
  EXPECT_EQ(best.fields().count("mask"), 0u);  // --no-masks
}

TEST_F(ClientE2eTest, ModelsAndHealth) {
  const RunResult models = Client({"models", "--target", server_->target()});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  for (const char* name :
       {"fake_classifier", "fake_classifier_b", "fake_detector", "fake_segmenter"}) {
    EXPECT_THAT(models.out, HasSubstr(name));
  }
  const RunResult json = Client({"models", "--target", server_->target(), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto document = ParseJson(json.out);
  EXPECT_EQ(Field(document, "models").list_value().values_size(), 4);

  const RunResult health = Client({"health", "--target", server_->target()});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_THAT(health.out, HasSubstr("SERVING"));
  const RunResult unknown_service =
      Client({"health", "--target", server_->target(), "--service", "no.such.Service"});
  EXPECT_EQ(unknown_service.exit_code, 15) << unknown_service.err;  // NOT_FOUND
  EXPECT_THAT(unknown_service.err, HasSubstr("NOT_FOUND"));
}

TEST(ClientHealthE2eTest, HealthIsNotServingWhileTheServerDrains) {
  const fs::path dir = MakeTempDir("drain");
  const fs::path image = WriteTestImage(dir, "square.png");
  FakeServer server("drain_server", {"--latency=3s", "--drain-grace=10s"});
  ASSERT_TRUE(server.ok()) << server.log();
  ASSERT_EQ(RunProcess({ClientBinary(), "health", "--target", server.target()}).exit_code, 0);
  // A slow call keeps the server draining (not gone) after SIGTERM.
  const pid_t slow =
      Spawn({ClientBinary(), "classify", "--target", server.target(), image.string()},
            dir / "slow.out", dir / "slow.err");
  ASSERT_TRUE(server.WaitForInFlight("Classify", 1)) << server.log();
  server.Terminate();
  // Health turns NOT_SERVING as soon as the signal is handled (asynchronously).
  RunResult health;
  for (int i = 0; i < 100; ++i) {
    health = RunProcess({ClientBinary(), "health", "--target", server.target()});
    if (health.exit_code != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(health.exit_code, 4) << health.out << health.err;  // answered, not SERVING
  EXPECT_THAT(health.out, HasSubstr("NOT_SERVING"));
  const RunResult refused =
      RunProcess({ClientBinary(), "classify", "--target", server.target(), image.string()});
  EXPECT_EQ(refused.exit_code, 24) << refused.err;  // UNAVAILABLE: draining
  int status = 0;
  waitpid(slow, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadText(dir / "slow.err");
  fs::remove_all(dir);
}

TEST_F(ClientE2eTest, VisualizationsAreWrittenWithContent) {
  const fs::path out = dir_ / "pictures";
  const cv::Mat input = cv::imread(image_.string());
  for (const char* command : {"classify", "detect", "segment"}) {
    const RunResult result = Client(
        {command, "--target", server_->target(), image_.string(), "--visualize", out.string()});
    ASSERT_EQ(result.exit_code, 0) << command << ": " << result.err;
    const fs::path picture = out / absl::StrCat("square.", command, ".png");
    EXPECT_THAT(result.out, HasSubstr(picture.string()));
    const cv::Mat image = cv::imread(picture.string());
    ASSERT_FALSE(image.empty()) << picture;
    EXPECT_EQ(image.size(), input.size()) << command;
    cv::Mat diff;
    cv::absdiff(image, input, diff);
    cv::Mat changed;
    cv::transform(diff, changed, cv::Matx13f(1, 1, 1));
    EXPECT_GT(cv::countNonZero(changed > 30), 500) << command << ": not a copy of the input";
  }
  // Detection: each instance's box is outlined in its own colour, and the masks are
  // translucent (the tinted square is neither the input nor a flat colour).
  const cv::Mat detect = cv::imread((out / "square.detect.png").string());
  for (int i = 0; i < 3; ++i) {
    EXPECT_GT(PixelsNear(detect, InstanceColour(i), 12), 100) << "instance " << i;
  }
  const cv::Vec3b inside = detect.at<cv::Vec3b>(150, 160);
  EXPECT_GT(ColourDistance(inside, input.at<cv::Vec3b>(150, 160)), 60);
  for (int i = 0; i < 3; ++i) EXPECT_GT(ColourDistance(inside, InstanceColour(i)), 30) << i;
  // Segmentation: inside the square, each channel lies part way between the input and the
  // palette colour of class 3 ("bright"): the map is blended over the image.
  const cv::Mat segment = cv::imread((out / "square.segment.png").string());
  const cv::Scalar palette = SegmentationColour(3);
  const cv::Vec3b blended = segment.at<cv::Vec3b>(170, 200);
  const cv::Vec3b original = input.at<cv::Vec3b>(170, 200);
  for (int c = 0; c < 3; ++c) {
    const double alpha = (blended[c] - original[c]) / (palette[c] - original[c]);
    EXPECT_GT(alpha, 0.2) << c;
    EXPECT_LT(alpha, 0.8) << c;
  }
}

TEST_F(ClientE2eTest, ErrorsHaveStatusNamesAndExitCodes) {
  const RunResult unknown_model = Client(
      {"classify", "--target", server_->target(), "--model", "no_such_model", image_.string()});
  EXPECT_EQ(unknown_model.exit_code, 15);  // 10 + NOT_FOUND
  EXPECT_THAT(unknown_model.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(unknown_model.err, HasSubstr("no_such_model"));

  const RunResult wrong_task = Client(
      {"detect", "--target", server_->target(), "--model", "fake_classifier", image_.string()});
  EXPECT_EQ(wrong_task.exit_code, 13);  // 10 + INVALID_ARGUMENT
  EXPECT_THAT(wrong_task.err, HasSubstr("INVALID_ARGUMENT"));

  std::string dead_target;
  {
    FakeServer stopped("stopped");
    ASSERT_TRUE(stopped.ok());
    dead_target = stopped.target();
  }
  const RunResult unreachable = Client(
      {"classify", "--target", dead_target, image_.string(), image_.string(), "--deadline", "5s"});
  EXPECT_EQ(unreachable.exit_code, 24);  // 10 + UNAVAILABLE
  EXPECT_THAT(unreachable.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(unreachable.err, HasSubstr("1 image(s) not sent"));

  const RunResult usage = Client({"classify", image_.string(), "--top-k", "many"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, HasSubstr("--top-k: expected an integer"));
  const RunResult missing =
      Client({"classify", "--target", server_->target(), (dir_ / "missing.jpg").string()});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_THAT(missing.err, HasSubstr("missing.jpg"));
}

// Returns the path of `program` on PATH, or "" when it is not installed.
std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path == nullptr ? "" : path, ':')) {
    const fs::path candidate = fs::path(std::string(dir)) / program;
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// Makes a CA and a certificate signed by it for `name` ("server" or "client") with the subject
// alternative name iis.test, using the openssl tool: <dir>/<name>.pem, <dir>/<name>.key.
void MakeCertificate(const std::string& openssl, const fs::path& dir, const std::string& name) {
  const std::string key = (dir / (name + ".key")).string();
  const std::string csr = (dir / (name + ".csr")).string();
  const std::string ext = (dir / "ext.cnf").string();
  std::ofstream(ext) << "subjectAltName=DNS:iis.test\n";
  ASSERT_EQ(RunProcess({openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=iis.test"})
                .exit_code,
            0);
  ASSERT_EQ(RunProcess({openssl, "x509", "-req", "-in", csr, "-CA", (dir / "ca.pem").string(),
                        "-CAkey", (dir / "ca.key").string(), "-CAcreateserial", "-days", "1",
                        "-extfile", ext, "-out", (dir / (name + ".pem")).string()})
                .exit_code,
            0);
}

TEST(ClientTlsE2eTest, MutualTlsWithServerNameOverride) {
  const std::string openssl = FindOnPath("openssl");
  if (openssl.empty()) GTEST_SKIP() << "the openssl tool is not installed";
  const fs::path dir = MakeTempDir("tls");
  ASSERT_EQ(
      RunProcess({openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", (dir / "ca.key").string(),
                  "-out", (dir / "ca.pem").string(), "-days", "1", "-subj", "/CN=iis-test-ca"})
          .exit_code,
      0);
  MakeCertificate(openssl, dir, "server");
  MakeCertificate(openssl, dir, "client");
  FakeServer server("tls_server", {"--tls-cert=" + (dir / "server.pem").string(),
                                   "--tls-key=" + (dir / "server.key").string(),
                                   "--tls-client-ca=" + (dir / "ca.pem").string()});
  ASSERT_TRUE(server.ok()) << server.log();
  const std::vector<std::string> tls = {"--ca-cert",     (dir / "ca.pem").string(),
                                        "--server-name", "iis.test",
                                        "--client-cert", (dir / "client.pem").string(),
                                        "--client-key",  (dir / "client.key").string()};

  std::vector<std::string> health = {ClientBinary(), "health", "--target", server.target()};
  health.insert(health.end(), tls.begin(), tls.end());
  const RunResult ok = RunProcess(health);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("SERVING"));

  // Without the client certificate the server refuses the handshake.
  const RunResult refused =
      RunProcess({ClientBinary(), "health", "--target", server.target(), "--ca-cert",
                  (dir / "ca.pem").string(), "--server-name", "iis.test", "--deadline", "5s"});
  EXPECT_EQ(refused.exit_code, 24) << refused.out;  // UNAVAILABLE
  // Plaintext against a TLS server fails too.
  EXPECT_NE(RunProcess({ClientBinary(), "health", "--target", server.target(), "--deadline", "5s"})
                .exit_code,
            0);

  std::vector<std::string> load = {
      LoadgenBinary(), "--target",        server.target(), "--rpc", "getmodel",
      "--model",       "fake_classifier", "--requests",    "50",    "--no-progress"};
  load.insert(load.end(), tls.begin(), tls.end());
  const RunResult loaded = RunProcess(load);
  EXPECT_EQ(loaded.exit_code, 0) << loaded.err;
  EXPECT_EQ(server.RequestCount({"method=\"GetModel\"", "code=\"OK\""}), 50);
  fs::remove_all(dir);
}

// ---- internimage-loadgen ----------------------------------------------------------------------

TEST_F(ClientE2eTest, LoadgenSuccessCountEqualsTheServerCounter) {
  const fs::path json = dir_ / "run.json";
  const fs::path csv = dir_ / "run.csv";
  const fs::path plot = dir_ / "run.png";
  const RunResult result = Loadgen({"--target", server_->target(), "--rpc", "classify",
                                    "--concurrency", "4", "--duration", "1s", "--json",
                                    json.string(), "--csv", csv.string(), "--plot", plot.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out;
  EXPECT_THAT(result.out, HasSubstr("p99.9"));
  const auto document = ParseJson(ReadText(json));
  const auto& steps = Field(document, "steps").list_value();
  ASSERT_EQ(steps.values_size(), 1);
  const auto& step = steps.values(0).struct_value();
  const double ok = Field(step, "requests_ok").number_value();
  EXPECT_GT(ok, 10);
  EXPECT_EQ(Field(step, "requests_failed").number_value(), 0);
  EXPECT_EQ(ok, server_->RequestCount({"method=\"Classify\"", "code=\"OK\""}));
  EXPECT_EQ(server_->RequestCount({"method=\"Classify\"", "code=\""}), ok);  // nothing else
  const auto& latency = Field(step, "latency_ms").struct_value();
  EXPECT_GT(Field(latency, "p50").number_value(), 0);
  EXPECT_LE(Field(latency, "p50").number_value(), Field(latency, "p99").number_value());
  EXPECT_GT(Field(Field(step, "server_timing_ms").struct_value(), "answers").number_value(), 0);
  EXPECT_THAT(ReadText(csv), HasSubstr("requests_ok"));
  const cv::Mat chart = cv::imread(plot.string());
  EXPECT_EQ(chart.cols, 1000);
}

TEST_F(ClientE2eTest, LoadgenOpenLoopAndWarmup) {
  const fs::path json = dir_ / "open.json";
  const RunResult result =
      Loadgen({"--target", server_->target(), "--rpc", "getmodel", "--model", "fake_detector",
               "--rate", "200", "--arrivals", "constant", "--warmup", "300ms", "--duration", "1s",
               "--json", json.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out;
  const auto document = ParseJson(ReadText(json));
  const auto& step = Field(document, "steps").list_value().values(0).struct_value();
  const double ok = Field(step, "requests_ok").number_value();
  const double warmup = Field(step, "warmup_requests").number_value();
  EXPECT_NEAR(ok, 200, 3);     // 1 s at 200/s, evenly spaced
  EXPECT_NEAR(warmup, 60, 3);  // 300 ms at 200/s
  // The server saw both: warm-up calls are sent, only left out of the figures.
  EXPECT_EQ(server_->RequestCount({"method=\"GetModel\"", "code=\"OK\""}), ok + warmup);
}

TEST_F(ClientE2eTest, LoadgenSpreadsRequestsOverTwoServers) {
  FakeServer second("second");
  ASSERT_TRUE(second.ok()) << second.log();
  const fs::path json = dir_ / "fleet.json";
  const RunResult result =
      Loadgen({"--target", server_->target(), "--target", second.target(), "--rpc", "classify",
               "--requests", "200", "--concurrency", "4", "--json", json.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err << result.out;
  const double first_count = server_->RequestCount({"method=\"Classify\"", "code=\"OK\""});
  const double second_count = second.RequestCount({"method=\"Classify\"", "code=\"OK\""});
  EXPECT_GT(first_count, 0);
  EXPECT_GT(second_count, 0);
  EXPECT_EQ(first_count + second_count, 200);
  const auto document = ParseJson(ReadText(json));
  const auto& step = Field(document, "steps").list_value().values(0).struct_value();
  const auto& per_target = Field(step, "per_target").list_value();
  ASSERT_EQ(per_target.values_size(), 2);
  EXPECT_EQ(Field(per_target.values(0).struct_value(), "requests_ok").number_value(), first_count);
  EXPECT_EQ(Field(per_target.values(1).struct_value(), "requests_ok").number_value(), second_count);
}

TEST_F(ClientE2eTest, LoadgenBalancesOneTargetThatNamesTwoAddresses) {
  // One gRPC target with two addresses: the channel's round_robin policy must use both.
  FakeServer second("second");
  ASSERT_TRUE(second.ok()) << second.log();
  const std::string target = absl::StrCat("ipv4:", server_->target(), ",", second.target());
  // The warm-up gives the second connection time to come up before the measured calls.
  const fs::path json = dir_ / "balanced.json";
  const RunResult classify =
      Loadgen({"--target", target, "--rpc", "classify", "--warmup", "300ms", "--requests", "100",
               "--concurrency", "2", "--synthetic", "64x64", "--json", json.string()});
  ASSERT_EQ(classify.exit_code, 0) << classify.err << classify.out;
  const auto document = ParseJson(ReadText(json));
  const auto& step = Field(document, "steps").list_value().values(0).struct_value();
  const double sent = 100 + Field(step, "warmup_requests").number_value();
  const double first_count = server_->RequestCount({"method=\"Classify\"", "code=\"OK\""});
  const double second_count = second.RequestCount({"method=\"Classify\"", "code=\"OK\""});
  EXPECT_GT(first_count, 10);
  EXPECT_GT(second_count, 10);
  EXPECT_EQ(first_count + second_count, sent);
}

TEST_F(ClientE2eTest, LoadgenErrorExitCodes) {
  const RunResult unknown_model =
      Loadgen({"--target", server_->target(), "--model", "no_such_model", "--duration", "1s"});
  EXPECT_EQ(unknown_model.exit_code, 15) << unknown_model.err;  // NOT_FOUND, before any load
  EXPECT_THAT(unknown_model.err, HasSubstr("no_such_model"));
  EXPECT_EQ(server_->RequestCount({"method=\"Classify\""}), 0);

  std::string dead_target;
  {
    FakeServer stopped("stopped");
    ASSERT_TRUE(stopped.ok());
    dead_target = stopped.target();
  }
  const RunResult unreachable = Loadgen({"--target", dead_target, "--duration", "1s"});
  EXPECT_EQ(unreachable.exit_code, 24) << unreachable.err;  // UNAVAILABLE
  EXPECT_THAT(unreachable.err, HasSubstr(dead_target));

  const RunResult unbounded = Loadgen({"--target", server_->target(), "--concurrency", "2"});
  EXPECT_EQ(unbounded.exit_code, 2);
  EXPECT_THAT(unbounded.err, HasSubstr("must end by itself"));

  // Requests that fail at the server: the run completes, errors are counted by code, exit 5.
  const fs::path json = dir_ / "errors.json";
  const fs::path broken = dir_ / "broken.jpg";
  std::ofstream(broken) << "not an image";
  const RunResult failing = Loadgen({"--target", server_->target(), "--rpc", "classify",
                                     "--requests", "20", broken.string(), "--json", json.string()});
  EXPECT_EQ(failing.exit_code, 5) << failing.err << failing.out;
  const auto document = ParseJson(ReadText(json));
  const auto& step = Field(document, "steps").list_value().values(0).struct_value();
  EXPECT_EQ(Field(step, "requests_failed").number_value(), 20);
  EXPECT_EQ(Field(Field(step, "errors").struct_value(), "INVALID_ARGUMENT").number_value(), 20);
}

}  // namespace
}  // namespace iis::client
