#include "models/checkpoint/pickle_reader.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/testing/python_fixtures.h"
#include "models/checkpoint/torch_checkpoint.h"

namespace iis::models::checkpoint {
namespace {

using Kind = PickleValue::Kind;
using ::testing::HasSubstr;
using namespace std::string_literals;

// Builds pickles opcode by opcode (names and encodings from CPython's Lib/pickle.py).
class Pickle {
 public:
  Pickle() { bytes_ = "\x80\x02"; }  // PROTO 2

  Pickle& Op(const std::string& opcode) {
    bytes_ += opcode;
    return *this;
  }
  Pickle& Str(const std::string& text) {  // BINUNICODE
    bytes_ += 'X';
    Le(text.size(), 4);
    bytes_ += text;
    return *this;
  }
  Pickle& Int(int32_t value) {  // BININT
    bytes_ += 'J';
    Le(static_cast<uint32_t>(value), 4);
    return *this;
  }
  Pickle& Global(const std::string& module, const std::string& name) {
    bytes_ += "c" + module + "\n" + name + "\n";
    return *this;
  }
  Pickle& Mark() { return Op("("); }
  Pickle& Tuple() { return Op("t"); }
  // ('storage', torch.<type>, key, 'cpu', numel) BINPERSID
  Pickle& Storage(const std::string& type, const std::string& key, int32_t numel) {
    return Mark()
        .Str("storage")
        .Global("torch", type)
        .Str(key)
        .Str("cpu")
        .Int(numel)
        .Tuple()
        .Op("Q");
  }
  // _rebuild_tensor_v2(<storage>, offset, (sizes), (strides), False, OrderedDict())
  Pickle& Tensor(const std::string& type, const std::string& key, int32_t numel, int32_t offset,
                 std::initializer_list<int32_t> sizes, std::initializer_list<int32_t> strides) {
    Global("torch._utils", "_rebuild_tensor_v2").Mark().Storage(type, key, numel).Int(offset);
    Mark();
    for (const int32_t size : sizes) Int(size);
    Tuple().Mark();
    for (const int32_t stride : strides) Int(stride);
    return Tuple().Op("\x89").Global("collections", "OrderedDict").Op(")R").Tuple().Op("R");
  }
  std::string Stop() const { return bytes_ + "."; }

 private:
  void Le(uint64_t value, int n) {
    for (int i = 0; i < n; ++i) bytes_ += static_cast<char>((value >> (8 * i)) & 0xFF);
  }
  std::string bytes_;
};

std::string UnpickleError(const std::string& data) {
  try {
    Unpickle(data, "test.pth");
  } catch (const CheckpointError& error) {
    return error.what();
  }
  return "no error";
}

TEST(PickleReaderTest, BuildsContainersAndSharesMemoizedValues) {
  // {'a': [1, -2, 'x'], 'b': <the same list>, 'c': (None, True, 2.5)}
  const std::string data = Pickle()
                               .Op("}")
                               .Mark()
                               .Str("a")
                               .Op("]q\x01")  // EMPTY_LIST, BINPUT 1
                               .Mark()
                               .Int(1)
                               .Int(-2)
                               .Str("x")
                               .Op("e")  // APPENDS
                               .Str("b")
                               .Op("h\x01")  // BINGET 1
                               .Str("c")
                               .Op("N\x88G\x40\x04\x00\x00\x00\x00\x00\x00\x87"s)  // TUPLE3
                               .Op("u")                                            // SETITEMS
                               .Stop();
  const Unpickled result = Unpickle(data, "test.pth");
  const PickleValue& root = result.root();
  ASSERT_EQ(root.kind, Kind::kDict);
  const PickleValue* a = root.Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->kind, Kind::kList);
  ASSERT_EQ(a->items.size(), 3u);
  EXPECT_EQ(a->items[0]->integer, 1);
  EXPECT_EQ(a->items[1]->integer, -2);
  EXPECT_EQ(a->items[2]->text, "x");
  EXPECT_EQ(root.Find("b"), a);  // one object, twice
  const PickleValue* c = root.Find("c");
  ASSERT_EQ(c->kind, Kind::kTuple);
  EXPECT_EQ(c->items[0]->kind, Kind::kNone);
  EXPECT_TRUE(c->items[1]->boolean);
  EXPECT_EQ(c->items[2]->real, 2.5);
}

TEST(PickleReaderTest, RejectsGlobalsOutsideTheAllowlistByName) {
  EXPECT_EQ(UnpickleError(Pickle().Global("os", "system").Str("ls").Op("\x85R").Stop()),
            "test.pth: pickle asks for global 'os.system', which a weights file has no reason to "
            "use; refusing to load");
  // STACK_GLOBAL (protocol 4) names the global with two strings from the stack.
  EXPECT_THAT(UnpickleError(Pickle().Str("builtins").Str("eval").Op("\x93").Stop()),
              HasSubstr("pickle asks for global 'builtins.eval'"));
  EXPECT_THAT(UnpickleError(Pickle().Global("__builtin__", "getattr").Stop()),
              HasSubstr("global '__builtin__.getattr'"));
  EXPECT_THAT(UnpickleError(Pickle().Global("torch", "ComplexFloatStorage").Stop()),
              HasSubstr("tensors stored as 'torch.ComplexFloatStorage' are not supported"));
}

TEST(PickleReaderTest, AllowlistedGlobalsOnlyDoWhatTheyAreFor) {
  EXPECT_THAT(UnpickleError(Pickle().Global("torch", "FloatStorage").Op(")R").Stop()),
              HasSubstr("'torch.FloatStorage' cannot be called"));
  EXPECT_THAT(UnpickleError(Pickle().Global("collections", "OrderedDict").Op(")\x81").Stop()),
              HasSubstr("NEWOBJ of a global 'collections.OrderedDict'"));
  EXPECT_THAT(
      UnpickleError(Pickle().Global("_codecs", "encode").Str("x").Str("rot13").Op("\x86R").Stop()),
      HasSubstr("only read as (str, 'latin1')"));
  EXPECT_THAT(
      UnpickleError(
          Pickle().Global("torch._utils", "_rebuild_parameter").Int(1).Op("\x88}\x87R").Stop()),
      HasSubstr("wraps a int, not a tensor"));
}

TEST(PickleReaderTest, BuildsTensorViewsOfOneStorage) {
  const std::string data = Pickle()
                               .Op("]")
                               .Mark()
                               .Tensor("FloatStorage", "0", 12, 0, {3, 4}, {4, 1})
                               .Tensor("FloatStorage", "0", 12, 5, {2, 2}, {1, 4})
                               .Tensor("HalfStorage", "1", 0, 0, {0, 7}, {7, 1})
                               .Op("e")
                               .Stop();
  const Unpickled result = Unpickle(data, "test.pth");
  const auto& items = result.root().items;
  ASSERT_EQ(items.size(), 3u);
  for (const PickleValue* item : items) ASSERT_EQ(item->kind, Kind::kTensor);
  const TensorRef& base = *items[0]->tensor;
  const TensorRef& view = *items[1]->tensor;
  EXPECT_EQ(base.storage, view.storage);  // one StorageRef per key
  EXPECT_EQ(base.storage->key, "0");
  EXPECT_EQ(base.storage->numel, 12);
  EXPECT_EQ(base.storage->nbytes(), 48);
  EXPECT_EQ(base.dtype, c10::ScalarType::Float);
  EXPECT_EQ(view.storage_offset, 5);
  EXPECT_EQ(view.sizes, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(view.strides, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(items[2]->tensor->dtype, c10::ScalarType::Half);
}

TEST(PickleReaderTest, RejectsTensorsOutsideTheirStorage) {
  // 12 floats: [3, 4] from offset 1 needs 13.
  EXPECT_THAT(UnpickleError(Pickle().Tensor("FloatStorage", "0", 12, 1, {3, 4}, {4, 1}).Stop()),
              HasSubstr("reaches outside its storage '0' of 48 bytes"));
  EXPECT_THAT(UnpickleError(Pickle().Tensor("FloatStorage", "0", 12, 0, {2, 2}, {1, 20}).Stop()),
              HasSubstr("reaches outside its storage"));
  EXPECT_THAT(UnpickleError(Pickle().Tensor("FloatStorage", "0", 12, 13, {0}, {1}).Stop()),
              HasSubstr("reaches outside its storage"));
  EXPECT_THAT(
      UnpickleError(Pickle()
                        .Tensor("FloatStorage", "0", 12, 0, {1 << 30, 1 << 30, 1 << 30}, {0, 0, 0})
                        .Stop()),
      HasSubstr("more than 2^63 elements"));
  EXPECT_THAT(UnpickleError(Pickle().Tensor("FloatStorage", "0", 12, 0, {-1}, {1}).Stop()),
              HasSubstr("that is not a non-negative int"));
  EXPECT_THAT(UnpickleError(Pickle().Tensor("FloatStorage", "0", 12, 0, {2}, {1, 1}).Stop()),
              HasSubstr("has 1 sizes but 2 strides"));
  EXPECT_THAT(UnpickleError(Pickle().Tensor("FloatStorage", "0", -1, 0, {0}, {1}).Stop()),
              HasSubstr("a bad element count"));
  EXPECT_THAT(UnpickleError(Pickle().Tensor("FloatStorage", "../x", 1, 0, {1}, {1}).Stop()),
              HasSubstr("has characters other than letters, digits and _"));
  EXPECT_THAT(UnpickleError(Pickle()
                                .Op("]")
                                .Mark()
                                .Tensor("FloatStorage", "0", 12, 0, {1}, {1})
                                .Tensor("LongStorage", "0", 12, 0, {1}, {1})
                                .Op("e")
                                .Stop()),
              HasSubstr("storage '0' is described both as 12 Float and as 12 Long"));
}

TEST(PickleReaderTest, RejectsMalformedStreams) {
  EXPECT_THAT(UnpickleError(""), HasSubstr("ends before its STOP opcode"));
  EXPECT_THAT(UnpickleError(Pickle().Op("}").Stop().substr(0, 3)),
              HasSubstr("ends before its STOP opcode"));
  EXPECT_THAT(UnpickleError(Pickle().Op("X\xff\xff\xff\x7f").Stop()),
              HasSubstr("needs 2147483647 more bytes"));
  EXPECT_THAT(UnpickleError(Pickle().Op("\x8d\xff\xff\xff\xff\xff\xff\xff\xff").Stop()),
              HasSubstr("more bytes but only"));
  EXPECT_THAT(UnpickleError(Pickle().Op("R").Stop()), HasSubstr("stack underflow"));
  EXPECT_THAT(UnpickleError(Pickle().Op("(R").Stop()), HasSubstr("stack underflow"));
  EXPECT_THAT(UnpickleError(Pickle().Op("h\x05").Stop()),
              HasSubstr("memo entry 5 was never stored"));
  EXPECT_THAT(UnpickleError(Pickle().Op("}(K\x01u").Stop()),
              HasSubstr("SETITEMS with an odd number of items"));
  EXPECT_THAT(UnpickleError(Pickle().Op("K\x01K\x02u").Stop()), HasSubstr("no MARK to pop to"));
  EXPECT_THAT(UnpickleError(Pickle().Op("K\x00K\x01K\x02s"s).Stop()),
              HasSubstr("SETITEM(S) on a int"));
  EXPECT_THAT(UnpickleError(Pickle()
                                .Op(")K\x01"
                                    "a")
                                .Stop()),
              HasSubstr("APPEND(S) on a tuple"));
  EXPECT_THAT(UnpickleError(Pickle().Op("]N").Op("b").Stop()), HasSubstr("BUILD on a list"));
  EXPECT_THAT(UnpickleError("\x80\x06N."), HasSubstr("pickle protocol 6 is newer than 5"));
  EXPECT_THAT(UnpickleError(Pickle().Op("cos\nsystem").Stop()),
              HasSubstr("a GLOBAL name without its newline"));
  EXPECT_THAT(UnpickleError(Pickle().Op("\x95\xff\x00\x00\x00\x00\x00\x00\x00N"s).Stop()),
              HasSubstr("a FRAME longer than the data"));
  EXPECT_THAT(UnpickleError(Pickle().Op("Pfoo\n").Stop()), HasSubstr("unsupported opcode 'P'"));
  EXPECT_THAT(UnpickleError(Pickle().Op("(ios\nsystem\n").Stop()),
              HasSubstr("unsupported opcode 'i'"));
  EXPECT_THAT(UnpickleError(Pickle().Op("\x97").Stop()), HasSubstr("out-of-band buffers"));
  EXPECT_THAT(UnpickleError(Pickle().Op("N\x85Q").Stop()), HasSubstr("persistent id: a tuple"));
  // The byte offset and opcode of the problem are in the message.
  EXPECT_THAT(UnpickleError(Pickle().Op("NR").Stop()),
              HasSubstr("test.pth: malformed pickle at byte 3 (opcode 0x52)"));
}

TEST(PickleReaderTest, ReadsLongIntegers) {
  // LONG1 with 1, 8 and 9 bytes; the last does not fit in 64 bits.
  const std::string data = Pickle()
                               .Op("]")
                               .Mark()
                               .Op("\x8a\x01\xff")
                               .Op("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"s)
                               .Op("\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00"s)
                               .Op("\x8a\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00"s)
                               .Op("e")
                               .Stop();
  const Unpickled result = Unpickle(data, "test.pth");
  const auto& items = result.root().items;
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0]->integer, -1);
  EXPECT_EQ(items[1]->integer, INT64_MIN);
  EXPECT_EQ(items[2]->kind, Kind::kObject);  // 2^64 - 1
  EXPECT_EQ(items[2]->text, "builtins.int");
  EXPECT_EQ(items[3]->kind, Kind::kInt);  // 1 with a redundant zero byte
  EXPECT_EQ(items[3]->integer, 1);
}

TEST(PickleReaderTest, SurvivesDeepNestingAndCycles) {
  // Deeply nested lists: EMPTY_LIST x N, then APPEND x (N - 1).
  constexpr size_t kDepth = 300000;
  const std::string deep =
      Pickle().Op(std::string(kDepth, ']') + std::string(kDepth - 1, 'a')).Stop();
  {
    const Unpickled result = Unpickle(deep, "test.pth");
    const PickleValue* value = &result.root();
    size_t depth = 1;
    while (!value->items.empty()) {
      value = value->items[0];
      ++depth;
    }
    EXPECT_EQ(depth, kDepth);
  }  // released without recursion
  // A list that contains itself.
  const Unpickled cycle = Unpickle(Pickle()
                                       .Op("]q\x00h\x00"
                                           "a"s)
                                       .Stop(),
                                   "test.pth");
  EXPECT_EQ(cycle.root().items.at(0), &cycle.root());
}

class PickleFixtureTest : public fixtures::PythonFixtureTest {};

// The metadata beside the weights of cls.pth (see make_fixtures.py), read through the allowlist.
TEST_F(PickleFixtureTest, ReadsTheMetadataOfAClassificationCheckpoint) {
  TorchArchive archive(Fixture("cls.pth"));
  const PickleValue& root = archive.root();
  ASSERT_EQ(root.kind, Kind::kDict);
  EXPECT_EQ(root.Find("epoch")->integer, 3);
  EXPECT_EQ(root.Find("max_accuracy")->real, 81.25);
  EXPECT_EQ(root.Find("text")->text, "ünïcødé ✓");
  EXPECT_EQ(root.Find("negative")->integer, -123456789012);
  EXPECT_EQ(root.Find("big")->Describe(), "'builtins.int' object");
  EXPECT_EQ(root.Find("amp")->kind, Kind::kNone);
  // Protocol 2 writes bytes as _codecs.encode(latin-1 text) and b'' as bytes().
  EXPECT_EQ(root.Find("bytes")->kind, Kind::kBytes);
  EXPECT_EQ(root.Find("bytes")->text,
            "\x00\x01"
            "binary\xff"s);
  EXPECT_EQ(root.Find("empty_bytes")->kind, Kind::kBytes);
  EXPECT_EQ(root.Find("empty_bytes")->text, "");
  EXPECT_EQ(root.Find("slice")->Describe(), "'__builtin__.slice' object");
  EXPECT_EQ(root.Find("frozen")->Describe(), "'__builtin__.frozenset' object");

  // The official files' yacs CfgNode: a dict subclass, NEWOBJ + SETITEMS + BUILD.
  const PickleValue* config = root.Find("config");
  ASSERT_EQ(config->kind, Kind::kObject);
  EXPECT_EQ(config->text, "yacs.config.CfgNode");
  const PickleValue* model = config->Find("MODEL");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Find("TYPE")->text, "intern_image");
  EXPECT_EQ(model->Find("NUM_CLASSES")->integer, 1000);
  ASSERT_NE(config->state, nullptr);
  EXPECT_FALSE(config->state->Find("__immutable__")->boolean);

  const PickleValue* args = root.Find("args");
  ASSERT_EQ(args->kind, Kind::kObject);
  EXPECT_EQ(args->text, "argparse.Namespace");
  ASSERT_NE(args->state, nullptr);
  EXPECT_EQ(args->state->Find("model")->text, "internimage_t");
  EXPECT_EQ(args->state->Find("drop_path")->real, 0.1);

  const PickleValue* numpy = root.Find("numpy");
  EXPECT_EQ(numpy->Find("acc")->text, "numpy.core.multiarray.scalar");
  EXPECT_EQ(numpy->Find("array")->text, "numpy.core.multiarray._reconstruct");
  EXPECT_EQ(numpy->Find("dtype")->text, "numpy.dtype");

  // Optimizer state: int keys, tensors that are described but never read.
  const PickleValue* state = root.Find("optimizer")->Find("state");
  ASSERT_EQ(state->kind, Kind::kDict);
  ASSERT_FALSE(state->entries.empty());
  EXPECT_EQ(state->entries[0].first->kind, Kind::kInt);
  EXPECT_EQ(state->entries[0].second->Find("exp_avg")->kind, Kind::kTensor);
}

TEST_F(PickleFixtureTest, ReadsProtocolFourOpcodes) {
  TorchArchive archive(Fixture("proto4.pth"));
  const PickleValue* meta = archive.root().Find("meta");
  ASSERT_NE(meta, nullptr);
  const PickleValue* set = meta->Find("set");
  ASSERT_EQ(set->kind, Kind::kObject);  // EMPTY_SET + ADDITEMS
  EXPECT_EQ(set->text, "builtins.set");
  EXPECT_EQ(set->items.size(), 2u);
  EXPECT_EQ(meta->Find("bytes")->text,
            "\x00\xff"
            "raw"s);  // SHORT_BINBYTES
  EXPECT_EQ(archive.root().Find("state_dict")->Find("extra.bf16")->kind, Kind::kTensor);
}

}  // namespace
}  // namespace iis::models::checkpoint
