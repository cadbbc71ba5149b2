// Where tests find the repository and the build tree.
//
// Every test built with iis_add_test (cmake/IisHelpers.cmake) gets IIS_TEST_SOURCE_DIR and
// IIS_TEST_BINARY_DIR compiled in; the environment variables IIS_SOURCE_DIR / IIS_BINARY_DIR
// override them (e.g. to run a test binary against another checkout). Header-only, thread-safe.
#pragma once

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace iis::testing_paths {

// Returns the repository root (the directory holding CMakeLists.txt, ops/, models/ ...).
inline std::string SourceDir() {
  if (const char* env = std::getenv("IIS_SOURCE_DIR")) return env;
#ifdef IIS_TEST_SOURCE_DIR
  return IIS_TEST_SOURCE_DIR;
#else
  return ".";
#endif
}

// Returns the build tree (its bin/ holds internimage-server, internimage-predict ...).
inline std::string BinaryDir() {
  if (const char* env = std::getenv("IIS_BINARY_DIR")) return env;
#ifdef IIS_TEST_BINARY_DIR
  return IIS_TEST_BINARY_DIR;
#else
  return ".";
#endif
}

// Returns the path of one of the real photographs Debian's python3-skimage ships (astronaut.png,
// chelsea.png, coffee.png, motorcycle_left.png, rocket.jpg ...).
inline std::string SkimagePhoto(const std::string& name) {
  return "/usr/lib/python3/dist-packages/skimage/data/" + name;
}

// Returns the bytes of the file at `path` (empty when it cannot be read).
inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace iis::testing_paths
