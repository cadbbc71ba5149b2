// CRC-32 as zip archives use it (ISO-HDLC: polynomial 0xEDB88320 reflected, initial and final
// value 0xFFFFFFFF, the same value as zlib's crc32()).
#pragma once

#include <cstddef>
#include <cstdint>

namespace iis::models::checkpoint {

// Returns the CRC-32 of `size` bytes at `data` continued from `crc`, the CRC-32 of the bytes
// before them (0 for none), so Crc32(b, nb, Crc32(a, na)) is the CRC-32 of a followed by b.
// Thread-safe (pure function).
uint32_t Crc32(const void* data, size_t size, uint32_t crc = 0);

}  // namespace iis::models::checkpoint
