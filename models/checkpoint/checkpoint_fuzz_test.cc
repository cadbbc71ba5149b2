// Robustness: mutated files either load or fail with CheckpointError; never a crash, another
// exception type, or a large allocation. Deterministic (fixed seeds).
#include <sys/resource.h>

#include <algorithm>
#include <random>
#include <string>
#include <typeinfo>

#include <gtest/gtest.h>
#include <zlib.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/pickle_reader.h"
#include "models/checkpoint/state_dict.h"
#include "models/checkpoint/testing/python_fixtures.h"
#include "models/checkpoint/zip_reader.h"
#include "tests/testing/paths.h"

namespace iis::models::checkpoint {
namespace {

// The largest growth of peak resident memory a run may cause. Fixtures are a few KB, so
// anything near this means an allocation sized from corrupt data.
constexpr long kMaxPeakGrowthKb = 256 * 1024;

long PeakRssKb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Applies 1-4 random edits: flip a bit, set a byte, or cut the tail.
std::string Mutate(const std::string& original, size_t begin, size_t end, std::mt19937& rng) {
  std::string bytes = original;
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < edits && end > begin; ++i) {
    const size_t at = begin + rng() % (end - begin);
    switch (rng() % 8) {
      case 0:
        bytes.resize(at);
        end = std::min(end, at);
        break;
      case 1:
      case 2:
        bytes[at] = static_cast<char>(rng() & 0xFF);
        break;
      default:
        bytes[at] ^= static_cast<char>(1 << (rng() % 8));
        break;
    }
  }
  return bytes;
}

// Counts outcomes; any exception other than CheckpointError fails the test.
struct Outcomes {
  int loaded = 0;
  int refused = 0;

  template <typename F>
  void Run(F&& load, int iteration) {
    try {
      load();
      ++loaded;
    } catch (const CheckpointError&) {
      ++refused;
    } catch (const std::exception& error) {
      ADD_FAILURE() << "iteration " << iteration << " threw a " << typeid(error).name()
                    << " instead of a CheckpointError: " << error.what();
    }
  }
};

class CheckpointFuzzTest : public fixtures::PythonFixtureTest {
 protected:
  void SetUp() override {
    fixtures::PythonFixtureTest::SetUp();
    peak_before_ = PeakRssKb();
  }

  void TearDown() override {
#ifndef __SANITIZE_ADDRESS__  // AddressSanitizer keeps 256 MB of freed memory in quarantine
    EXPECT_LT(PeakRssKb() - peak_before_, kMaxPeakGrowthKb) << "peak memory grew too much";
#endif
    fixtures::PythonFixtureTest::TearDown();
  }

 private:
  long peak_before_ = 0;
};

TEST_F(CheckpointFuzzTest, MutatedArchivesLoadOrFailCleanly) {
  const std::string original = testing_paths::ReadFileBytes(Fixture("small.pth"));
  const std::string path = ScratchDir() + "/mutated.pth";
  std::mt19937 rng(20240601);
  Outcomes outcomes;
  for (int i = 0; i < 1500; ++i) {
    fixtures::WriteFileBytes(path, Mutate(original, 0, original.size(), rng));
    outcomes.Run([&] { LoadCheckpoint(path); }, i);
  }
  EXPECT_GT(outcomes.refused, 0);
}

// Mutates only data.pkl and fixes its CRC-32 in the central directory, so the mutations reach
// the unpickler and the tensor checks instead of stopping at the checksum.
TEST_F(CheckpointFuzzTest, MutatedPicklesWithValidChecksumsLoadOrFailCleanly) {
  const std::string original = testing_paths::ReadFileBytes(Fixture("small.pth"));
  ZipReader zip(Fixture("small.pth"));
  const ZipEntry* pickle = zip.Find("small/data.pkl");
  ASSERT_NE(pickle, nullptr);
  const size_t begin = pickle->data_offset;
  const size_t end = begin + pickle->size;
  const std::string name = "small/data.pkl";
  size_t crc_at = std::string::npos;
  for (size_t at = original.find("PK\x01\x02"); at != std::string::npos;
       at = original.find("PK\x01\x02", at + 1)) {
    if (original.compare(at + 46, name.size(), name) == 0) crc_at = at + 16;
  }
  ASSERT_NE(crc_at, std::string::npos);

  const std::string path = ScratchDir() + "/mutated.pth";
  std::mt19937 rng(7);
  Outcomes outcomes;
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = original;
    std::string body = Mutate(original.substr(begin, end - begin), 0, end - begin, rng);
    body.resize(end - begin, 'N');  // keep the entry's size: cuts become NONE opcodes
    bytes.replace(begin, end - begin, body);
    const uint32_t crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size());
    for (int b = 0; b < 4; ++b) bytes[crc_at + b] = static_cast<char>((crc >> (8 * b)) & 0xFF);
    fixtures::WriteFileBytes(path, bytes);
    outcomes.Run([&] { LoadCheckpoint(path); }, i);
  }
  EXPECT_GT(outcomes.loaded, 0);
  EXPECT_GT(outcomes.refused, 0);
}

TEST_F(CheckpointFuzzTest, MutatedPickleStreamsParseOrFailCleanly) {
  ZipReader zip(Fixture("cls.pth"));
  const std::string original = zip.ReadEntryToString(*zip.Find("cls/data.pkl"));
  std::mt19937 rng(99);
  Outcomes outcomes;
  for (int i = 0; i < 3000; ++i) {
    const std::string bytes = Mutate(original, 0, original.size(), rng);
    outcomes.Run([&] { Unpickle(bytes, "fuzz"); }, i);
  }
  EXPECT_GT(outcomes.loaded, 0);
  EXPECT_GT(outcomes.refused, 0);
}

TEST_F(CheckpointFuzzTest, MutatedSafetensorsLoadOrFailCleanly) {
  const std::string original = testing_paths::ReadFileBytes(Fixture("model.safetensors"));
  const std::string path = ScratchDir() + "/mutated.safetensors";
  std::mt19937 rng(5);
  Outcomes outcomes;
  for (int i = 0; i < 1500; ++i) {
    fixtures::WriteFileBytes(path, Mutate(original, 0, original.size(), rng));
    outcomes.Run([&] { LoadCheckpoint(path); }, i);
  }
  EXPECT_GT(outcomes.loaded, 0);
  EXPECT_GT(outcomes.refused, 0);
}

}  // namespace
}  // namespace iis::models::checkpoint
