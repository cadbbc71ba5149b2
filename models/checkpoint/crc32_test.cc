#include "models/checkpoint/crc32.h"

#include <cstdint>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace iis::models::checkpoint {
namespace {

// Bit-at-a-time CRC-32, straight from the definition.
uint32_t ReferenceCrc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

std::string RandomBytes(size_t size, std::mt19937& rng) {
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
  return bytes;
}

TEST(Crc32Test, MatchesTheStandardCheckValue) {
  // The CRC-32/ISO-HDLC check value from the CRC catalogue.
  EXPECT_EQ(Crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(Crc32("", 0), 0u);
}

TEST(Crc32Test, MatchesTheBitwiseDefinitionForEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  const std::string bytes = RandomBytes(300, rng);
  for (size_t start = 0; start < 9; ++start) {
    for (size_t size = 0; start + size <= bytes.size(); size += 7) {
      const std::string piece = bytes.substr(start, size);
      ASSERT_EQ(Crc32(bytes.data() + start, size), ReferenceCrc32(piece))
          << "start " << start << " size " << size;
    }
  }
}

TEST(Crc32Test, ContinuesAcrossPieces) {
  std::mt19937 rng(11);
  const std::string bytes = RandomBytes(1000, rng);
  const uint32_t whole = Crc32(bytes.data(), bytes.size());
  for (size_t cut : {0, 1, 7, 8, 9, 500, 999, 1000}) {
    const uint32_t first = Crc32(bytes.data(), cut);
    EXPECT_EQ(Crc32(bytes.data() + cut, bytes.size() - cut, first), whole) << "cut at " << cut;
  }
}

}  // namespace
}  // namespace iis::models::checkpoint
