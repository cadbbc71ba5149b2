#include "client/cli/cli_options.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ErrorOf(const std::vector<std::string>& args) {
  auto config = ParseCliArgs(args);
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(CliOptionsTest, ParsesTheDocumentedForm) {
  auto config = ParseCliArgs({"classify", "--target", "h:1", "a.jpg", "dir", "--top-k=3",
                              "--deadline", "5s", "--json", "--raw"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->command, CliCommand::kClassify);
  EXPECT_EQ(config->channel.target, "h:1");
  EXPECT_FALSE(config->channel.tls);
  EXPECT_THAT(config->inputs, ElementsAre("a.jpg", "dir"));
  EXPECT_EQ(config->request.top_k, 3);
  EXPECT_TRUE(config->request.raw);
  EXPECT_TRUE(config->json);
  EXPECT_EQ(config->deadline, absl::Seconds(5));

  config = ParseCliArgs({"detect", "x.png", "--no-masks", "--ca-cert", "ca.pem", "--server-name",
                         "svc", "--visualize", "out"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->request.masks);
  EXPECT_TRUE(config->channel.tls);  // implied by --ca-cert
  EXPECT_EQ(config->channel.server_name, "svc");
  EXPECT_EQ(config->channel.target, "localhost:50051");
  EXPECT_EQ(config->visualize_dir, "out");

  config = ParseCliArgs({"health", "--service", "internimage.serving.v1.VisionService"});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->health_service, "internimage.serving.v1.VisionService");
  EXPECT_TRUE(ParseCliArgs({})->help);
  EXPECT_TRUE(ParseCliArgs({"-h"})->help);
}

TEST(CliOptionsTest, ErrorsNameTheArgument) {
  EXPECT_THAT(ErrorOf({"classfy", "a.jpg"}), HasSubstr("got 'classfy'"));
  EXPECT_THAT(ErrorOf({"--json"}), HasSubstr("expected a command"));
  EXPECT_THAT(ErrorOf({"classify"}), HasSubstr("expected at least one image"));
  EXPECT_THAT(ErrorOf({"detect", "a.jpg", "--top-k", "3"}),
              HasSubstr("--top-k applies to classify only"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--top-k", "0"}), HasSubstr("--top-k"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--deadline", "soon"}),
              HasSubstr("--deadline: expected a duration"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--bogus"}), HasSubstr("'--bogus'"));
  EXPECT_THAT(ErrorOf({"models", "a.jpg"}), HasSubstr("takes no image"));
  EXPECT_THAT(ErrorOf({"models", "--model", "m"}), HasSubstr("--model does not apply"));
  EXPECT_THAT(ErrorOf({"health", "--visualize", "d"}), HasSubstr("--visualize does not apply"));
  EXPECT_THAT(ErrorOf({"segment", "a.jpg", "--counts-only", "--visualize", "d"}),
              HasSubstr("--counts-only"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--target", "a:1", "--target", "b:2"}),
              HasSubstr("--target"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--client-cert", "c.pem"}), HasSubstr("--client-key"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--server-name", "x"}), HasSubstr("--tls"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--service", "x"}), HasSubstr("health only"));
}

TEST(CliOptionsTest, OptionsMayComeAnywhereInEitherForm) {
  auto config = ParseCliArgs({"--target=h:1", "--top_k", "2", "classify", "--deadline=500ms",
                              "a.jpg", "--", "--odd-name.jpg"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->command, CliCommand::kClassify);
  EXPECT_EQ(config->channel.target, "h:1");
  EXPECT_EQ(config->request.top_k, 2);
  EXPECT_EQ(config->deadline, absl::Milliseconds(500));
  EXPECT_THAT(config->inputs, ElementsAre("a.jpg", "--odd-name.jpg"));
  EXPECT_EQ(TaskOfCommand(CliCommand::kSegment), ::internimage::serving::v1::TASK_SEGMENTATION);
  EXPECT_EQ(TaskOfCommand(CliCommand::kModels), ::internimage::serving::v1::TASK_UNSPECIFIED);
  // An empty value is refused rather than taking the next argument as the directory.
  EXPECT_THAT(ErrorOf({"classify", "--visualize=", "a.jpg"}),
              HasSubstr("--visualize: expected an output directory"));
  EXPECT_THAT(ErrorOf({"classify", "a.jpg", "--target", "a:1,b:2"}),
              HasSubstr("expected one server, got several"));
}

TEST(CliOptionsTest, HelpDocumentsCommandsAndExitCodes) {
  const std::string help = CliHelp();
  for (const char* needle : {"classify", "detect", "segment", "models", "health", "--visualize",
                             "--json", "--raw", "Exit codes", "NOT_FOUND", "UNAVAILABLE",
                             // generated from the declarations: every option, with its range
                             "--target HOST:PORT", "--deadline DURATION", "--tensor N:in [1, 4096]",
                             "--top-k N:in [1, 100000]", "--score-threshold F:in [0, 1)",
                             "--service NAME", "IMAGE may be a file or a directory"}) {
    EXPECT_THAT(help, HasSubstr(needle));
  }
}

}  // namespace
}  // namespace iis::client
