#include "models/checkpoint/crc32.h"

#include <array>
#include <cstring>

namespace iis::models::checkpoint {
namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Crc32's slicing-by-16 loop reads words as little endian"
#endif

constexpr int kSlices = 16;
using Tables = std::array<std::array<uint32_t, 256>, kSlices>;

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC of byte b followed by k
// zero bytes, which lets the main loop fold sixteen bytes per step (16 KiB of tables, L1-sized).
constexpr Tables MakeTables() {
  Tables tables{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    tables[0][byte] = crc;
  }
  for (int k = 1; k < kSlices; ++k) {
    for (uint32_t byte = 0; byte < 256; ++byte) {
      const uint32_t previous = tables[k - 1][byte];
      tables[k][byte] = (previous >> 8) ^ tables[0][previous & 0xFF];
    }
  }
  return tables;
}

constexpr Tables kTables = MakeTables();

}  // namespace

uint32_t Crc32(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  while (size >= 16) {
    uint32_t words[4];
    std::memcpy(words, p, 16);
    words[0] ^= crc;
    crc = 0;
    for (int w = 0; w < 4; ++w) {
      const int slice = 15 - 4 * w;
      crc ^= kTables[slice][words[w] & 0xFF] ^ kTables[slice - 1][(words[w] >> 8) & 0xFF] ^
             kTables[slice - 2][(words[w] >> 16) & 0xFF] ^ kTables[slice - 3][words[w] >> 24];
    }
    p += 16;
    size -= 16;
  }
  while (size-- > 0) crc = (crc >> 8) ^ kTables[0][(crc ^ *p++) & 0xFF];
  return ~crc;
}

}  // namespace iis::models::checkpoint
