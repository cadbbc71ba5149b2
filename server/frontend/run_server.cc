#include "server/frontend/run_server.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/file_io.h"
#include "common/logging.h"
#include "server/frontend/server.h"

namespace iis {
namespace {

// Write end of the self-pipe; the handler writes the signal number there and nothing else.
int g_signal_write_fd = -1;

extern "C" void OnTerminationSignal(int signo) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signo);
  const ssize_t written = ::write(g_signal_write_fd, &byte, 1);
  (void)written;
  errno = saved_errno;
}

// SIGTERM/SIGINT -> self-pipe -> a watcher thread. The first signal notifies WaitForSignal();
// a second one ends the process at once.
class SignalWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<SignalWatcher>> Install() {
    std::unique_ptr<SignalWatcher> watcher(new SignalWatcher());
    if (::pipe2(watcher->pipe_, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
    }
    g_signal_write_fd = watcher->pipe_[1];
    struct sigaction action {};
    action.sa_handler = OnTerminationSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, &watcher->old_term_);
    sigaction(SIGINT, &action, &watcher->old_int_);
    watcher->thread_ = std::thread([w = watcher.get()] { w->Watch(); });
    return watcher;
  }

  ~SignalWatcher() {
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
    const unsigned char stop = 0;
    const ssize_t written = ::write(pipe_[1], &stop, 1);
    (void)written;
    thread_.join();
    g_signal_write_fd = -1;
    ::close(pipe_[0]);
    ::close(pipe_[1]);
  }

  bool signalled() const { return first_.HasBeenNotified(); }

  // Blocks until the first signal and returns its name.
  std::string WaitForSignal() {
    first_.WaitForNotification();
    return signal_name_;
  }

 private:
  SignalWatcher() = default;

  void Watch() {
    int count = 0;
    while (true) {
      unsigned char byte = 0;
      const ssize_t n = ::read(pipe_[0], &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || byte == 0) return;
      if (++count == 1) {
        signal_name_ = byte == SIGTERM  ? "SIGTERM"
                       : byte == SIGINT ? "SIGINT"
                                        : absl::StrCat("signal ", byte);
        first_.Notify();
      } else {
        common::Log(common::LogSeverity::kError,
                    "second termination signal while shutting down: exiting now");
        std::_Exit(130);
      }
    }
  }

  int pipe_[2] = {-1, -1};
  struct sigaction old_term_ {};
  struct sigaction old_int_ {};
  std::thread thread_;
  std::string signal_name_;  // written before first_ is notified
  absl::Notification first_;
};

std::string DescribeModels(const Engine& engine) {
  std::vector<std::string> parts;
  for (const ModelMetadata& model : engine.ListModels()) {
    parts.push_back(absl::StrCat(model.name, " (", std::string(TaskName(model.task)),
                                 model.is_default ? ", default" : "", ", version ", model.version,
                                 model.real_weights ? "" : ", RANDOM WEIGHTS", ")"));
  }
  return absl::StrJoin(parts, ", ");
}

int Fail(absl::string_view what, const absl::Status& status) {
  common::Log(common::LogSeverity::kError,
              absl::StrCat("start-up failed: ", what, ": ", status.ToString()));
  return kExitStartupFailure;
}

}  // namespace

int RunServer(const RunServerOptions& options) {
  const ServerConfig& config = options.config;
  common::Log(common::LogSeverity::kInfo,
              absl::StrCat("configuration: ", config.ShortDebugString()));

  absl::StatusOr<std::unique_ptr<SignalWatcher>> signals = SignalWatcher::Install();
  if (!signals.ok()) return Fail("signal handling", signals.status());

  Metrics::Options metrics_options;
  metrics_options.port = config.metrics_port();
  absl::StatusOr<std::unique_ptr<Metrics>> metrics = Metrics::Create(metrics_options);
  if (!metrics.ok()) return Fail("metrics endpoint", metrics.status());

  absl::StatusOr<std::unique_ptr<VisionServer>> server =
      VisionServer::Create(ServerOptionsFromConfig(config), metrics->get());
  if (!server.ok()) return Fail("gRPC server", server.status());
  absl::StatusOr<HostPort> address = SplitListenAddress(config.listen_address());
  const std::string host = address.ok() ? address->host : config.listen_address();
  const std::string endpoint = JoinHostPort(host, (*server)->port());
  common::Log(
      common::LogSeverity::kInfo,
      absl::StrCat("listening on ", endpoint, ", health NOT_SERVING while the models load"));

  const absl::Time load_start = absl::Now();
  absl::StatusOr<std::unique_ptr<Engine>> engine = options.create_engine(config, metrics->get());
  if (!engine.ok()) return Fail("model engine", engine.status());
  if ((*signals)->signalled()) {
    common::Log(common::LogSeverity::kInfo,
                "termination requested while the models loaded: exiting");
    return (*engine)->Drain(absl::ZeroDuration()).ok() ? kExitOk : kExitDrainTimeout;
  }
  const std::string models = DescribeModels(**engine);
  if (absl::Status status = (*server)->AttachEngine(*std::move(engine)); !status.ok()) {
    return Fail("attaching the engine", status);
  }
  common::Log(common::LogSeverity::kInfo,
              absl::StrCat("models ready in ", absl::FormatDuration(absl::Now() - load_start), ": ",
                           models));
  const int metrics_port = (*metrics)->port();
  if (options.on_serving) options.on_serving((*server)->port(), metrics_port);
  common::Log(
      common::LogSeverity::kInfo,
      absl::StrCat("serving on ", endpoint,
                   metrics_port >= 0 ? absl::StrCat(", metrics on :", metrics_port, "/metrics")
                                     : std::string(", metrics off")));

  const std::string signal_name = (*signals)->WaitForSignal();
  const absl::Duration grace = absl::Milliseconds(config.drain_grace_period_ms());
  common::Log(common::LogSeverity::kInfo, absl::StrCat(signal_name, ": draining (grace period ",
                                                       absl::FormatDuration(grace), ")"));
  const absl::Time drain_start = absl::Now();
  const absl::Status drained = (*server)->Drain(grace);
  if (!drained.ok()) {
    common::Log(common::LogSeverity::kWarning,
                absl::StrCat("drain did not finish in time: ", drained.ToString()));
    return kExitDrainTimeout;
  }
  common::Log(
      common::LogSeverity::kInfo,
      absl::StrCat("drained in ", absl::FormatDuration(absl::Now() - drain_start), "; exiting"));
  return kExitOk;
}

void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  if (absl::Status written = common::WriteFileAtomically(path, absl::StrCat(port, "\n"));
      !written.ok()) {
    common::Log(common::LogSeverity::kError,
                absl::StrCat("cannot write the port file: ", written.message()));
  }
}

}  // namespace iis
