// CUDA kernels of iis::nms on raw device pointers (no LibTorch headers: this compiles with nvcc
// wherever it is installed; ops/cuda/nms_cuda.cc sorts the boxes and binds it to the dispatcher).
//
// The classic bitmask NMS: boxes (already sorted by decreasing score) are cut into blocks of 64;
// one CUDA block per (row block, column block) pair computes, for each of its 64 row boxes, a
// 64-bit mask of the later column boxes it suppresses. A single-block reduce kernel then walks the
// boxes in order: a box is kept when no kept box has marked it, and its mask row is OR-ed into
// the running "removed" bits (64 decisions per step are taken by one thread on a register copy;
// the other words are updated by all threads in parallel). The IoU uses round-to-nearest
// intrinsics in the exact order of the CPU kernel (no FMA contraction), so the kept sets are
// identical to the CPU's and mmcv's CPU kernel's.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace iis::ops::cuda {

// Returns the number of 64-box blocks for n boxes: ceil(n / 64).
int64_t NmsBlocks(int64_t n);

// One NMS problem. All pointers are device memory.
struct NmsProblem {
  const float* sorted_boxes = nullptr;  // (n, 4) float32 [x1, y1, x2, y2], dense, by score
  int64_t n = 0;
  float iou_threshold = 0.5f;
  uint64_t* mask = nullptr;     // scratch: n * NmsBlocks(n) words
  uint64_t* removed = nullptr;  // scratch: NmsBlocks(n) words
  int64_t* keep = nullptr;      // out: positions (into the sorted order) of kept boxes, ascending
  int64_t* num_keep = nullptr;  // out: one value, how many entries of `keep` are written
};

// Enqueues the kernels on `stream` and returns "" on success, otherwise the error message (also
// when n needs more than 65535 blocks, i.e. n > 4194240, far beyond the scratch any GPU holds).
// Not synchronising; thread-safe.
std::string LaunchNms(const NmsProblem& problem, cudaStream_t stream);

}  // namespace iis::ops::cuda
