#include "ops/cuda/nms_kernel.h"

#include <cuda_runtime.h>

#include "ops/cuda/cuda_check.h"

namespace iis::ops::cuda {
namespace {

constexpr int kBlockBoxes = 64;
constexpr int kReduceThreads = 256;
constexpr int64_t kMaxGridDim = 65535;

// Number of boxes in the 64-box block that starts at `start`.
__device__ __forceinline__ int BlockSize(int64_t n, int64_t start) {
  return n - start < kBlockBoxes ? static_cast<int>(n - start) : kBlockBoxes;
}

// IoU(a, b) > threshold with the CPU kernel's operations: std::max/std::min as written there
// (max(a, b) = a < b ? b : a, min(a, b) = b < a ? b : a) and correctly rounded arithmetic.
__device__ __forceinline__ bool Suppresses(const float* a, float area_a, const float* b,
                                           float threshold) {
  const float xx1 = a[0] < b[0] ? b[0] : a[0];
  const float yy1 = a[1] < b[1] ? b[1] : a[1];
  const float xx2 = b[2] < a[2] ? b[2] : a[2];
  const float yy2 = b[3] < a[3] ? b[3] : a[3];
  const float dw = __fsub_rn(xx2, xx1);
  const float dh = __fsub_rn(yy2, yy1);
  const float w = 0.0f < dw ? dw : 0.0f;
  const float h = 0.0f < dh ? dh : 0.0f;
  const float inter = __fmul_rn(w, h);
  const float area_b = __fmul_rn(__fsub_rn(b[2], b[0]), __fsub_rn(b[3], b[1]));
  // A zero union gives NaN, and NaN > threshold is false.
  const float iou = __fdiv_rn(inter, __fsub_rn(__fadd_rn(area_a, area_b), inter));
  return iou > threshold;
}

// Block (column block x, row block y), 64 threads: thread t writes the mask word of row box
// y * 64 + t for the column boxes of block x that come after it.
__global__ void NmsMaskKernel(const float* __restrict__ boxes, int64_t n, int64_t blocks,
                              float threshold, uint64_t* __restrict__ mask) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  if (row_block > col_block) return;  // only later boxes can be suppressed
  const int64_t row_start = row_block * kBlockBoxes;
  const int64_t col_start = col_block * kBlockBoxes;
  const int row_size = BlockSize(n, row_start);
  const int col_size = BlockSize(n, col_start);

  __shared__ float col_boxes[kBlockBoxes * 4];
  if (threadIdx.x < col_size) {
    for (int k = 0; k < 4; ++k) {
      col_boxes[threadIdx.x * 4 + k] = boxes[(col_start + threadIdx.x) * 4 + k];
    }
  }
  __syncthreads();
  if (threadIdx.x >= row_size) return;

  const int64_t i = row_start + threadIdx.x;
  const float* row_box = boxes + i * 4;
  const float row_area =
      __fmul_rn(__fsub_rn(row_box[2], row_box[0]), __fsub_rn(row_box[3], row_box[1]));
  uint64_t bits = 0;
  const int first = row_block == col_block ? static_cast<int>(threadIdx.x) + 1 : 0;
  for (int j = first; j < col_size; ++j) {
    if (Suppresses(row_box, row_area, col_boxes + j * 4, threshold)) bits |= uint64_t{1} << j;
  }
  mask[i * blocks + col_block] = bits;
}

// One block walks the boxes in score order, 64 at a time.
__global__ void NmsReduceKernel(const uint64_t* __restrict__ mask, int64_t n, int64_t blocks,
                                uint64_t* __restrict__ removed, int64_t* __restrict__ keep,
                                int64_t* __restrict__ num_keep) {
  __shared__ uint64_t diagonal[kBlockBoxes];
  __shared__ uint64_t kept_bits;
  int64_t kept = 0;  // used by thread 0 only
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t start = block * kBlockBoxes;
    const int size = BlockSize(n, start);
    if (threadIdx.x < size) diagonal[threadIdx.x] = mask[(start + threadIdx.x) * blocks + block];
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t dead = removed[block];
      uint64_t alive = 0;
      for (int k = 0; k < size; ++k) {
        if ((dead >> k) & 1) continue;
        alive |= uint64_t{1} << k;
        keep[kept++] = start + k;
        dead |= diagonal[k];
      }
      kept_bits = alive;
    }
    __syncthreads();
    const uint64_t alive = kept_bits;
    for (int64_t word = block + 1 + threadIdx.x; word < blocks; word += blockDim.x) {
      uint64_t bits = 0;
      for (uint64_t rest = alive; rest != 0; rest &= rest - 1) {
        const int k = __ffsll(static_cast<long long>(rest)) - 1;
        bits |= mask[(start + k) * blocks + word];
      }
      removed[word] |= bits;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *num_keep = kept;
}

}  // namespace

int64_t NmsBlocks(int64_t n) { return (n + kBlockBoxes - 1) / kBlockBoxes; }

std::string LaunchNms(const NmsProblem& p, cudaStream_t stream) {
  if (p.n == 0) {
    cudaMemsetAsync(p.num_keep, 0, sizeof(int64_t), stream);
    return LastErrorMessage("iis::nms CUDA memset");
  }
  const int64_t blocks = NmsBlocks(p.n);
  if (blocks > kMaxGridDim) {
    return "iis::nms CUDA kernel: " + std::to_string(p.n) + " boxes need " +
           std::to_string(blocks) + " blocks of 64, more than the grid limit " +
           std::to_string(kMaxGridDim);
  }
  cudaMemsetAsync(p.removed, 0, blocks * sizeof(uint64_t), stream);
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(blocks));
  NmsMaskKernel<<<grid, kBlockBoxes, 0, stream>>>(p.sorted_boxes, p.n, blocks, p.iou_threshold,
                                                  p.mask);
  NmsReduceKernel<<<1, kReduceThreads, 0, stream>>>(p.mask, p.n, blocks, p.removed, p.keep,
                                                    p.num_keep);
  return LastErrorMessage("iis::nms CUDA kernel launch");
}

}  // namespace iis::ops::cuda
