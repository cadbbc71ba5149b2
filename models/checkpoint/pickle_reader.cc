#include "models/checkpoint/pickle_reader.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <unordered_map>

#include <c10/util/ArrayRef.h>
#include <c10/util/StringUtil.h>

#include "models/checkpoint/checkpoint_error.h"

namespace iis::models::checkpoint {

// What an allowlisted global is allowed to do when the pickle calls or instantiates it.
struct GlobalInfo {
  enum class Role {
    kOrderedDict,                // collections.OrderedDict(): an empty dict
    kRebuildTensorV2,            // torch._utils._rebuild_tensor_v2: a tensor of a typed storage
    kRebuildTensorV3,            // torch._utils._rebuild_tensor_v3: a tensor with an explicit dtype
    kRebuildParameter,           // torch._utils._rebuild_parameter(tensor, requires_grad, hooks)
    kRebuildParameterWithState,  // ... the same with a fourth argument, the Python state
    kRebuildFromTypeV2,          // torch._tensor._rebuild_from_type_v2(func, type, args, state)
    kTensorType,                 // torch.Tensor / nn.Parameter, as _rebuild_from_type_v2's type
    kStorageType,                // a storage class in a persistent id; dtype tells its element type
    kDtype,                      // a torch.dtype value; dtype tells which
    kCodecsEncode,               // _codecs.encode(text, 'latin1'): how protocol 2 writes bytes
    kEmptyBytes,                 // builtins.bytes(): how protocol 2 writes b''
    kPlaceholder,                // inert metadata class: calling it builds a kObject, nothing more
  };

  const char* name;
  Role role;
  c10::ScalarType dtype;
};

namespace {

using Kind = PickleValue::Kind;
using Role = GlobalInfo::Role;
using c10::ScalarType;

constexpr ScalarType kNoDtype = ScalarType::Undefined;

// The allowlist. Module names appear as pickles spell them: protocol 2 writes Python 3's
// "builtins" as "__builtin__"; numpy 2 moved numpy.core to numpy._core.
constexpr GlobalInfo kGlobals[] = {
    {"collections.OrderedDict", Role::kOrderedDict, kNoDtype},
    {"torch._utils._rebuild_tensor_v2", Role::kRebuildTensorV2, kNoDtype},
    {"torch._utils._rebuild_tensor_v3", Role::kRebuildTensorV3, kNoDtype},
    {"torch._utils._rebuild_parameter", Role::kRebuildParameter, kNoDtype},
    {"torch._utils._rebuild_parameter_with_state", Role::kRebuildParameterWithState, kNoDtype},
    {"torch._tensor._rebuild_from_type_v2", Role::kRebuildFromTypeV2, kNoDtype},
    {"torch._tensor.Tensor", Role::kTensorType, kNoDtype},
    {"torch.Tensor", Role::kTensorType, kNoDtype},
    {"torch.nn.parameter.Parameter", Role::kTensorType, kNoDtype},
    {"torch.FloatStorage", Role::kStorageType, ScalarType::Float},
    {"torch.DoubleStorage", Role::kStorageType, ScalarType::Double},
    {"torch.HalfStorage", Role::kStorageType, ScalarType::Half},
    {"torch.BFloat16Storage", Role::kStorageType, ScalarType::BFloat16},
    {"torch.LongStorage", Role::kStorageType, ScalarType::Long},
    {"torch.IntStorage", Role::kStorageType, ScalarType::Int},
    {"torch.ShortStorage", Role::kStorageType, ScalarType::Short},
    {"torch.CharStorage", Role::kStorageType, ScalarType::Char},
    {"torch.ByteStorage", Role::kStorageType, ScalarType::Byte},
    {"torch.BoolStorage", Role::kStorageType, ScalarType::Bool},
    {"torch.UntypedStorage", Role::kStorageType, ScalarType::Byte},
    {"torch.storage.UntypedStorage", Role::kStorageType, ScalarType::Byte},
    {"torch.storage._UntypedStorage", Role::kStorageType, ScalarType::Byte},
    {"torch.float32", Role::kDtype, ScalarType::Float},
    {"torch.float", Role::kDtype, ScalarType::Float},
    {"torch.float64", Role::kDtype, ScalarType::Double},
    {"torch.double", Role::kDtype, ScalarType::Double},
    {"torch.float16", Role::kDtype, ScalarType::Half},
    {"torch.half", Role::kDtype, ScalarType::Half},
    {"torch.bfloat16", Role::kDtype, ScalarType::BFloat16},
    {"torch.int64", Role::kDtype, ScalarType::Long},
    {"torch.long", Role::kDtype, ScalarType::Long},
    {"torch.int32", Role::kDtype, ScalarType::Int},
    {"torch.int", Role::kDtype, ScalarType::Int},
    {"torch.int16", Role::kDtype, ScalarType::Short},
    {"torch.short", Role::kDtype, ScalarType::Short},
    {"torch.int8", Role::kDtype, ScalarType::Char},
    {"torch.uint8", Role::kDtype, ScalarType::Byte},
    {"torch.bool", Role::kDtype, ScalarType::Bool},
    {"_codecs.encode", Role::kCodecsEncode, kNoDtype},
    {"__builtin__.bytes", Role::kEmptyBytes, kNoDtype},
    {"builtins.bytes", Role::kEmptyBytes, kNoDtype},
    {"__builtin__.set", Role::kPlaceholder, kNoDtype},
    {"builtins.set", Role::kPlaceholder, kNoDtype},
    {"__builtin__.frozenset", Role::kPlaceholder, kNoDtype},
    {"builtins.frozenset", Role::kPlaceholder, kNoDtype},
    {"__builtin__.slice", Role::kPlaceholder, kNoDtype},
    {"builtins.slice", Role::kPlaceholder, kNoDtype},
    {"numpy.core.multiarray.scalar", Role::kPlaceholder, kNoDtype},
    {"numpy._core.multiarray.scalar", Role::kPlaceholder, kNoDtype},
    {"numpy.core.multiarray._reconstruct", Role::kPlaceholder, kNoDtype},
    {"numpy._core.multiarray._reconstruct", Role::kPlaceholder, kNoDtype},
    {"numpy.dtype", Role::kPlaceholder, kNoDtype},
    {"numpy.ndarray", Role::kPlaceholder, kNoDtype},
    {"yacs.config.CfgNode", Role::kPlaceholder, kNoDtype},
    {"argparse.Namespace", Role::kPlaceholder, kNoDtype},
    {"torch.device", Role::kPlaceholder, kNoDtype},
    {"torch.torch_version.TorchVersion", Role::kPlaceholder, kNoDtype},
};

// The class name kObject placeholders of the set opcodes get.
constexpr const char* kSetClass = "builtins.set";
constexpr const char* kFrozensetClass = "builtins.frozenset";
constexpr const char* kBigIntClass = "builtins.int";

constexpr size_t kMaxTensorDims = 64;
constexpr size_t kMaxGlobalNameSize = 256;
constexpr size_t kMaxStorageKeySize = 64;

const GlobalInfo* FindGlobal(const std::string& name) {
  for (const GlobalInfo& info : kGlobals) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

bool MulOverflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }
bool AddOverflows(int64_t a, int64_t b, int64_t* out) { return __builtin_add_overflow(a, b, out); }

// Pickle opcodes (CPython's Lib/pickle.py names).
enum Opcode : unsigned char {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kBinFloat = 'G',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinUnicode = 'X',
  kEmptyList = ']',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kDict = 'd',
  kEmptyDict = '}',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kEmptyTuple = ')',
  kSetItems = 'u',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kProto = 0x80,
  kNewObj = 0x81,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kLong4 = 0x8b,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kBinBytes8 = 0x8e,
  kEmptySet = 0x8f,
  kAddItems = 0x90,
  kFrozenSet = 0x91,
  kNewObjEx = 0x92,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
  kByteArray8 = 0x96,
  kNextBuffer = 0x97,
  kReadOnlyBuffer = 0x98,
};

class Unpickler {
 public:
  Unpickler(std::string_view data, const std::string& source) : data_(data), source_(source) {}

  Unpickled Run() {
    while (true) {
      if (pos_ >= data_.size()) Fail("the data ends before its STOP opcode");
      opcode_pos_ = pos_;
      const unsigned char op = static_cast<unsigned char>(data_[pos_++]);
      if (op == kStop) {
        const PickleValue* root = Pop();
        return Unpickled(std::move(values_), root);
      }
      Step(op);
    }
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    char op[8] = "?";
    if (opcode_pos_ < data_.size()) {
      std::snprintf(op, sizeof(op), "0x%02x", static_cast<unsigned char>(data_[opcode_pos_]));
    }
    throw CheckpointError(c10::str(source_, ": malformed pickle at byte ", opcode_pos_, " (opcode ",
                                   op, "): ", what));
  }

  // ---- reading the stream -------------------------------------------------------------------

  std::string_view Take(uint64_t n) {
    if (n > data_.size() - pos_) {
      Fail(c10::str("needs ", n, " more bytes but only ", data_.size() - pos_, " are left"));
    }
    std::string_view bytes = data_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return bytes;
  }

  uint64_t ReadUnsigned(int n) {
    const std::string_view bytes = Take(n);
    uint64_t value = 0;
    for (int i = n - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    return value;
  }

  std::string ReadLine() {
    const std::string_view window = data_.substr(pos_, kMaxGlobalNameSize + 1);
    const size_t end = window.find('\n');
    if (end == std::string_view::npos) Fail("a GLOBAL name without its newline");
    std::string line(window.substr(0, end));
    pos_ += end + 1;
    return line;
  }

  PickleValue* New(Kind kind) { return &values_.emplace_back(kind); }

  // ---- the stack ----------------------------------------------------------------------------

  size_t MarkBase() const { return marks_.empty() ? 0 : marks_.back(); }

  void Push(PickleValue* value) { stack_.push_back(value); }

  PickleValue* Pop() {
    if (stack_.size() <= MarkBase()) Fail("stack underflow");
    PickleValue* value = stack_.back();
    stack_.pop_back();
    return value;
  }

  PickleValue& Top() {
    if (stack_.size() <= MarkBase()) Fail("stack underflow");
    return *stack_.back();
  }

  std::vector<PickleValue*> PopMark() {
    if (marks_.empty()) Fail("no MARK to pop to");
    const size_t base = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + base, stack_.end());
    stack_.resize(base);
    return items;
  }

  PickleValue* MakeSequence(Kind kind, const std::vector<PickleValue*>& items) {
    PickleValue* value = New(kind);
    value->items.assign(items.begin(), items.end());
    return value;
  }

  void AddEntries(PickleValue& target, const std::vector<PickleValue*>& items) {
    if (target.kind != Kind::kDict && target.kind != Kind::kObject) {
      Fail(c10::str("SETITEM(S) on a ", target.Describe()));
    }
    if (items.size() % 2 != 0) Fail("SETITEMS with an odd number of items");
    for (size_t i = 0; i < items.size(); i += 2) {
      target.entries.emplace_back(items[i], items[i + 1]);
    }
  }

  void AddItems(PickleValue& target, const std::vector<PickleValue*>& items, bool sets_only) {
    const bool is_set = target.kind == Kind::kObject && target.text == kSetClass;
    if (sets_only ? !is_set : (target.kind != Kind::kList && target.kind != Kind::kObject)) {
      Fail(c10::str(sets_only ? "ADDITEMS" : "APPEND(S)", " on a ", target.Describe()));
    }
    target.items.insert(target.items.end(), items.begin(), items.end());
  }

  // ---- one opcode ---------------------------------------------------------------------------

  void Step(unsigned char op) {
    switch (op) {
      case kProto: {
        const uint64_t version = ReadUnsigned(1);
        if (version > 5) Fail(c10::str("pickle protocol ", version, " is newer than 5"));
        return;
      }
      case kFrame: {
        const uint64_t size = ReadUnsigned(8);
        if (size > data_.size() - pos_) Fail("a FRAME longer than the data");
        return;  // frames only group opcodes; the content is read as usual
      }
      case kMark:
        marks_.push_back(stack_.size());
        return;
      case kPop:
        if (stack_.size() > MarkBase()) {
          stack_.pop_back();
        } else {
          PopMark();
        }
        return;
      case kPopMark:
        PopMark();
        return;
      case kDup: {
        PickleValue* top = Pop();
        Push(top);
        Push(top);
        return;
      }
      case kNone:
        Push(New(Kind::kNone));
        return;
      case kNewTrue:
      case kNewFalse: {
        PickleValue* value = New(Kind::kBool);
        value->boolean = op == kNewTrue;
        Push(value);
        return;
      }
      case kBinInt:
        PushInt(static_cast<int32_t>(static_cast<uint32_t>(ReadUnsigned(4))));
        return;
      case kBinInt1:
        PushInt(static_cast<int64_t>(ReadUnsigned(1)));
        return;
      case kBinInt2:
        PushInt(static_cast<int64_t>(ReadUnsigned(2)));
        return;
      case kLong1:
        PushLong(ReadUnsigned(1));
        return;
      case kLong4: {
        const int64_t size = static_cast<int32_t>(static_cast<uint32_t>(ReadUnsigned(4)));
        if (size < 0) Fail("LONG4 with a negative length");
        PushLong(static_cast<uint64_t>(size));
        return;
      }
      case kBinFloat: {
        const std::string_view bytes = Take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(bytes[i]);
        PickleValue* value = New(Kind::kFloat);
        std::memcpy(&value->real, &bits, sizeof(bits));
        Push(value);
        return;
      }
      case kShortBinUnicode:
        PushText(Kind::kString, ReadUnsigned(1));
        return;
      case kBinUnicode:
        PushText(Kind::kString, ReadUnsigned(4));
        return;
      case kBinUnicode8:
        PushText(Kind::kString, ReadUnsigned(8));
        return;
      case kShortBinBytes:
        PushText(Kind::kBytes, ReadUnsigned(1));
        return;
      case kBinBytes:
        PushText(Kind::kBytes, ReadUnsigned(4));
        return;
      case kBinBytes8:
      case kByteArray8:
        PushText(Kind::kBytes, ReadUnsigned(8));
        return;
      case kEmptyDict:
        Push(New(Kind::kDict));
        return;
      case kDict: {
        std::vector<PickleValue*> items = PopMark();
        PickleValue* dict = New(Kind::kDict);
        AddEntries(*dict, items);
        Push(dict);
        return;
      }
      case kEmptyList:
        Push(New(Kind::kList));
        return;
      case kList:
        Push(MakeSequence(Kind::kList, PopMark()));
        return;
      case kEmptyTuple:
        Push(New(Kind::kTuple));
        return;
      case kTuple:
        Push(MakeSequence(Kind::kTuple, PopMark()));
        return;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const size_t n = op - kTuple1 + 1;
        std::vector<PickleValue*> items(n);
        for (size_t i = n; i-- > 0;) items[i] = Pop();
        Push(MakeSequence(Kind::kTuple, items));
        return;
      }
      case kEmptySet: {
        PickleValue* set = New(Kind::kObject);
        set->text = kSetClass;
        Push(set);
        return;
      }
      case kFrozenSet: {
        PickleValue* set = MakeSequence(Kind::kObject, PopMark());
        set->text = kFrozensetClass;
        Push(set);
        return;
      }
      case kAppend: {
        std::vector<PickleValue*> items{Pop()};
        AddItems(Top(), items, /*sets_only=*/false);
        return;
      }
      case kAppends: {
        std::vector<PickleValue*> items = PopMark();
        AddItems(Top(), items, /*sets_only=*/false);
        return;
      }
      case kAddItems: {
        std::vector<PickleValue*> items = PopMark();
        AddItems(Top(), items, /*sets_only=*/true);
        return;
      }
      case kSetItem: {
        PickleValue* value = Pop();
        PickleValue* key = Pop();
        std::vector<PickleValue*> items{key, value};
        AddEntries(Top(), items);
        return;
      }
      case kSetItems: {
        std::vector<PickleValue*> items = PopMark();
        AddEntries(Top(), items);
        return;
      }
      case kBinPut:
        Memoize(ReadUnsigned(1));
        return;
      case kLongBinPut:
        Memoize(ReadUnsigned(4));
        return;
      case kMemoize:
        Memoize(memo_.size());
        return;
      case kBinGet:
        PushMemo(ReadUnsigned(1));
        return;
      case kLongBinGet:
        PushMemo(ReadUnsigned(4));
        return;
      case kGlobal: {
        std::string module = ReadLine();
        std::string name = ReadLine();
        Push(ResolveGlobal(module, name));
        return;
      }
      case kStackGlobal: {
        PickleValue* name = Pop();
        PickleValue* module = Pop();
        if (module->kind != Kind::kString || name->kind != Kind::kString ||
            module->text.size() > kMaxGlobalNameSize || name->text.size() > kMaxGlobalNameSize) {
          Fail("STACK_GLOBAL needs two strings");
        }
        Push(ResolveGlobal(module->text, name->text));
        return;
      }
      case kReduce: {
        PickleValue* args = Pop();
        PickleValue* callable = Pop();
        Push(Call(*callable, args));
        return;
      }
      case kNewObj: {
        PickleValue* args = Pop();
        PickleValue* cls = Pop();
        Push(Instantiate(*cls, args));
        return;
      }
      case kNewObjEx: {
        PickleValue* kwargs = Pop();
        PickleValue* args = Pop();
        PickleValue* cls = Pop();
        if (kwargs->kind != Kind::kDict) Fail("NEWOBJ_EX keyword arguments must be a dict");
        Push(Instantiate(*cls, args));
        return;
      }
      case kBuild: {
        PickleValue* state = Pop();
        Build(Top(), state);
        return;
      }
      case kBinPersId: {
        PickleValue* pid = Pop();
        Push(LoadPersistent(*pid));
        return;
      }
      case kNextBuffer:
      case kReadOnlyBuffer:
        Fail("out-of-band buffers (pickle protocol 5) are not supported");
      default:
        Fail(c10::str("unsupported opcode '", PrintableOpcode(op),
                      "' (torch.save writes only binary protocol 2+ opcodes)"));
    }
  }

  static std::string PrintableOpcode(unsigned char op) {
    if (op >= 0x20 && op < 0x7f) return std::string(1, static_cast<char>(op));
    char text[8];
    std::snprintf(text, sizeof(text), "\\x%02x", op);
    return text;
  }

  void PushInt(int64_t v) {
    PickleValue* value = New(Kind::kInt);
    value->integer = v;
    Push(value);
  }

  // LONG1/LONG4: a little-endian two's-complement integer of `size` bytes.
  void PushLong(uint64_t size) {
    const std::string_view bytes = Take(size);
    if (size == 0) return PushInt(0);
    const bool negative = static_cast<unsigned char>(bytes[size - 1]) & 0x80;
    // Bytes beyond the eighth must be pure sign extension for the value to fit in int64.
    bool fits = true;
    for (uint64_t i = 8; i < size; ++i) {
      if (static_cast<unsigned char>(bytes[i]) != (negative ? 0xFF : 0x00)) fits = false;
    }
    if (size > 8 && fits && ((static_cast<unsigned char>(bytes[7]) & 0x80) != 0) != negative) {
      fits = false;
    }
    if (!fits) {
      PickleValue* value = New(Kind::kObject);
      value->text = kBigIntClass;
      Push(value);
      return;
    }
    uint64_t bits = negative ? ~uint64_t{0} : 0;
    const uint64_t used = std::min<uint64_t>(size, 8);
    for (uint64_t i = 0; i < used; ++i) {
      bits &= ~(uint64_t{0xFF} << (8 * i));
      bits |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    }
    PushInt(static_cast<int64_t>(bits));
  }

  void PushText(Kind kind, uint64_t size) {
    PickleValue* value = New(kind);
    value->text = std::string(Take(size));
    Push(value);
  }

  void Memoize(uint64_t index) {
    if (stack_.empty()) Fail("nothing on the stack to memoize");
    memo_[index] = stack_.back();
  }

  void PushMemo(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) Fail(c10::str("memo entry ", index, " was never stored"));
    Push(it->second);
  }

  // ---- globals and what they may do ---------------------------------------------------------

  PickleValue* ResolveGlobal(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    const GlobalInfo* info = FindGlobal(full);
    if (info == nullptr) {
      if (module == "torch" && name.size() > 7 &&
          name.compare(name.size() - 7, 7, "Storage") == 0) {
        throw CheckpointError(c10::str(
            source_, ": tensors stored as '", full, "' are not supported (supported: float32, ",
            "float64, float16, bfloat16, int64, int32, int16, int8, uint8 and bool)"));
      }
      throw CheckpointError(c10::str(source_, ": pickle asks for global '", full,
                                     "', which a weights file has no reason to use; refusing to "
                                     "load"));
    }
    PickleValue* value = New(Kind::kGlobal);
    value->text = full;
    value->global = info;
    return value;
  }

  const std::vector<const PickleValue*>& TupleArgs(const PickleValue& callable,
                                                   const PickleValue* args) {
    if (args->kind != Kind::kTuple) {
      Fail(
          c10::str("arguments of '", callable.text, "' must be a tuple, not a ", args->Describe()));
    }
    return args->items;
  }

  PickleValue* Call(const PickleValue& callable, const PickleValue* args_value) {
    if (callable.kind != Kind::kGlobal) Fail(c10::str("REDUCE calls a ", callable.Describe()));
    const std::vector<const PickleValue*>& args = TupleArgs(callable, args_value);
    const auto expect_args = [&](size_t low, size_t high) {
      if (args.size() < low || args.size() > high) {
        Fail(c10::str("'", callable.text, "' called with ", args.size(), " arguments"));
      }
    };
    switch (callable.global->role) {
      case Role::kOrderedDict:
        expect_args(0, 0);
        return New(Kind::kDict);
      case Role::kRebuildTensorV2:
        expect_args(6, 7);
        return RebuildTensor(callable, args, /*explicit_dtype=*/false);
      case Role::kRebuildTensorV3:
        expect_args(7, 8);
        return RebuildTensor(callable, args, /*explicit_dtype=*/true);
      case Role::kRebuildParameter:
      case Role::kRebuildParameterWithState: {
        if (callable.global->role == Role::kRebuildParameter) {
          expect_args(3, 3);
        } else {
          expect_args(4, 4);
        }
        if (args[0]->kind != Kind::kTensor) {
          Fail(c10::str("'", callable.text, "' wraps a ", args[0]->Describe(), ", not a tensor"));
        }
        PickleValue* parameter = New(Kind::kTensor);
        parameter->tensor = args[0]->tensor;
        return parameter;
      }
      case Role::kRebuildFromTypeV2: {
        expect_args(4, 4);
        const PickleValue& func = *args[0];
        const bool rebuilds_tensor =
            func.kind == Kind::kGlobal && (func.global->role == Role::kRebuildTensorV2 ||
                                           func.global->role == Role::kRebuildTensorV3 ||
                                           func.global->role == Role::kRebuildParameter ||
                                           func.global->role == Role::kRebuildParameterWithState);
        const bool tensor_type =
            args[1]->kind == Kind::kGlobal && args[1]->global->role == Role::kTensorType;
        if (!rebuilds_tensor || !tensor_type) {
          Fail(c10::str("'", callable.text, "' with a ", func.Describe(), " and a ",
                        args[1]->Describe(), " (only plain tensors and parameters are read)"));
        }
        return Call(func, args[2]);
      }
      case Role::kCodecsEncode:
        expect_args(2, 2);
        return EncodeLatin1(*args[0], *args[1]);
      case Role::kEmptyBytes:
        expect_args(0, 0);
        return New(Kind::kBytes);
      case Role::kPlaceholder: {
        PickleValue* object = New(Kind::kObject);
        object->text = callable.text;
        object->args = args_value;
        return object;
      }
      case Role::kTensorType:
      case Role::kStorageType:
      case Role::kDtype:
        break;
    }
    Fail(c10::str("'", callable.text, "' cannot be called in a weights file"));
  }

  PickleValue* Instantiate(const PickleValue& cls, const PickleValue* args_value) {
    if (cls.kind != Kind::kGlobal || cls.global->role != Role::kPlaceholder) {
      Fail(c10::str("NEWOBJ of a ", cls.Describe(), " (only inert metadata classes may be built)"));
    }
    TupleArgs(cls, args_value);
    PickleValue* object = New(Kind::kObject);
    object->text = cls.text;
    object->args = args_value;
    return object;
  }

  void Build(PickleValue& target, PickleValue* state) {
    switch (target.kind) {
      case Kind::kDict:
        return;  // an OrderedDict's attributes (a state dict's _metadata): not needed
      case Kind::kObject:
        target.state = state;
        return;
      default:
        Fail(c10::str("BUILD on a ", target.Describe()));
    }
  }

  // How protocol 2 writes bytes: _codecs.encode(<text of code points 0-255>, 'latin1').
  PickleValue* EncodeLatin1(const PickleValue& text, const PickleValue& encoding) {
    if (text.kind != Kind::kString || encoding.kind != Kind::kString ||
        (encoding.text != "latin1" && encoding.text != "latin-1")) {
      Fail("_codecs.encode is only read as (str, 'latin1'), the way pickle writes bytes");
    }
    PickleValue* bytes = New(Kind::kBytes);
    const std::string& in = text.text;
    for (size_t i = 0; i < in.size();) {
      const unsigned char lead = static_cast<unsigned char>(in[i]);
      if (lead < 0x80) {
        bytes->text += static_cast<char>(lead);
        i += 1;
      } else if ((lead == 0xC2 || lead == 0xC3) && i + 1 < in.size() &&
                 (static_cast<unsigned char>(in[i + 1]) & 0xC0) == 0x80) {
        bytes->text += static_cast<char>(((lead & 0x1F) << 6) | (in[i + 1] & 0x3F));
        i += 2;
      } else {
        Fail("_codecs.encode text has a character outside latin-1");
      }
    }
    return bytes;
  }

  // ---- tensors and storages -----------------------------------------------------------------

  PickleValue* LoadPersistent(const PickleValue& pid) {
    const auto bad = [&](const std::string& what) {
      Fail(c10::str("persistent id: ", what,
                    " (expected ('storage', <storage type>, key, location, numel))"));
    };
    if (pid.kind != Kind::kTuple || pid.items.size() != 5) bad(c10::str("a ", pid.Describe()));
    const PickleValue& tag = *pid.items[0];
    const PickleValue& type = *pid.items[1];
    const PickleValue& key = *pid.items[2];
    const PickleValue& location = *pid.items[3];
    const PickleValue& numel = *pid.items[4];
    if (tag.kind != Kind::kString || tag.text != "storage") bad("the first item is not 'storage'");
    if (type.kind != Kind::kGlobal || type.global->role != Role::kStorageType) {
      bad(c10::str("a ", type.Describe(), " instead of a storage type"));
    }
    if (key.kind != Kind::kString || key.text.empty() || key.text.size() > kMaxStorageKeySize) {
      bad("a bad key");
    }
    for (const char c : key.text) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
        bad(c10::str("key '", key.text, "' has characters other than letters, digits and _"));
      }
    }
    if (location.kind != Kind::kString) bad("the location is not a string");
    int64_t nbytes = 0;
    if (numel.kind != Kind::kInt || numel.integer < 0 ||
        MulOverflows(numel.integer, c10::elementSize(type.global->dtype), &nbytes)) {
      bad("a bad element count");
    }

    PickleValue* value = New(Kind::kStorage);
    auto& known = storages_[key.text];
    if (known) {
      if (known->dtype != type.global->dtype || known->numel != numel.integer) {
        Fail(c10::str("storage '", key.text, "' is described both as ", known->numel, " ",
                      c10::toString(known->dtype), " and as ", numel.integer, " ",
                      c10::toString(type.global->dtype)));
      }
    } else {
      auto storage = std::make_shared<StorageRef>();
      storage->key = key.text;
      storage->dtype = type.global->dtype;
      storage->numel = numel.integer;
      storage->location = location.text;
      known = std::move(storage);
    }
    value->storage = known;
    return value;
  }

  std::vector<int64_t> ReadDims(const PickleValue& callable, const PickleValue& value,
                                const char* what) {
    if (value.kind != Kind::kTuple && value.kind != Kind::kList) {
      Fail(c10::str("'", callable.text, "' ", what, " is a ", value.Describe()));
    }
    if (value.items.size() > kMaxTensorDims) {
      Fail(c10::str("a tensor with ", value.items.size(), " dimensions"));
    }
    std::vector<int64_t> dims;
    dims.reserve(value.items.size());
    for (const PickleValue* item : value.items) {
      if (item->kind != Kind::kInt || item->integer < 0) {
        Fail(c10::str("'", callable.text, "' ", what, " holds a ", item->Describe(),
                      " that is not a non-negative int"));
      }
      dims.push_back(item->integer);
    }
    return dims;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
  //                    [, metadata]) and _rebuild_tensor_v3(..., backward_hooks, dtype
  //                    [, metadata]).
  PickleValue* RebuildTensor(const PickleValue& callable,
                             const std::vector<const PickleValue*>& args, bool explicit_dtype) {
    if (args[0]->kind != Kind::kStorage) {
      Fail(c10::str("'", callable.text, "' needs a storage, not a ", args[0]->Describe()));
    }
    auto tensor = std::make_shared<TensorRef>();
    tensor->storage = args[0]->storage;
    tensor->dtype = tensor->storage->dtype;
    if (args[1]->kind != Kind::kInt || args[1]->integer < 0) {
      Fail(c10::str("'", callable.text, "' storage offset is a ", args[1]->Describe(),
                    " that is not a non-negative int"));
    }
    tensor->storage_offset = args[1]->integer;
    tensor->sizes = ReadDims(callable, *args[2], "size");
    tensor->strides = ReadDims(callable, *args[3], "stride");
    if (tensor->sizes.size() != tensor->strides.size()) {
      Fail(c10::str("'", callable.text, "' has ", tensor->sizes.size(), " sizes but ",
                    tensor->strides.size(), " strides"));
    }
    if (args[4]->kind != Kind::kBool) {
      Fail(c10::str("'", callable.text, "' requires_grad is a ", args[4]->Describe()));
    }
    size_t metadata_index = 6;
    if (explicit_dtype) {
      const PickleValue& dtype = *args[6];
      if (dtype.kind != Kind::kGlobal || dtype.global->role != Role::kDtype) {
        Fail(c10::str("'", callable.text, "' dtype is a ", dtype.Describe(),
                      " (supported: float32, float64, float16, bfloat16, int64, int32, int16, "
                      "int8, uint8 and bool)"));
      }
      tensor->dtype = dtype.global->dtype;
      metadata_index = 7;
    }
    if (args.size() > metadata_index) CheckTensorMetadata(*args[metadata_index]);
    CheckInsideStorage(*tensor);
    PickleValue* value = New(Kind::kTensor);
    value->tensor = std::move(tensor);
    return value;
  }

  // torch writes metadata only for tensors with non-default bits: conj_bit (meaningless for the
  // real dtypes this reader supports) and neg_bit (a lazily negated view, which it does not).
  void CheckTensorMetadata(const PickleValue& metadata) {
    if (metadata.kind == Kind::kNone) return;
    if (metadata.kind != Kind::kDict) Fail(c10::str("tensor metadata is a ", metadata.Describe()));
    for (const auto& [key, value] : metadata.entries) {
      if (key->kind != Kind::kString || value->kind != Kind::kBool) {
        Fail("tensor metadata must map names to booleans");
      }
      if (key->text == "conj_bit" || !value->boolean) continue;
      if (key->text == "neg_bit") {
        Fail(
            "a tensor saved as a negated view (neg_bit) is not supported; save "
            "tensor.resolve_neg() instead");
      }
      Fail(c10::str("unknown tensor metadata '", key->text, "'"));
    }
  }

  void CheckInsideStorage(const TensorRef& tensor) {
    const int64_t element = c10::elementSize(tensor.dtype);
    const int64_t storage_bytes = tensor.storage->nbytes();
    int64_t numel = 1;
    for (const int64_t size : tensor.sizes) {
      if (MulOverflows(numel, size, &numel)) Fail("a tensor with more than 2^63 elements");
    }
    int64_t end = tensor.storage_offset;  // one past the last element used, in elements
    if (numel > 0) {
      for (size_t d = 0; d < tensor.sizes.size(); ++d) {
        int64_t step = 0;
        if (MulOverflows(tensor.sizes[d] - 1, tensor.strides[d], &step) ||
            AddOverflows(end, step, &end)) {
          Fail("tensor strides overflow");
        }
      }
      if (AddOverflows(end, 1, &end)) Fail("tensor strides overflow");
    }
    int64_t end_bytes = 0;
    if (MulOverflows(end, element, &end_bytes) || end_bytes > storage_bytes) {
      Fail(c10::str("a tensor of size ", c10::IntArrayRef(tensor.sizes), ", stride ",
                    c10::IntArrayRef(tensor.strides), " and offset ", tensor.storage_offset,
                    " reaches outside its storage '", tensor.storage->key, "' of ", storage_bytes,
                    " bytes"));
    }
  }

  std::string_view data_;
  const std::string& source_;
  size_t pos_ = 0;
  size_t opcode_pos_ = 0;
  std::deque<PickleValue> values_;  // every value built; the others point into it
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  std::unordered_map<std::string, std::shared_ptr<const StorageRef>> storages_;
};

}  // namespace

int64_t StorageRef::nbytes() const { return numel * static_cast<int64_t>(c10::elementSize(dtype)); }

const PickleValue* PickleValue::Find(std::string_view key) const {
  for (const auto& [name, value] : entries) {
    if (name->kind == Kind::kString && name->text == key) return value;
  }
  return nullptr;
}

std::string PickleValue::Describe() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return c10::str("global '", text, "'");
    case Kind::kObject:
      return c10::str("'", text, "' object");
    case Kind::kStorage:
      return "storage";
    case Kind::kTensor:
      return "tensor";
  }
  return "?";
}

Unpickled Unpickle(std::string_view data, const std::string& source) {
  return Unpickler(data, source).Run();
}

}  // namespace iis::models::checkpoint
