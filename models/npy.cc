#include "models/npy.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace iis::models {
namespace {

size_t DtypeSize(const std::string& d) {
  if (d == "<f4" || d == "<i4") return 4;
  if (d == "<f8" || d == "<i8") return 8;
  if (d == "|u1" || d == "|b1") return 1;
  return 0;
}

// Returns the value of `key` in a Python dict literal header, e.g. 'descr': '<f4'.
std::string HeaderField(const std::string& header, const std::string& key) {
  const auto pos = header.find("'" + key + "'");
  if (pos == std::string::npos) return {};
  auto colon = header.find(':', pos);
  if (colon == std::string::npos) return {};
  size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  if (start >= header.size()) return {};
  if (header[start] == '\'') {
    const auto end = header.find('\'', start + 1);
    return end == std::string::npos ? std::string{} : header.substr(start + 1, end - start - 1);
  }
  if (header[start] == '(') {
    const auto end = header.find(')', start);
    return end == std::string::npos ? std::string{} : header.substr(start, end - start + 1);
  }
  const auto end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

}  // namespace

int64_t NpyArray::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t NpyArray::ElementSize() const { return DtypeSize(dtype); }

NpyArray ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw NpyError(path + ": cannot open");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    throw NpyError(path + ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) throw NpyError(path + ": truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) throw NpyError(path + ": truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    throw NpyError(path + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > (1u << 20)) throw NpyError(path + ": header too large");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw NpyError(path + ": truncated header");

  NpyArray a;
  a.dtype = HeaderField(header, "descr");
  if (a.dtype == "<u1" || a.dtype == "u1") a.dtype = "|u1";
  if (DtypeSize(a.dtype) == 0) {
    throw NpyError(path + ": unsupported dtype '" + a.dtype +
                   "' (expected little-endian float32/64, int32/64, uint8 or bool)");
  }
  if (HeaderField(header, "fortran_order") != "False") {
    throw NpyError(path + ": Fortran-order arrays are not supported");
  }
  const std::string shape = HeaderField(header, "shape");
  if (shape.size() < 2 || shape.front() != '(') throw NpyError(path + ": bad shape field");
  std::stringstream ss(shape.substr(1, shape.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    const long long v = std::stoll(item);
    if (v < 0) throw NpyError(path + ": negative dimension");
    a.shape.push_back(v);
  }
  const int64_t n = a.NumElements();
  const auto bytes = static_cast<size_t>(n) * a.ElementSize();
  a.data.resize(bytes);
  if (bytes > 0 &&
      !in.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(bytes))) {
    throw NpyError(path + ": data is shorter than the shape says (" + std::to_string(bytes) +
                   " bytes expected)");
  }
  return a;
}

void WriteNpy(const std::string& path, const NpyArray& a) {
  if (DtypeSize(a.dtype) == 0) throw NpyError(path + ": unsupported dtype '" + a.dtype + "'");
  if (a.data.size() != static_cast<size_t>(a.NumElements()) * a.ElementSize()) {
    throw NpyError(path + ": data size does not match the shape");
  }
  std::string shape = "(";
  for (size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + ", ";
  if (a.shape.size() > 1) shape.resize(shape.size() - 2);
  if (a.shape.size() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header =
      "{'descr': '" + a.dtype + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that magic + length + header + '\n' is a multiple of 64 bytes.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw NpyError(path + ": cannot open for writing");
  out.write("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(a.data.data()),
            static_cast<std::streamsize>(a.data.size()));
  if (!out) throw NpyError(path + ": write failed");
}

}  // namespace iis::models
