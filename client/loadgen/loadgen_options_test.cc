#include "client/loadgen/loadgen_options.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ErrorOf(const std::vector<std::string>& args) {
  auto config = ParseLoadgenArgs(args);
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(LoadgenOptionsTest, ParsesTheDocumentedClosedLoopForm) {
  auto config = ParseLoadgenArgs({"--target", "h:1", "--rpc", "detect", "--concurrency", "8",
                                  "--duration", "20s", "--json", "out.json"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->targets, ElementsAre("h:1"));
  EXPECT_EQ(config->rpc, LoadRpc::kDetect);
  ASSERT_EQ(config->steps.size(), 1u);
  EXPECT_EQ(config->steps[0].concurrency, 8);
  EXPECT_EQ(config->run.duration, absl::Seconds(20));
  EXPECT_EQ(config->run.requests, 0);
  EXPECT_EQ(config->json_path, "out.json");
  // No image given: a synthetic 640x480 JPEG.
  ASSERT_EQ(config->synthetic.size(), 1u);
  EXPECT_EQ(config->synthetic[0].width, 640);
}

TEST(LoadgenOptionsTest, ParsesSweepsTargetsAndOpenLoops) {
  auto config =
      ParseLoadgenArgs({"--target", "a:1,b:2", "--target", "c:3", "--rate", "5,10", "--rate", "20",
                        "--arrivals", "constant", "--requests", "100", "--warmup", "2s",
                        "--synthetic", "320x240,64x64", "img.jpg", "--plot", "p.png"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->targets, ElementsAre("a:1", "b:2", "c:3"));
  ASSERT_EQ(config->steps.size(), 3u);
  EXPECT_EQ(config->steps[2].rate, 20);
  EXPECT_EQ(config->steps[2].concurrency, 0);
  EXPECT_EQ(config->run.arrivals, ArrivalProcess::kConstant);
  EXPECT_EQ(config->run.requests, 100);
  EXPECT_EQ(config->run.warmup, absl::Seconds(2));
  EXPECT_EQ(config->synthetic.size(), 2u);
  EXPECT_THAT(config->image_paths, ElementsAre("img.jpg"));

  config = ParseLoadgenArgs(
      {"--rpc", "getmodel", "--model", "m", "--concurrency", "1,2,4", "--duration", "1s"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->steps.size(), 3u);
  EXPECT_EQ(config->request.model, "m");
  EXPECT_TRUE(config->synthetic.empty());
}

TEST(LoadgenOptionsTest, RefusesRunsThatWouldNotEndOrExceedTheCaps) {
  EXPECT_THAT(ErrorOf({"--concurrency", "4"}), HasSubstr("must end by itself"));
  EXPECT_THAT(ErrorOf({"--duration", "2h"}), HasSubstr("--duration"));
  EXPECT_THAT(ErrorOf({"--requests", "1000000000"}), HasSubstr("--requests"));
  EXPECT_THAT(ErrorOf({"--duration", "1h", "--concurrency", "1,2,4,8,16"}),
              HasSubstr("exceed the 4h"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--concurrency", "100000"}), HasSubstr("--concurrency"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--rate", "0"}), HasSubstr("--rate"));
}

TEST(LoadgenOptionsTest, ErrorsNameTheArgument) {
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--rate", "5", "--concurrency", "2"}),
              HasSubstr("got both"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--arrivals", "poisson"}),
              HasSubstr("--arrivals applies to open-loop"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--rate", "5", "--arrivals", "bursty"}),
              HasSubstr("'bursty'"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--rpc", "ping"}), HasSubstr("--rpc: expected"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--rpc", "health", "a.jpg"}),
              HasSubstr("sends no image"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--rpc", "health", "--model", "m"}),
              HasSubstr("--model does not apply"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--rpc", "classify", "--no-masks"}),
              HasSubstr("--no-masks applies to detect only"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--synthetic", "big"}), HasSubstr("--synthetic"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--plot", "chart.jpg"}), HasSubstr("--plot"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--concurrency", "4,,8"}), HasSubstr("'4,,8'"));
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--connections", "0"}), HasSubstr("--connections"));
  EXPECT_THAT(ErrorOf({"--duration", "soon"}), HasSubstr("--duration: expected a duration"));
}

TEST(LoadgenOptionsTest, AcceptsBothValueFormsAndUnderscoreNames) {
  auto config = ParseLoadgenArgs({"a.jpg", "--target=h:1", "--max_outstanding=5", "--rate=2.5",
                                  "b.jpg", "--connect_timeout", "1s", "--requests=10",
                                  "--rpc=segment", "--counts-only", "--no_progress"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->image_paths, ElementsAre("a.jpg", "b.jpg"));
  EXPECT_THAT(config->targets, ElementsAre("h:1"));
  EXPECT_EQ(config->run.max_outstanding, 5);
  ASSERT_EQ(config->steps.size(), 1u);
  EXPECT_EQ(config->steps[0].rate, 2.5);
  EXPECT_EQ(config->connect_timeout, absl::Seconds(1));
  EXPECT_EQ(config->rpc, LoadRpc::kSegment);
  EXPECT_TRUE(config->request.counts_only);
  EXPECT_TRUE(config->no_progress);
  EXPECT_TRUE(config->synthetic.empty());
  EXPECT_TRUE(ParseLoadgenArgs({"--help"})->help);
  EXPECT_THAT(ErrorOf({"--duration", "1s", "--json="}), HasSubstr("--json: expected a file path"));
}

TEST(LoadgenOptionsTest, HelpDocumentsTheOptionsAndExitCodes) {
  const std::string help = LoadgenHelp();
  for (const char* needle :
       {"--concurrency", "--rate", "--arrivals", "--warmup", "--duration", "--requests",
        "--synthetic", "--json", "--csv", "--plot", "INTENDED", "Exit codes", "UNAVAILABLE",
        // generated from the declarations, shared options included, with ranges
        "--concurrency N[,N...]:each in [1, 10000]", "--target HOST:PORT[,...]",
        "--connections N:in [1, 64]", "--top-k N:in [1, 100000]", "--no-progress"}) {
    EXPECT_THAT(help, HasSubstr(needle));
  }
}

}  // namespace
}  // namespace iis::client
