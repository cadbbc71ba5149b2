#include "client/common/channel.h"
#include "common/command_line.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ChannelTest, AcceptsHostPortAndTargetUris) {
  for (const char* target :
       {"localhost:50051", "10.0.0.7:1", "[::1]:50051", "svc.ns:65535", "dns:///svc.ns:50051",
        "ipv4:127.0.0.1:1,127.0.0.1:2", "unix:/tmp/socket"}) {
    EXPECT_TRUE(ValidateTarget(target).ok()) << target;
  }
}

TEST(ChannelTest, RejectsMalformedTargets) {
  for (const char* target : {"", "localhost", "localhost:", ":50051", "host:0", "host:70000",
                             "host:http", "::1:50051", "dns:"}) {
    const absl::Status status = ValidateTarget(target);
    ASSERT_FALSE(status.ok()) << target;
    EXPECT_THAT(std::string(status.message()), HasSubstr("--target: expected HOST:PORT"));
    EXPECT_THAT(std::string(status.message()), HasSubstr(std::string("'") + target + "'"));
  }
  ChannelOptions options;
  options.target = "localhost:";
  EXPECT_EQ(CreateChannel(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChannelTest, TargetsAreAListCheckedWhileParsing) {
  for (TargetCount count : {TargetCount::kOne, TargetCount::kSeveral}) {
    CLI::App app;
    ChannelFlags flags;
    AddChannelOptions(app, count, &flags);
    ASSERT_TRUE(common::ParseCommandLine(app, {"--target", "a:1,dns:///b:2", "--target=c:3"}).ok());
    EXPECT_THAT(flags.targets, ElementsAre("a:1", "dns:///b:2", "c:3"));
  }
  CLI::App app;
  ChannelFlags flags;
  AddChannelOptions(app, TargetCount::kSeveral, &flags);
  const auto bad = common::ParseCommandLine(app, {"--target", "a:1,localhost:"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("--target: expected HOST:PORT"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'localhost:'"));
}

TEST(ChannelTest, TlsFlagsMustBeConsistent) {
  auto parse = [](std::vector<std::string> args) {
    CLI::App app;
    ChannelFlags flags;
    AddChannelOptions(app, TargetCount::kOne, &flags);
    EXPECT_TRUE(common::ParseCommandLine(app, std::move(args)).ok());
    ChannelOptions options;
    absl::Status status = ApplyTlsFlags(flags, &options);
    return std::make_pair(status, options);
  };
  EXPECT_TRUE(parse({"--tls"}).second.tls);
  EXPECT_TRUE(parse({"--client-cert", "c", "--client-key", "k"}).second.tls);
  EXPECT_FALSE(parse({}).second.tls);
  EXPECT_THAT(std::string(parse({"--client-key", "k"}).first.message()),
              HasSubstr("got only --client-key"));
  EXPECT_FALSE(parse({"--server-name", "x"}).first.ok());
  // A certificate that cannot be read is reported with its option.
  ChannelOptions options;
  options.tls = true;
  options.ca_cert_file = "/nonexistent/ca.pem";
  EXPECT_THAT(std::string(CreateChannel(options).status().message()), HasSubstr("--ca-cert"));
}

}  // namespace
}  // namespace iis::client
