// CUDA bindings of iis::nms and iis::batched_nms: checks, device guard, current stream, a stable
// sort by score, launch of ops/cuda/nms_kernel.cu. Built only against a LibTorch with CUDA
// (IIS_TORCH_HAS_CUDA).
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/unique_consecutive.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "ops/cuda/nms_kernel.h"
#include "ops/nms.h"

namespace iis::ops {
namespace {

// Returns the indices of `values` (1-D) by decreasing value, ties by increasing index.
at::Tensor OrderByDecreasing(const at::Tensor& values) {
  return std::get<1>(at::sort(values, /*stable=*/true, /*dim=*/0, /*descending=*/true));
}

// NMS of already-checked CUDA tensors on the current device and stream.
at::Tensor NmsOnDevice(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  const int64_t n = boxes.size(0);
  const at::TensorOptions long_options = boxes.options().dtype(at::kLong);
  if (n == 0) return at::empty({0}, long_options);
  const at::Tensor order = OrderByDecreasing(scores);
  const at::Tensor sorted = boxes.index_select(0, order).contiguous();
  const int64_t blocks = iis::ops::cuda::NmsBlocks(n);
  at::Tensor mask = at::empty({n * blocks}, long_options);
  at::Tensor removed = at::empty({blocks}, long_options);
  at::Tensor keep = at::empty({n}, long_options);
  at::Tensor num_keep = at::empty({1}, long_options);
  iis::ops::cuda::NmsProblem problem;
  problem.sorted_boxes = sorted.data_ptr<float>();
  problem.n = n;
  problem.iou_threshold = static_cast<float>(iou_threshold);
  problem.mask = reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>());
  problem.removed = reinterpret_cast<uint64_t*>(removed.data_ptr<int64_t>());
  problem.keep = keep.data_ptr<int64_t>();
  problem.num_keep = num_keep.data_ptr<int64_t>();
  const std::string error = iis::ops::cuda::LaunchNms(problem, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(error.empty(), error);
  const int64_t kept = num_keep.item<int64_t>();
  return order.index_select(0, keep.slice(0, 0, kept));
}

void CheckOnCuda(const char* op, const at::Tensor& boxes) {
  TORCH_CHECK(boxes.is_cuda(), op, " (CUDA kernel): boxes must be on a CUDA device, got ",
              boxes.device());
}

at::Tensor NmsCuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  CheckNmsArguments("iis::nms", boxes, scores, iou_threshold);
  CheckOnCuda("iis::nms", boxes);
  const c10::cuda::CUDAGuard guard(boxes.device());
  return NmsOnDevice(boxes, scores, iou_threshold);
}

at::Tensor BatchedNmsCuda(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                          double iou_threshold) {
  CheckBatchedNmsArguments(boxes, scores, idxs, iou_threshold);
  CheckOnCuda("iis::batched_nms", boxes);
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  // mmcv: boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None], float32 tensor ops.
  const at::Tensor offsets = idxs.to(at::kFloat) * (boxes.max() + 1);
  const at::Tensor shifted = boxes + offsets.unsqueeze(1);
  if (n < kBatchedNmsSplitThreshold) return NmsOnDevice(shifted, scores, iou_threshold);

  // One NMS per idx value; members of a group in increasing index order (stable sort).
  const at::Tensor by_group = std::get<1>(at::sort(idxs.to(at::kLong), /*stable=*/true, 0, false));
  const at::Tensor counts =
      std::get<2>(at::unique_consecutive(idxs.to(at::kLong).index_select(0, by_group),
                                         /*return_inverse=*/false, /*return_counts=*/true))
          .cpu();
  const int64_t* count_data = counts.data_ptr<int64_t>();
  std::vector<at::Tensor> kept;
  int64_t start = 0;
  for (int64_t g = 0; g < counts.size(0); ++g) {
    const int64_t count = count_data[g];
    const at::Tensor members = by_group.slice(0, start, start + count);
    start += count;
    const at::Tensor keep = NmsOnDevice(shifted.index_select(0, members),
                                        scores.index_select(0, members), iou_threshold);
    kept.push_back(members.index_select(0, keep));
  }
  // Survivors in index order, then stably by decreasing score.
  const at::Tensor survivors = std::get<0>(at::cat(kept).sort());
  return survivors.index_select(0, OrderByDecreasing(scores.index_select(0, survivors)));
}

}  // namespace

TORCH_LIBRARY_IMPL(iis, CUDA, m) {
  m.impl("nms", &NmsCuda);
  m.impl("batched_nms", &BatchedNmsCuda);
}

}  // namespace iis::ops
