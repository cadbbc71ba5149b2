#include "server/config/server_config.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// A file in a fresh temporary directory, removed with it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "iis_config_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string path = (path_ / name).string();
    std::ofstream(path) << content;
    return path;
  }
  std::string Path(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Returns the status message of validating `text` after defaults.
std::string ValidationErrors(const std::string& text) {
  absl::StatusOr<ServerConfig> config = ParseServerConfig(text);
  EXPECT_TRUE(config.ok()) << config.status();
  ApplyConfigDefaults(&*config);
  absl::Status status = ValidateServerConfig(*config);
  if (!status.ok()) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  }
  return std::string(status.message());
}

TEST(ServerConfigTest, EmptyConfigurationGetsTheDocumentedDefaults) {
  absl::StatusOr<ServerConfig> config = MakeServerConfig("", {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen_address(), "0.0.0.0:50051");
  EXPECT_EQ(config->metrics_port(), 8002);
  EXPECT_EQ(config->drain_grace_period_ms(), 30000);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(config->worker_threads(), cores);
  EXPECT_EQ(config->cpu_inference_threads(), cores);
  EXPECT_EQ(config->limits().max_message_bytes(), 64 << 20);
  EXPECT_EQ(config->limits().max_image_pixels(), 40000000);
  EXPECT_EQ(config->limits().max_image_side(), 16384);
  EXPECT_FALSE(config->has_tls() && !config->tls().cert_file().empty());

  ASSERT_EQ(config->models_size(), 3);
  const char* expected[] = {"internimage_t_1k_224", "mask_rcnn_internimage_t_fpn_1x_coco",
                            "upernet_internimage_t_512_160k_ade20k"};
  const int batch[] = {8, 2, 2};
  for (int i = 0; i < 3; ++i) {
    const auto& model = config->models(i);
    SCOPED_TRACE(model.architecture());
    EXPECT_EQ(model.architecture(), expected[i]);
    EXPECT_EQ(model.name(), expected[i]);
    EXPECT_EQ(model.version(), "1");
    EXPECT_TRUE(model.weights().empty());  // seeded random weights
    EXPECT_EQ(model.random_seed(), 0u);
    EXPECT_EQ(model.device(), "auto");
    EXPECT_EQ(model.instances(), 1);
    EXPECT_EQ(model.precision(), "float32");
    EXPECT_EQ(model.warmup_iterations(), 1);
    EXPECT_TRUE(model.default_for_task());
    EXPECT_EQ(model.batching().max_batch_size(), batch[i]);
    EXPECT_EQ(model.batching().max_queue_delay_us(), 2000);
    EXPECT_EQ(model.batching().max_queue_size(), 64);
    EXPECT_TRUE(model.batching().preferred_batch_sizes().empty());
  }
}

TEST(ServerConfigTest, ExplicitValuesSurviveDefaultsAndFirstModelOfATaskIsItsDefault) {
  absl::StatusOr<ServerConfig> config = ParseServerConfig(R"pb(
    listen_address: "127.0.0.1:6000"
    metrics_port: -1
    drain_grace_period_ms: 1500
    models {
      architecture: "internimage_s_1k_224"
      name: "small"
      version: "7"
      batching {
        max_batch_size: 16
        preferred_batch_sizes: [ 4, 8 ]
      }
    }
    models { architecture: "internimage_b_1k_224" name: "base" warmup_iterations: -1 }
    models { architecture: "mask_rcnn_internimage_s_fpn_3x_coco" name: "det_a" }
    models {
      architecture: "mask_rcnn_internimage_t_fpn_1x_coco"
      name: "det_b"
      default_for_task: true
      device: "cuda:1"
      precision: "float16"
      instances: 2
    }
  )pb");
  ASSERT_TRUE(config.ok()) << config.status();
  ApplyConfigDefaults(&*config);
  ASSERT_TRUE(ValidateServerConfig(*config).ok()) << ValidateServerConfig(*config);
  EXPECT_EQ(config->listen_address(), "127.0.0.1:6000");
  EXPECT_EQ(config->metrics_port(), -1);
  EXPECT_EQ(config->drain_grace_period_ms(), 1500);
  EXPECT_EQ(config->models(0).version(), "7");
  EXPECT_EQ(config->models(0).batching().max_batch_size(), 16);
  EXPECT_EQ(config->models(1).batching().max_batch_size(), 8);
  EXPECT_EQ(config->models(1).warmup_iterations(), -1);
  EXPECT_EQ(config->models(2).batching().max_batch_size(), 2);
  EXPECT_TRUE(config->models(0).default_for_task());  // first classification model
  EXPECT_FALSE(config->models(1).default_for_task());
  EXPECT_FALSE(config->models(2).default_for_task());  // det_b asked to be the default
  EXPECT_TRUE(config->models(3).default_for_task());
  EXPECT_EQ(config->models(3).instances(), 2);

  // Idempotent.
  ServerConfig again = *config;
  ApplyConfigDefaults(&again);
  EXPECT_EQ(ServerConfigToText(again), ServerConfigToText(*config));
}

TEST(ServerConfigTest, LoadsFilesAndExplainsParseErrors) {
  TempDir dir;
  const std::string good = dir.Write("good.pbtxt", "listen_address: \"[::1]:7000\"\n");
  absl::StatusOr<ServerConfig> config = MakeServerConfig(good, {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen_address(), "[::1]:7000");
  EXPECT_EQ(config->models_size(), 3);

  const std::string bad =
      dir.Write("bad.pbtxt", "models {\n  architecture: \"x\"\n  colour: 3\n}\n");
  absl::StatusOr<ServerConfig> parsed = LoadServerConfigFile(bad);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()),
              AllOf(HasSubstr(bad), HasSubstr(": 3:"), HasSubstr("colour")));

  absl::StatusOr<ServerConfig> missing = LoadServerConfigFile(dir.Path("nope.pbtxt"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              AllOf(HasSubstr("nope.pbtxt"), HasSubstr("No such file")));
}

TEST(ServerConfigTest, OverridesReplaceFileValues) {
  TempDir dir;
  const std::string cert = dir.Write("cert.pem", "-----BEGIN CERTIFICATE-----\n");
  const std::string key = dir.Write("key.pem", "-----BEGIN PRIVATE KEY-----\n");
  const std::string path = dir.Write("c.pbtxt", R"pb(
    listen_address: "10.0.0.1:5000"
    metrics_port: 9000
    worker_threads: 3
    models { architecture: "internimage_t_1k_224" device: "cpu" }
    models { architecture: "upernet_internimage_t_512_160k_ade20k" device: "cuda" }
  )pb");
  ConfigOverrides overrides;
  overrides.port = 0;
  overrides.metrics_port = 0;
  overrides.drain_grace = absl::Seconds(2);
  overrides.worker_threads = 5;
  overrides.cpu_inference_threads = 1;
  overrides.max_message_bytes = 1024;
  overrides.max_image_pixels = 99;
  overrides.device = "cpu";
  overrides.tls_cert_file = cert;
  overrides.tls_key_file = key;
  absl::StatusOr<ServerConfig> config = MakeServerConfig(path, overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen_address(), "10.0.0.1:0");
  EXPECT_EQ(config->metrics_port(), 0);
  EXPECT_EQ(config->drain_grace_period_ms(), 2000);
  EXPECT_EQ(config->worker_threads(), 5);
  EXPECT_EQ(config->cpu_inference_threads(), 1);
  EXPECT_EQ(config->limits().max_message_bytes(), 1024);
  EXPECT_EQ(config->limits().max_image_pixels(), 99);
  EXPECT_EQ(config->tls().cert_file(), cert);
  EXPECT_EQ(config->tls().key_file(), key);
  for (const auto& model : config->models()) EXPECT_EQ(model.device(), "cpu");

  ConfigOverrides host;
  host.host = "::1";
  absl::StatusOr<ServerConfig> v6 = MakeServerConfig(path, host);
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->listen_address(), "[::1]:5000");

  ConfigOverrides bad_port;
  bad_port.port = 70000;
  EXPECT_THAT(std::string(MakeServerConfig(path, bad_port).status().message()),
              HasSubstr("listen_address"));
}

TEST(ServerConfigTest, EveryValidationErrorNamesItsField) {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases = {
      {R"(listen_address: "nohost")", "listen_address: listen address \"nohost\" is not host:port"},
      {R"(listen_address: "h:99999")", "port \"99999\" is not a number in [0, 65535]"},
      {R"(listen_address: "::1:80")", "put an IPv6 host in brackets"},
      {R"(metrics_port: -2)", "metrics_port must be -1 (off) or in [0, 65535], got -2"},
      {R"(models { name: "x" })", "models[0].architecture is required"},
      {R"(models { architecture: "resnet50" })",
       "models[0].architecture \"resnet50\" is not a known architecture family"},
      {R"(models { architecture: "internimage_t_1k_224" name: "bad name" })",
       "models[0].name must be 1 to 128 characters of [A-Za-z0-9._-], got \"bad name\""},
      {R"(models { architecture: "internimage_t_1k_224" name: "a" }
          models { architecture: "internimage_s_1k_224" name: "b" }
          models { architecture: "internimage_b_1k_224" name: "a" })",
       "models[2].name \"a\" is already used by models[0]"},
      {R"(models { architecture: "internimage_t_1k_224" weights: "/nonexistent/w.pth" })",
       "models[0].weights: cannot read \"/nonexistent/w.pth\": No such file or directory"},
      {R"(models { architecture: "internimage_t_1k_224" device: "gpu" })",
       "models[0].device must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got \"gpu\""},
      {R"(models { architecture: "internimage_t_1k_224" device: "cuda:x" })",
       "models[0].device must be"},
      {R"(models { architecture: "internimage_t_1k_224" instances: -1 })",
       "models[0].instances must be >= 1, got -1"},
      {R"(models { architecture: "internimage_t_1k_224" precision: "int8" })",
       "models[0].precision must be \"float32\", \"float16\" or \"bfloat16\", got \"int8\""},
      {R"(models { architecture: "internimage_t_1k_224" precision: "float16" device: "cpu" })",
       "models[0].precision float16 needs a CUDA device"},
      {R"(models { architecture: "internimage_t_1k_224" warmup_iterations: -2 })",
       "models[0].warmup_iterations must be -1 (none) or >= 1, got -2"},
      {R"(models { architecture: "internimage_t_1k_224" }
          models { architecture: "mask_rcnn_internimage_t_fpn_1x_coco"
                   batching { max_batch_size: -3 } })",
       "models[1].batching.max_batch_size must be >= 1, got -3"},
      {R"(models { architecture: "internimage_t_1k_224" batching { max_queue_delay_us: -1 } })",
       "models[0].batching.max_queue_delay_us must be >= 0, got -1"},
      {R"(models { architecture: "internimage_t_1k_224" batching { max_queue_size: -5 } })",
       "models[0].batching.max_queue_size must be >= 1, got -5"},
      {R"(models { architecture: "internimage_t_1k_224"
                   batching { max_batch_size: 8 preferred_batch_sizes: [4, 2] } })",
       "models[0].batching.preferred_batch_sizes[1] must be greater than the size before it (4): "
       "the sizes are ascending, got 2"},
      {R"(models { architecture: "internimage_t_1k_224" instances: 300 })",
       "models[0].instances must be <= 256, got 300"},
      {R"(models { architecture: "internimage_t_1k_224"
                   batching { max_batch_size: 8 preferred_batch_sizes: [4, 16] } })",
       "models[0].batching.preferred_batch_sizes[1] must be in [1, max_batch_size = 8], got 16"},
      {R"(models { architecture: "upernet_internimage_t_512_160k_ade20k" name: "s1"
                   default_for_task: true }
          models { architecture: "upernet_internimage_s_512_160k_ade20k" name: "s2"
                   default_for_task: true })",
       "models[1].default_for_task: models[0] (\"s1\") is already the default segmentation "
       "model"},
      {R"(limits { max_message_bytes: -1 })",
       "limits.max_message_bytes must be in [1, 2147483647], got -1"},
      {R"(limits { max_message_bytes: 4294967296 })", "limits.max_message_bytes must be in"},
      {R"(limits { max_image_pixels: -1 })", "limits.max_image_pixels must be >= 1, got -1"},
      {R"(limits { max_image_side: -1 })", "limits.max_image_side must be >= 1, got -1"},
      {R"(tls { cert_file: "/etc/hostname" })",
       "tls.cert_file and tls.key_file must be set together (got only cert_file)"},
      {R"(tls { client_ca_file: "/etc/hostname" })", "tls.client_ca_file needs tls.cert_file"},
      {R"(tls { cert_file: "/nonexistent/c.pem" key_file: "/nonexistent/k.pem" })",
       "tls.cert_file: cannot read \"/nonexistent/c.pem\""},
      {R"(tls { cert_file: "/nonexistent/c.pem" key_file: "/nonexistent/k.pem" })",
       "tls.key_file: cannot read \"/nonexistent/k.pem\""},
      {R"(drain_grace_period_ms: -5)", "drain_grace_period_ms must be >= 0, got -5"},
      {R"(worker_threads: -1)", "worker_threads must be >= 1, got -1"},
      {R"(cpu_inference_threads: -1)", "cpu_inference_threads must be >= 1, got -1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_THAT(ValidationErrors(c.text), HasSubstr(c.error));
  }
}

TEST(ServerConfigTest, ReportsEveryProblemAtOnce) {
  const std::string errors = ValidationErrors(R"(
    metrics_port: -7 worker_threads: -1
    models { architecture: "internimage_t_1k_224" instances: -1 })");
  EXPECT_THAT(errors, AllOf(HasSubstr("metrics_port"), HasSubstr("worker_threads"),
                            HasSubstr("models[0].instances")));
  EXPECT_THAT(ValidationErrors(R"(models { architecture: "internimage_t_1k_224" })"),
              Not(HasSubstr("must")));
}

TEST(ServerConfigTest, TasksAndBatchDefaultsComeFromTheRegistry) {
  absl::StatusOr<ServerConfig> config = ParseServerConfig(R"pb(
    models { architecture: "upernet_internimage_l_640_160k_ade20k" }
    models { architecture: "internimage_xl_22kto1k_384" }
    models { architecture: "mask_rcnn_internimage_b_fpn_3x_coco" }
    models { architecture: "upernet_internimage_t_512_160k_ade20k" }
  )pb");
  ASSERT_TRUE(config.ok()) << config.status();
  ApplyConfigDefaults(&*config);
  ASSERT_TRUE(ValidateServerConfig(*config).ok()) << ValidateServerConfig(*config);
  const int batch[] = {2, 8, 2, 2};
  const bool is_default[] = {true, true, true, false};  // the first of each task
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(config->models(i).batching().max_batch_size(), batch[i]) << i;
    EXPECT_EQ(config->models(i).default_for_task(), is_default[i]) << i;
  }
  // A name that only looks like an architecture is refused with the registered ones listed.
  const std::string errors = ValidationErrors(R"(models { architecture: "cascade_internimage" })");
  EXPECT_THAT(errors, AllOf(HasSubstr("\"cascade_internimage\" is not a known architecture"),
                            HasSubstr("internimage_t_1k_224"),
                            HasSubstr("mask_rcnn_internimage_t_fpn_1x_coco")));
}

TEST(ServerConfigTest, BatchQueueOptionsForMirrorsTheModelConfiguration) {
  ServerConfig config;
  auto* model = config.add_models();
  model->set_name("m");
  model->set_instances(3);
  model->mutable_batching()->set_max_batch_size(16);
  model->mutable_batching()->set_max_queue_delay_us(2500);
  model->mutable_batching()->add_preferred_batch_sizes(4);
  model->mutable_batching()->add_preferred_batch_sizes(8);
  model->mutable_batching()->set_max_queue_size(40);
  const BatchQueueOptions options = BatchQueueOptionsFor(*model);
  EXPECT_EQ(options.name, "m");
  EXPECT_EQ(options.num_instances, 3);
  EXPECT_EQ(options.max_batch_size, 16);
  EXPECT_EQ(options.max_queue_delay, absl::Microseconds(2500));
  EXPECT_EQ(options.preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_EQ(options.max_queue_size, 40);
  EXPECT_TRUE(ValidateBatchQueueOptions(options).ok());
}

TEST(ServerConfigTest, Addresses) {
  absl::StatusOr<HostPort> v4 = SplitListenAddress("0.0.0.0:50051");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "0.0.0.0");
  EXPECT_EQ(v4->port, 50051);
  absl::StatusOr<HostPort> v6 = SplitListenAddress("[::]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::");
  EXPECT_EQ(JoinHostPort(v6->host, 80), "[::]:80");
  EXPECT_EQ(JoinHostPort("localhost", 80), "localhost:80");
  EXPECT_FALSE(SplitListenAddress(":80").ok());
  EXPECT_FALSE(SplitListenAddress("host:").ok());
  EXPECT_FALSE(SplitListenAddress("host:-1").ok());
  EXPECT_FALSE(SplitListenAddress("[::1]80").ok());
}

}  // namespace
}  // namespace iis
