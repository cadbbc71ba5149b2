#include "common/file_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace iis::common {
namespace {

using ::testing::HasSubstr;

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/iis_file_io_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

TEST_F(FileIoTest, WritesAndReadsBackBinaryData) {
  const std::string path = dir_ + "/data.bin";
  const std::string data("a\0b\xff\n", 5);
  ASSERT_TRUE(WriteFile(path, data).ok());
  absl::StatusOr<std::string> read = ReadFile("test", path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
}

TEST_F(FileIoTest, ErrorsNameThePurposeThePathAndTheReason) {
  absl::StatusOr<std::string> missing = ReadFile("--ca-cert", dir_ + "/none.pem");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("--ca-cert: file '"));
  EXPECT_THAT(missing.status().message(), HasSubstr("none.pem' does not exist"));

  absl::StatusOr<std::string> directory = ReadFile("image", dir_);
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(directory.status().message(), HasSubstr("expected a file, got the directory"));

  const absl::Status unwritable = WriteFile(dir_ + "/no/such/dir/file", "x");
  EXPECT_EQ(unwritable.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(unwritable.message(), HasSubstr("cannot create"));
}

TEST_F(FileIoTest, UnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const std::string path = dir_ + "/secret";
  ASSERT_TRUE(WriteFile(path, "x").ok());
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  EXPECT_EQ(ReadFile("key", path).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(FileIoTest, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  const std::string path = dir_ + "/port";
  ASSERT_TRUE(WriteFileAtomically(path, "1\n").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "50051\n").ok());
  EXPECT_EQ(*ReadFile("port file", path), "50051\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(WriteFileAtomically(dir_ + "/missing/port", "1").code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace iis::common
