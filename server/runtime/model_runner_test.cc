#include "server/runtime/model_runner.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/runtime/testing/fake_network.h"

namespace iis::runtime {
namespace {

using ::testing::HasSubstr;

TEST(ModelRunnerTest, RefusesBatchingTheQueueRejectsNamingTheField) {
  internimage::serving::v1::ModelConfig config;
  config.set_name("m");
  config.set_architecture("fake");
  config.set_instances(1);
  config.mutable_batching()->set_max_batch_size(4);
  config.mutable_batching()->set_max_queue_size(8);
  config.mutable_batching()->add_preferred_batch_sizes(8);  // above max_batch_size
  absl::StatusOr<LoadedModel> loaded = testing_fakes::FakeLoader({{"fake", {}}})(config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto pool = *common::ThreadPool::Create({});
  Metrics::Options metrics_options;
  metrics_options.port = -1;
  std::unique_ptr<Metrics> metrics = *Metrics::Create(metrics_options);
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(*std::move(loaded), config, pool.get(), metrics.get());
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner.status().message(), HasSubstr("preferred_batch_sizes[0]"));
}

}  // namespace
}  // namespace iis::runtime
