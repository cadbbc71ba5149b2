#include "models/checkpoint/zip_reader.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/testing/python_fixtures.h"
#include "tests/testing/paths.h"

namespace iis::models::checkpoint {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct ListedEntry {
  std::string name;
  uint64_t size;
  uint32_t crc;
};

// NAME.entries: what Python's zipfile module lists for the archive.
std::vector<ListedEntry> ReadListing(const std::string& path) {
  std::istringstream lines(testing_paths::ReadFileBytes(path + ".entries"));
  std::vector<ListedEntry> entries;
  ListedEntry entry;
  while (lines >> entry.name >> entry.size >> entry.crc) entries.push_back(entry);
  return entries;
}

std::string OpenError(const std::string& path) {
  try {
    ZipReader zip(path);
  } catch (const CheckpointError& error) {
    return error.what();
  }
  return "no error";
}

void Store32(std::string& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

void Store64(std::string& bytes, size_t at, uint64_t value) {
  for (int i = 0; i < 8; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

class ZipReaderTest : public fixtures::PythonFixtureTest {
 protected:
  // Writes `bytes` to a scratch file and returns its path.
  std::string Scratch(const std::string& name, const std::string& bytes) {
    const std::string path = ScratchDir() + "/" + name;
    fixtures::WriteFileBytes(path, bytes);
    return path;
  }
};

TEST_F(ZipReaderTest, ListsWhatPythonsZipfileLists) {
  for (const char* name : {"cls.pth", "plain.pth", "zip64_all.pth"}) {
    SCOPED_TRACE(name);
    const std::vector<ListedEntry> listing = ReadListing(Fixture(name));
    ASSERT_FALSE(listing.empty());
    ZipReader zip(Fixture(name));
    ASSERT_EQ(zip.entries().size(), listing.size());
    for (size_t i = 0; i < listing.size(); ++i) {
      const ZipEntry& entry = zip.entries()[i];
      EXPECT_EQ(entry.name, listing[i].name);
      EXPECT_EQ(entry.size, listing[i].size);
      EXPECT_EQ(entry.crc32, listing[i].crc);
      EXPECT_EQ(entry.method, 0);
      EXPECT_EQ(zip.Find(entry.name), &entry);
      const std::string bytes = zip.ReadEntryToString(entry);
      EXPECT_EQ(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()),
                listing[i].crc);
    }
  }
}

TEST_F(ZipReaderTest, ReadsTheVersionRecord) {
  ZipReader zip(Fixture("cls.pth"));
  const ZipEntry* version = zip.Find("cls/version");
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(zip.ReadEntryToString(*version), "3\n");
  EXPECT_EQ(zip.Find("cls/missing"), nullptr);
}

TEST_F(ZipReaderTest, Zip64RecordsEverywhereGiveTheSameContent) {
  ZipReader plain(Fixture("plain.pth"));
  ZipReader zip64(Fixture("zip64_all.pth"));
  ASSERT_EQ(plain.entries().size(), zip64.entries().size());
  for (const ZipEntry& entry : plain.entries()) {
    const ZipEntry* other = zip64.Find(entry.name);
    ASSERT_NE(other, nullptr) << entry.name;
    EXPECT_EQ(zip64.ReadEntryToString(*other), plain.ReadEntryToString(entry)) << entry.name;
  }
}

TEST_F(ZipReaderTest, ReadsEntriesBeyondFourGibibytes) {
  const std::string path = Fixture("beyond_4gib.pth");
  if (!std::ifstream(path)) GTEST_SKIP() << "the fixture folder's file system has no sparse files";
  ZipReader plain(Fixture("plain.pth"));
  ZipReader far(path);
  ASSERT_EQ(far.entries().size(), plain.entries().size());
  for (const ZipEntry& entry : far.entries()) {
    EXPECT_GT(entry.data_offset, uint64_t{4} << 30) << entry.name;
    const ZipEntry* near = plain.Find(entry.name);
    ASSERT_NE(near, nullptr) << entry.name;
    EXPECT_EQ(far.ReadEntryToString(entry), plain.ReadEntryToString(*near)) << entry.name;
  }
}

TEST_F(ZipReaderTest, RefusesCompressedEntriesWithAHint) {
  ZipReader zip(Fixture("deflated.pth"));
  const ZipEntry* pickle = zip.Find("plain/data.pkl");
  ASSERT_NE(pickle, nullptr);
  try {
    zip.ReadEntryToString(*pickle);
    FAIL() << "a deflated entry was read";
  } catch (const CheckpointError& error) {
    EXPECT_THAT(error.what(), StartsWith(Fixture("deflated.pth") + ": zip entry 'plain/data.pkl'"));
    EXPECT_THAT(error.what(), HasSubstr("is compressed (deflate, method 8)"));
    EXPECT_THAT(error.what(), HasSubstr("re-save it with torch.save"));
  }
}

TEST_F(ZipReaderTest, TruncatedFilesAreErrorsWhereverTheyAreCut) {
  const std::string bytes = testing_paths::ReadFileBytes(Fixture("cls.pth"));
  const size_t size = bytes.size();
  for (const size_t cut : std::vector<size_t>{0, 1, 21, 22, 100, size / 3, size / 2, size - 100,
                                              size - 23, size - 22, size - 21, size - 1}) {
    SCOPED_TRACE(cut);
    const std::string path = Scratch("cut.pth", bytes.substr(0, cut));
    const std::string error = OpenError(path);
    EXPECT_THAT(error, StartsWith(path + ": "));
    EXPECT_THAT(error, AnyOf(HasSubstr("truncated"), HasSubstr("corrupt")));
  }
}

TEST_F(ZipReaderTest, NotAZipFile) {
  const std::string path = Scratch("text.pth", std::string(1000, 'x'));
  EXPECT_THAT(OpenError(path), HasSubstr("no zip end-of-central-directory record"));
}

TEST_F(ZipReaderTest, CorruptDirectoriesAreErrors) {
  const std::string bytes = testing_paths::ReadFileBytes(Fixture("cls.pth"));
  const size_t central = bytes.find("PK\x01\x02");
  const size_t zip64_record = bytes.rfind("PK\x06\x06");
  ASSERT_NE(central, std::string::npos);
  ASSERT_NE(zip64_record, std::string::npos);
  {
    std::string corrupt = bytes;
    corrupt[central + 2] = 'X';  // central header signature
    EXPECT_THAT(OpenError(Scratch("a.pth", corrupt)),
                HasSubstr("corrupt zip directory entry 0 (at byte " + std::to_string(central) +
                          "): bad signature"));
  }
  {
    std::string corrupt = bytes;
    corrupt[central + 28] = '\xFF';  // name length runs past the directory
    corrupt[central + 29] = '\xFF';
    EXPECT_THAT(OpenError(Scratch("b.pth", corrupt)), HasSubstr("runs past the end"));
  }
  {
    std::string corrupt = bytes;
    Store64(corrupt, zip64_record + 32, 1000000);  // entry count
    EXPECT_THAT(OpenError(Scratch("c.pth", corrupt)), HasSubstr("1000000 entries cannot fit in"));
  }
  {
    std::string corrupt = bytes;
    Store64(corrupt, zip64_record + 48, 12345);  // directory offset
    EXPECT_THAT(OpenError(Scratch("d.pth", corrupt)), HasSubstr("corrupt zip directory"));
  }
  {
    std::string corrupt = bytes;
    Store64(corrupt, zip64_record + 40, uint64_t{1} << 62);  // directory size
    EXPECT_THAT(OpenError(Scratch("e.pth", corrupt)), HasSubstr("corrupt zip directory"));
  }
  {
    std::string corrupt = bytes;
    Store32(corrupt, central + 42, 7);  // local header offset of the first entry
    EXPECT_THAT(OpenError(Scratch("f.pth", corrupt)), HasSubstr("no matching local header"));
  }
  {
    std::string corrupt = bytes;
    corrupt[bytes.rfind("PK\x06\x07") + 2] = 'X';  // zip64 locator gone: values are 0xFFFF..
    const std::string error = OpenError(Scratch("g.pth", corrupt));
    EXPECT_THAT(error,
                AnyOf(HasSubstr("zip64 locator is missing"), HasSubstr("corrupt zip directory")));
  }
}

TEST_F(ZipReaderTest, ChecksumMismatchIsReported) {
  std::string bytes = testing_paths::ReadFileBytes(Fixture("cls.pth"));
  const ZipEntry* entry = nullptr;
  ZipReader original(Fixture("cls.pth"));
  entry = original.Find("cls/data/0");
  ASSERT_NE(entry, nullptr);
  ASSERT_GT(entry->size, 0u);
  bytes[entry->data_offset] ^= 0x01;
  const std::string path = Scratch("flipped.pth", bytes);
  ZipReader zip(path);
  std::string out(entry->size, '\0');
  try {
    zip.ReadEntry(*zip.Find("cls/data/0"), out.data());
    FAIL() << "a corrupt entry was read";
  } catch (const CheckpointError& error) {
    EXPECT_THAT(error.what(), HasSubstr("zip entry 'cls/data/0' fails its CRC-32 check"));
  }
}

}  // namespace
}  // namespace iis::models::checkpoint
