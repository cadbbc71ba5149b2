#include "models/checkpoint/safetensors.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/testing/expect_tensor.h"
#include "models/checkpoint/testing/python_fixtures.h"
#include "tests/testing/paths.h"

namespace iis::models::checkpoint {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class SafetensorsTest : public fixtures::PythonFixtureTest {
 protected:
  // Writes a safetensors file: the header's length, the header, then `data`.
  std::string Write(const std::string& header, const std::string& data) {
    std::string bytes;
    for (int i = 0; i < 8; ++i) bytes += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    const std::string path = ScratchDir() + "/test.safetensors";
    fixtures::WriteFileBytes(path, bytes + header + data);
    return path;
  }

  std::string ReadError(const std::string& path) {
    try {
      ReadSafetensors(path);
    } catch (const CheckpointError& error) {
      return error.what();
    }
    return "no error";
  }
};

TEST_F(SafetensorsTest, RoundTripsEveryDtypeAndEscapedName) {
  const std::string path = Fixture("model.safetensors");
  const Checkpoint checkpoint = LoadCheckpoint(path);
  EXPECT_EQ(checkpoint.format, CheckpointFormat::kSafetensors);
  const std::vector<fixtures::ExpectedTensor> expected = fixtures::ReadExpected(path);
  ASSERT_EQ(checkpoint.weights.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(checkpoint.weights.entries()[i].first, expected[i].name);  // file order
    const at::Tensor* tensor = checkpoint.weights.Find(expected[i].name);
    ASSERT_NE(tensor, nullptr) << expected[i].name;
    fixtures::ExpectSameTensor(*tensor, expected[i]);
  }
  EXPECT_NE(checkpoint.weights.Find("quote\"back\\slash"), nullptr);
  EXPECT_NE(checkpoint.weights.Find("ünï✓😀"), nullptr);
  // LoadCheckpoint drops the DataParallel prefix; ReadSafetensors keeps names as they are.
  EXPECT_NE(checkpoint.weights.Find("conv.weight"), nullptr);
  EXPECT_NE(ReadSafetensors(path).Find("module.conv.weight"), nullptr);
}

TEST_F(SafetensorsTest, ReadsAHandWrittenFile) {
  const float values[] = {1.5f, -2.0f};
  const std::string data(reinterpret_cast<const char*>(values), sizeof(values));
  const StateDict weights = ReadSafetensors(Write(
      R"({"__metadata__": {"k": "v"}, "b": {"dtype": "BOOL", "shape": [0], "data_offsets": [8, 8]},
          "w": {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}})",
      data));
  ASSERT_EQ(weights.size(), 2u);
  EXPECT_EQ(weights.entries()[0].first, "w");  // ordered by data offset
  EXPECT_TRUE(torch::equal(*weights.Find("w"), torch::tensor({{1.5f}, {-2.0f}})));
  EXPECT_EQ(weights.Find("b")->scalar_type(), at::kBool);
  EXPECT_EQ(weights.Find("b")->numel(), 0);
}

TEST_F(SafetensorsTest, RejectsInconsistentHeaders) {
  const std::string data(12, '\0');
  const auto error = [&](const std::string& header) { return ReadError(Write(header, data)); };
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})"),
              HasSubstr("entry 'a' has data_offsets [0, 16] outside the data section of 12 "
                        "bytes"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})"),
              HasSubstr("tensors 'a' [0, 8) and 'b' [4, 12) overlap"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})"),
              HasSubstr("covers 8 bytes but a Float tensor of shape [3] needs 12"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [], "data_offsets": [0, 0]}})"),
              HasSubstr("covers 0 bytes but a Float tensor of shape [] needs 4"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})"),
              HasSubstr("has dtype 'F8_E4M3', which is not supported"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}})"),
              HasSubstr("has an unknown field 'x'"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [1]}})"),
              HasSubstr("lacks one of 'dtype', 'shape' and 'data_offsets'"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})"),
              HasSubstr("shape entry that is not a non-negative integer"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})"),
              HasSubstr("0 <= begin <= end"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 4],
                        "data_offsets": [0, 4]}})"),
              HasSubstr("has too many elements"));
  EXPECT_THAT(error(R"({"a": [1]})"), HasSubstr("entry 'a' is a JSON array, expected an object"));
  EXPECT_THAT(error(R"([1, 2])"), HasSubstr("the safetensors header is a JSON array"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})"),
              HasSubstr("shape entry that is not a non-negative integer"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [9223372036854775808],
                        "data_offsets": [0, 4]}})"),
              HasSubstr("shape entry that is not a non-negative integer"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [1],
                        "data_offsets": [0, 18446744073709551616]}})"),
              HasSubstr("0 <= begin <= end"));
  EXPECT_THAT(error(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4e0]}})"),
              HasSubstr("0 <= begin <= end"));
  EXPECT_THAT(error(R"({"a": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}})"),
              HasSubstr("has a non-string dtype"));
  EXPECT_THAT(ReadError(Write(R"({"b": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})",
                              std::string("\x01\x02", 2))),
              HasSubstr("bool tensor 'b' holds the byte 2 at offset 1"));
}

TEST_F(SafetensorsTest, RejectsHeadersThatAreNotStrictJson) {
  const std::string data(4, '\0');
  const std::string entry = R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
  const auto error = [&](const std::string& header) { return ReadError(Write(header, data)); };
  // A name given twice is ambiguous: refused, in the header and inside an entry.
  EXPECT_THAT(error("{\"a\": " + entry + ", \"a\": " + entry + "}"),
              HasSubstr("the safetensors header has the key \"a\" twice in one object"));
  EXPECT_THAT(
      error(R"({"a": {"dtype": "F32", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})"),
      HasSubstr("has the key \"dtype\" twice"));
  EXPECT_THAT(error(R"({"__metadata__": {"k": "1", "k": "2"}})"), HasSubstr("\"k\" twice"));
  // The same key in different objects is fine.
  EXPECT_EQ(error("{\"a\": " + entry + ", \"__metadata__\": {\"a\": \"x\"}}"), "no error");

  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(error("{\"__metadata__\": " + deep + "}"),
              HasSubstr("nests containers deeper than 64 levels"));
  const std::string fine = std::string(60, '[') + std::string(60, ']');
  EXPECT_EQ(error("{\"__metadata__\": " + fine + ", \"a\": " + entry + "}"), "no error");

  for (const std::string& bad :
       {std::string(R"({"a": 1,})"), std::string(R"({"a": 1} x)"), std::string(R"({"a": 01})"),
        std::string(R"({a: 1})"), std::string(R"({"a": "x)"), std::string("{\"a\": \"x\ny\"}"),
        std::string(R"({"a": "\x"})"), std::string(R"({"a": "\ud83d"})"),
        std::string(R"({"a": 1e999})"), std::string("{\"a\": \"\xff\"}"),
        std::string("{} // comment"), std::string("")}) {
    SCOPED_TRACE(bad);
    const std::string message = error(bad);
    EXPECT_THAT(message, StartsWith(ScratchDir() + "/test.safetensors: "));
    EXPECT_THAT(message, HasSubstr("the safetensors header is not valid JSON: "));
  }
  EXPECT_THAT(error(R"({"a": 1,})"),
              HasSubstr("not valid JSON: parse error at line 1, column 9: syntax error"));
}

TEST_F(SafetensorsTest, RejectsBadLengthsAndTruncation) {
  const std::string path = ScratchDir() + "/bad.safetensors";
  fixtures::WriteFileBytes(path, std::string("\xff\xff\xff\xff\x00\x00\x00\x00{}", 10));
  EXPECT_THAT(ReadError(path), HasSubstr("header length 4294967295 does not fit the file's 10 "
                                         "bytes"));
  const std::string bytes = testing_paths::ReadFileBytes(Fixture("model.safetensors"));
  for (const size_t cut : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, bytes.size() - 1}) {
    SCOPED_TRACE(cut);
    fixtures::WriteFileBytes(path, bytes.substr(0, cut));
    const std::string error = ReadError(path);
    EXPECT_THAT(error, StartsWith(path + ": "));
    EXPECT_THAT(error, AnyOf(HasSubstr("too small"), HasSubstr("does not fit"),
                             HasSubstr("outside the data section")));
  }
}

}  // namespace
}  // namespace iis::models::checkpoint
