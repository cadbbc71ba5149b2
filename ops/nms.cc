// Schemas of iis::nms and iis::batched_nms, the dispatcher-calling C++ API and the argument checks
// shared by the device kernels.
#include "ops/nms.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

namespace iis::ops {

TORCH_LIBRARY_FRAGMENT(iis, m) {
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
}

at::Tensor Nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("iis::nms", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return op.call(boxes, scores, iou_threshold);
}

at::Tensor BatchedNms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                      double iou_threshold) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("iis::batched_nms", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double)>();
  return op.call(boxes, scores, idxs, iou_threshold);
}

void CheckNmsArguments(const char* op, const at::Tensor& boxes, const at::Tensor& scores,
                       double iou_threshold) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, op,
              ": boxes must have shape (N, 4) [x1, y1, x2, y2], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1, op, ": scores must be 1-D (N,), got shape ", scores.sizes());
  TORCH_CHECK(scores.size(0) == boxes.size(0), op, ": scores must have one entry per box (",
              boxes.size(0), "), got ", scores.size(0));
  TORCH_CHECK(boxes.scalar_type() == at::kFloat, op, ": boxes must be float32, got ",
              boxes.scalar_type());
  TORCH_CHECK(scores.scalar_type() == at::kFloat, op, ": scores must be float32, got ",
              scores.scalar_type());
  TORCH_CHECK(scores.device() == boxes.device(), op, ": scores must be on the boxes' device ",
              boxes.device(), ", got ", scores.device());
  TORCH_CHECK(iou_threshold >= 0.0 && iou_threshold <= 1.0, op,
              ": iou_threshold must be in [0, 1], got ", iou_threshold);
}

void CheckBatchedNmsArguments(const at::Tensor& boxes, const at::Tensor& scores,
                              const at::Tensor& idxs, double iou_threshold) {
  constexpr const char* kOp = "iis::batched_nms";
  CheckNmsArguments(kOp, boxes, scores, iou_threshold);
  TORCH_CHECK(idxs.dim() == 1 && idxs.size(0) == boxes.size(0), kOp,
              ": idxs must have shape (N,) with N = ", boxes.size(0), " (one per box), got ",
              idxs.sizes());
  TORCH_CHECK(c10::isIntegralType(idxs.scalar_type(), /*includeBool=*/false), kOp,
              ": idxs must have an integer dtype, got ", idxs.scalar_type());
  TORCH_CHECK(idxs.device() == boxes.device(), kOp, ": idxs must be on the boxes' device ",
              boxes.device(), ", got ", idxs.device());
}

}  // namespace iis::ops
