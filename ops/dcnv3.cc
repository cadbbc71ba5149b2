// iis::dcnv3 and iis::dcnv3_softmax: schema, argument checks, C++ API and the composed ATen
// version. The kernels live in cpu/dcnv3_cpu.cc and cuda/dcnv3_cuda.cc.
#include "ops/dcnv3.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "ops/dcnv3_op.h"

namespace iis::ops {
namespace {

// Spatial sizes above this lose integer precision in fp32 sampling coordinates.
constexpr int64_t kMaxSpatialSize = int64_t{1} << 24;
// The kernels narrow the integer parameters to int (CUDA kernel arguments, CPU loop counters).
constexpr int64_t kMaxParameter = std::numeric_limits<int32_t>::max() / 4;

void CheckParameter(const char* op, const char* name, int64_t value, int64_t minimum) {
  TORCH_CHECK(value >= minimum && value <= kMaxParameter, op, ": ", name, " must be in [", minimum,
              ", ", kMaxParameter, "], got ", value);
}

void CheckRank4(const char* op, const char* name, const at::Tensor& t, const char* layout) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.dim() == 4, op, ": ", name, " must be 4-D ", layout, ", got ", t.dim(),
              "-D with sizes ", t.sizes());
}

// Returns the element stride between consecutive (n, h, w) pixels of a (N, H, W, L) tensor that is
// dense or a last-dimension slice of a dense tensor (a wider last dimension); throws otherwise.
int64_t PixelStride(const char* op, const char* name, const at::Tensor& t) {
  const auto sizes = t.sizes();
  const auto strides = t.strides();
  const int64_t last = sizes[3];
  // Strides of size-1 dimensions carry no information (PyTorch's contiguity rule ignores them).
  int64_t pixel_stride = last;
  if (sizes[2] > 1) {
    pixel_stride = strides[2];
  } else if (sizes[1] > 1) {
    pixel_stride = strides[1];
  } else if (sizes[0] > 1) {
    pixel_stride = strides[0];
  }
  bool ok = (last == 1 || strides[3] == 1) && pixel_stride >= last;
  if (sizes[1] > 1) ok = ok && strides[1] == pixel_stride * sizes[2];
  if (sizes[0] > 1) ok = ok && strides[0] == pixel_stride * sizes[2] * sizes[1];
  TORCH_CHECK(ok, op, ": ", name,
              " must be dense (N, H, W, C) or a last-dimension slice of a dense tensor (last "
              "stride 1, N/H/W strides of a dense tensor with a wider last dimension), got sizes ",
              sizes, " and strides ", strides);
  return pixel_stride;
}

void CheckShape(const char* op, const char* name, const at::Tensor& t,
                std::initializer_list<int64_t> expected, const char* meaning) {
  TORCH_CHECK(t.sizes() == c10::IntArrayRef(expected), op, ": ", name, " must have shape ", meaning,
              " = ", c10::IntArrayRef(expected), ", got ", t.sizes());
}

// Output extent along one axis, or an error naming the axis when it would be empty.
int64_t OutputSize(const char* op, const char* axis, int64_t in, int64_t kernel, int64_t stride,
                   int64_t pad, int64_t dilation) {
  const int64_t extent = dilation * (kernel - 1) + 1;
  TORCH_CHECK(in + 2 * pad >= extent, op, ": empty output: the kernel ", axis, " extent ",
              "dilation*(kernel-1)+1 = ", extent, " exceeds the padded input ", axis,
              " input+2*pad = ", in + 2 * pad);
  return (in + 2 * pad - extent) / stride + 1;
}

const c10::TypedOperatorHandle<Dcnv3Signature>& Dcnv3Op(bool softmax) {
  static const auto plain =
      c10::Dispatcher::singleton().findSchemaOrThrow("iis::dcnv3", "").typed<Dcnv3Signature>();
  static const auto fused = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("iis::dcnv3_softmax", "")
                                .typed<Dcnv3Signature>();
  return softmax ? fused : plain;
}

}  // namespace

Dcnv3Geometry CheckDcnv3Args(const char* op, const at::Tensor& value, const at::Tensor& offset,
                             const at::Tensor& mask, const Dcnv3Params& params) {
  CheckRank4(op, "value", value, "(N, H_in, W_in, group*group_channels)");
  CheckRank4(op, "offset", offset, "(N, H_out, W_out, group*K*2)");
  CheckRank4(op, "mask", mask, "(N, H_out, W_out, group*K)");
  CheckParameter(op, "kernel_h", params.kernel_h, 1);
  CheckParameter(op, "kernel_w", params.kernel_w, 1);
  CheckParameter(op, "stride_h", params.stride_h, 1);
  CheckParameter(op, "stride_w", params.stride_w, 1);
  CheckParameter(op, "pad_h", params.pad_h, 0);
  CheckParameter(op, "pad_w", params.pad_w, 0);
  CheckParameter(op, "dilation_h", params.dilation_h, 1);
  CheckParameter(op, "dilation_w", params.dilation_w, 1);
  CheckParameter(op, "group", params.group, 1);
  CheckParameter(op, "group_channels", params.group_channels, 1);
  TORCH_CHECK(std::isfinite(params.offset_scale), op, ": offset_scale must be finite, got ",
              params.offset_scale);
  TORCH_CHECK(!params.remove_center || params.kernel_h * params.kernel_w > 1, op,
              ": remove_center needs a kernel with more than one point, got ", params.kernel_h, "x",
              params.kernel_w);
  TORCH_CHECK(offset.device() == value.device(), op, ": offset must be on the device of value (",
              value.device(), "), got ", offset.device());
  TORCH_CHECK(mask.device() == value.device(), op, ": mask must be on the device of value (",
              value.device(), "), got ", mask.device());
  TORCH_CHECK(offset.scalar_type() == value.scalar_type(), op,
              ": offset must have the dtype of value (", value.scalar_type(), "), got ",
              offset.scalar_type());
  TORCH_CHECK(mask.scalar_type() == value.scalar_type(), op,
              ": mask must have the dtype of value (", value.scalar_type(), "), got ",
              mask.scalar_type());

  Dcnv3Geometry geo;
  geo.batch = value.size(0);
  geo.height_in = value.size(1);
  geo.width_in = value.size(2);
  geo.channels = value.size(3);
  TORCH_CHECK(geo.batch > 0 && geo.height_in > 0 && geo.width_in > 0 && geo.channels > 0, op,
              ": value must be non-empty, got sizes ", value.sizes());
  TORCH_CHECK(geo.height_in < kMaxSpatialSize && geo.width_in < kMaxSpatialSize, op,
              ": value height and width must be below 2^24 (fp32 coordinates), got ",
              value.sizes());
  TORCH_CHECK(geo.channels == params.group * params.group_channels, op,
              ": value channels (dim 3) must equal group*group_channels = ", params.group, "*",
              params.group_channels, " = ", params.group * params.group_channels, ", got ",
              geo.channels);
  TORCH_CHECK(value.is_contiguous(), op, ": value must be dense (contiguous N, H, W, C), got ",
              "strides ", value.strides(), " for sizes ", value.sizes());
  geo.height_out = OutputSize(op, "height", geo.height_in, params.kernel_h, params.stride_h,
                              params.pad_h, params.dilation_h);
  geo.width_out = OutputSize(op, "width", geo.width_in, params.kernel_w, params.stride_w,
                             params.pad_w, params.dilation_w);
  geo.points = params.Points();
  CheckShape(op, "offset", offset,
             {geo.batch, geo.height_out, geo.width_out, params.group * geo.points * 2},
             "[N, H_out, W_out, group*K*2]");
  CheckShape(op, "mask", mask,
             {geo.batch, geo.height_out, geo.width_out, params.group * geo.points},
             "[N, H_out, W_out, group*K]");
  geo.offset_pixel_stride = PixelStride(op, "offset", offset);
  geo.mask_pixel_stride = PixelStride(op, "mask", mask);
  return geo;
}

at::Tensor Dcnv3(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                 const Dcnv3Params& params) {
  const auto& op = Dcnv3Op(params.mask_is_logits);
  return std::apply([&](auto... scalars) { return op.call(value, offset, mask, scalars...); },
                    Dcnv3SchemaArguments(params));
}

at::Tensor Dcnv3Softmax(const at::Tensor& value, const at::Tensor& offset,
                        const at::Tensor& mask_logits, const Dcnv3Params& params) {
  Dcnv3Params softmax = params;
  softmax.mask_is_logits = true;
  return Dcnv3(value, offset, mask_logits, softmax);
}

at::Tensor Dcnv3Composed(const at::Tensor& value, const at::Tensor& offset,
                         const at::Tensor& mask_or_logits, const Dcnv3Params& params) {
  const char* op = "iis::ops::Dcnv3Composed";
  const Dcnv3Geometry geo = CheckDcnv3Args(op, value, offset, mask_or_logits, params);
  TORCH_CHECK(at::isFloatingType(value.scalar_type()), op,
              ": value must have a floating dtype, got ", value.scalar_type());
  const int64_t n = geo.batch;
  const int64_t g = params.group;
  const int64_t d = params.group_channels;
  const int64_t k = geo.points;
  const int64_t h_out = geo.height_out;
  const int64_t w_out = geo.width_out;

  // 1. Zero-pad height and width (channels-last: the pad list starts at the last dimension).
  const at::Tensor padded =
      at::constant_pad_nd(value, {0, 0, params.pad_w, params.pad_w, params.pad_h, params.pad_h});
  const int64_t h_pad = geo.height_in + 2 * params.pad_h;
  const int64_t w_pad = geo.width_in + 2 * params.pad_w;

  // 2. Sampling positions in padded pixel coordinates (fp32): window origin plus
  //    (regular grid + learned offset) * offset_scale, points x-outer.
  const int64_t half_w = (params.dilation_w * (params.kernel_w - 1)) >> 1;
  const int64_t half_h = (params.dilation_h * (params.kernel_h - 1)) >> 1;
  std::vector<float> grid_x, grid_y;
  for (int64_t i = 0; i < params.kernel_w; ++i) {
    for (int64_t j = 0; j < params.kernel_h; ++j) {
      if (params.remove_center && i == params.kernel_w / 2 && j == params.kernel_h / 2) continue;
      grid_x.push_back(static_cast<float>(i * params.dilation_w - half_w));
      grid_y.push_back(static_cast<float>(j * params.dilation_h - half_h));
    }
  }
  const auto f32 = value.options().dtype(at::kFloat);
  const at::Tensor grid_x_t = at::tensor(grid_x).to(value.device()).view({1, 1, 1, 1, k});
  const at::Tensor grid_y_t = at::tensor(grid_y).to(value.device()).view({1, 1, 1, 1, k});
  const at::Tensor origin_x =
      (at::arange(w_out, f32) * params.stride_w + half_w).view({1, 1, w_out, 1, 1});
  const at::Tensor origin_y =
      (at::arange(h_out, f32) * params.stride_h + half_h).view({1, h_out, 1, 1, 1});
  const at::Tensor off = offset.to(at::kFloat).reshape({n, h_out, w_out, g, k, 2});
  const at::Tensor px = origin_x + (grid_x_t + off.select(5, 0)) * params.offset_scale;
  const at::Tensor py = origin_y + (grid_y_t + off.select(5, 1)) * params.offset_scale;

  // 3. Normalise for grid_sample(align_corners=False): pixel centre p maps to (2p + 1) / size - 1.
  const at::Tensor grid = at::stack({(px * 2 + 1) / w_pad - 1, (py * 2 + 1) / h_pad - 1}, -1)
                              .permute({0, 3, 1, 2, 4, 5})
                              .reshape({n * g, h_out * w_out, k, 2})
                              .to(value.scalar_type());

  // 4. Sample every group's channels: (N*G, D, H_pad, W_pad) -> (N*G, D, H_out*W_out, K).
  const at::Tensor input = padded.view({n, h_pad, w_pad, g, d})
                               .permute({0, 3, 4, 1, 2})
                               .reshape({n * g, d, h_pad, w_pad});
  const at::Tensor sampled = at::grid_sampler(input, grid, /*interpolation_mode=bilinear*/ 0,
                                              /*padding_mode=zeros*/ 0, /*align_corners=*/false);

  // 5. Weight by the mask (softmaxed over K when given logits) and sum over the points.
  at::Tensor mask = mask_or_logits.reshape({n, h_out, w_out, g, k});
  if (params.mask_is_logits) mask = at::softmax(mask.to(at::kFloat), -1);
  mask =
      mask.to(value.scalar_type()).permute({0, 3, 1, 2, 4}).reshape({n * g, 1, h_out * w_out, k});
  const at::Tensor out = (sampled * mask).sum(-1);  // (N*G, D, H_out*W_out)
  return out.view({n, g * d, h_out, w_out}).permute({0, 2, 3, 1}).contiguous();
}

}  // namespace iis::ops

TORCH_LIBRARY_FRAGMENT(iis, m) {
  // One argument list for both ops (kDcnv3ScalarArguments in ops/dcnv3_op.h); the third tensor's
  // name says what it holds.
  m.def(iis::ops::Dcnv3SchemaText("dcnv3", "mask").c_str());
  m.def(iis::ops::Dcnv3SchemaText("dcnv3_softmax", "mask_logits").c_str());
}
