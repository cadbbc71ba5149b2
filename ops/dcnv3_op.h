// The implementation side of the ops iis::dcnv3 and iis::dcnv3_softmax, shared by the schema and
// C++ API (ops/dcnv3.cc) and the device kernels (cpu/dcnv3_cpu.cc, cuda/dcnv3_cuda.cc). Callers
// of the ops use ops/dcnv3.h instead.
//
// The schemas' scalar arguments are spelled once, in kDcnv3ScalarArguments (name, type and the
// Dcnv3Params member, in schema order). Everything else is derived from that table: the schema
// text (Dcnv3SchemaText), the ops' C++ signature (Dcnv3Signature), the one conversion from the
// schema's arguments to Dcnv3Params (Dcnv3ParamsFromSchema) and back (Dcnv3SchemaArguments), and
// the one registration of a device's kernel under both op names (RegisterDcnv3Kernels). Both ops
// take (value, offset, mask or mask_logits) and then those scalars; which op was called is
// Dcnv3Params::mask_is_logits.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ops/dcnv3_params.h"

namespace iis::ops {
namespace dcnv3_detail {

// One scalar argument of the schemas: its name there and the Dcnv3Params member it sets.
template <typename T>
struct ScalarArgument {
  const char* name;
  T Dcnv3Params::*member;
};

// The schema type of an argument ("int" is int64_t, "float" is double in LibTorch's C++).
template <typename T>
constexpr const char* SchemaType(const ScalarArgument<T>&) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return "int";
  } else if constexpr (std::is_same_v<T, double>) {
    return "float";
  } else {
    static_assert(std::is_same_v<T, bool>, "schema scalars are int64_t, double or bool");
    return "bool";
  }
}

// The C++ type of an argument's value (for decltype only).
template <typename T>
T SchemaValue(const ScalarArgument<T>&);

// Returns the argument `name` that sets `member` (T deduced from the member).
template <typename T>
constexpr ScalarArgument<T> Argument(const char* name, T Dcnv3Params::*member) {
  return {name, member};
}

}  // namespace dcnv3_detail

// The schemas' scalar arguments, in schema order: the only place that names them.
inline constexpr auto kDcnv3ScalarArguments =
    std::make_tuple(dcnv3_detail::Argument("kernel_h", &Dcnv3Params::kernel_h),
                    dcnv3_detail::Argument("kernel_w", &Dcnv3Params::kernel_w),
                    dcnv3_detail::Argument("stride_h", &Dcnv3Params::stride_h),
                    dcnv3_detail::Argument("stride_w", &Dcnv3Params::stride_w),
                    dcnv3_detail::Argument("pad_h", &Dcnv3Params::pad_h),
                    dcnv3_detail::Argument("pad_w", &Dcnv3Params::pad_w),
                    dcnv3_detail::Argument("dilation_h", &Dcnv3Params::dilation_h),
                    dcnv3_detail::Argument("dilation_w", &Dcnv3Params::dilation_w),
                    dcnv3_detail::Argument("group", &Dcnv3Params::group),
                    dcnv3_detail::Argument("group_channels", &Dcnv3Params::group_channels),
                    dcnv3_detail::Argument("offset_scale", &Dcnv3Params::offset_scale),
                    dcnv3_detail::Argument("remove_center", &Dcnv3Params::remove_center));

// Returns the schema of the op `name` ("dcnv3") whose third tensor is called `mask_name`:
// "<name>(Tensor value, Tensor offset, Tensor <mask_name>, <the scalar arguments>) -> Tensor".
inline std::string Dcnv3SchemaText(const char* name, const char* mask_name) {
  std::string schema = std::string(name) + "(Tensor value, Tensor offset, Tensor " + mask_name;
  std::apply(
      [&](const auto&... argument) {
        ((schema += std::string(", ") + dcnv3_detail::SchemaType(argument) + " " + argument.name),
         ...);
      },
      kDcnv3ScalarArguments);
  return schema + ") -> Tensor";
}

// Returns the parameters that the schemas' scalar arguments (in schema order, of the members'
// types) give, for the op iis::dcnv3_softmax when mask_is_logits, else iis::dcnv3. No validation
// (CheckDcnv3Args in ops/dcnv3.h does it).
template <typename... Scalars>
Dcnv3Params Dcnv3ParamsFromSchema(bool mask_is_logits, Scalars... scalars) {
  static_assert(
      sizeof...(Scalars) == std::tuple_size_v<std::decay_t<decltype(kDcnv3ScalarArguments)>>,
      "one value per scalar argument of the schema");
  Dcnv3Params p;
  std::apply(
      [&](const auto&... argument) {
        static_assert(
            (std::is_same_v<decltype(dcnv3_detail::SchemaValue(argument)), Scalars> && ...),
            "scalars of the members' types, in schema order");
        ((p.*argument.member = scalars), ...);
      },
      kDcnv3ScalarArguments);
  p.mask_is_logits = mask_is_logits;
  return p;
}

// Returns the schemas' scalar arguments for `p`, in schema order: the inverse of
// Dcnv3ParamsFromSchema (p.mask_is_logits chooses the op and is not among them).
inline auto Dcnv3SchemaArguments(const Dcnv3Params& p) {
  return std::apply([&](const auto&... argument) { return std::make_tuple(p.*argument.member...); },
                    kDcnv3ScalarArguments);
}

// Returns the name of the op that `params` select ("iis::dcnv3_softmax" or "iis::dcnv3"), the
// prefix of the ops' error messages.
inline const char* Dcnv3OpName(const Dcnv3Params& params) {
  return params.mask_is_logits ? "iis::dcnv3_softmax" : "iis::dcnv3";
}

// A device's implementation of both ops: checks its arguments (CheckDcnv3Args and the device's
// dtypes), computes on the device of `value`, throws c10::Error.
using Dcnv3DeviceFn = at::Tensor (*)(const at::Tensor& value, const at::Tensor& offset,
                                     const at::Tensor& mask, const Dcnv3Params& params);

namespace dcnv3_detail {

// The ops' C++ signature and kernel entry for the scalar types of kDcnv3ScalarArguments.
template <typename Arguments>
struct Schema;
template <typename... Scalars>
struct Schema<std::tuple<ScalarArgument<Scalars>...>> {
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, Scalars...);
  template <Dcnv3DeviceFn kFn, bool kMaskIsLogits>
  static at::Tensor Entry(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                          Scalars... scalars) {
    return kFn(value, offset, mask, Dcnv3ParamsFromSchema(kMaskIsLogits, scalars...));
  }
};
using Dcnv3Schema = Schema<std::decay_t<decltype(kDcnv3ScalarArguments)>>;

}  // namespace dcnv3_detail

// The C++ signature of iis::dcnv3 and iis::dcnv3_softmax (for typed dispatcher calls).
using Dcnv3Signature = dcnv3_detail::Dcnv3Schema::Signature;

// Registers `kFn` as the kernel of both iis::dcnv3 and iis::dcnv3_softmax for the dispatch key
// of `m`: call it once inside TORCH_LIBRARY_IMPL(iis, <key>, m).
template <Dcnv3DeviceFn kFn>
void RegisterDcnv3Kernels(torch::Library& m) {
  m.impl("dcnv3", TORCH_FN((dcnv3_detail::Dcnv3Schema::Entry<kFn, false>)));
  m.impl("dcnv3_softmax", TORCH_FN((dcnv3_detail::Dcnv3Schema::Entry<kFn, true>)));
}

}  // namespace iis::ops
