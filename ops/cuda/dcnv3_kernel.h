// CUDA kernel of DCNv3 (the iis::dcnv3 / iis::dcnv3_softmax ops) on raw device pointers.
//
// No LibTorch headers: cuda/dcnv3_kernel.cu compiles wherever nvcc exists; cuda/dcnv3_cuda.cc
// (built only against a CUDA LibTorch) checks the arguments and calls LaunchDcnv3.
//
// Design (after DCNv4's forward): each thread owns one (output pixel, group) and a contiguous
// chunk of that group's channels, loaded with one vector load per bilinear corner (16 bytes when
// the channel count and pointers allow: 4 fp32 or 8 fp16/bf16 channels). It reads the group's K
// offset pairs and mask values itself (threads sharing a (pixel, group) sit in the same warp, so
// those reads are broadcasts), computes the softmax over K in registers when given logits, and
// accumulates in fp32. Indices are int64. The output is written exactly once per element.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "ops/dcnv3_params.h"

namespace iis::ops::cuda {

enum class Dcnv3Dtype { kFloat32, kFloat16, kBFloat16 };

// One DCNv3 forward problem on the device (semantics: the comment of iis::ops::Dcnv3 in
// ops/dcnv3.h): the op's parameters and the sizes derived from its tensors (ops/dcnv3_params.h,
// with their preconditions), dense value and output, offset/mask rows `*_pixel_stride` elements
// apart. All pointers are device pointers of `dtype`.
struct Dcnv3CudaProblem {
  Dcnv3Params params;
  Dcnv3Geometry geometry;
  Dcnv3Dtype dtype = Dcnv3Dtype::kFloat32;
  const void* value = nullptr;   // (batch, height_in, width_in, group * group_channels)
  const void* offset = nullptr;  // pixel p at offset + p * offset_pixel_stride: G*K (dx, dy)
  const void* mask = nullptr;    // pixel p at mask + p * mask_pixel_stride: G*K weights/logits
  void* output = nullptr;        // (batch, height_out, width_out, group * group_channels)
};

// Enqueues the kernel on `stream` (asynchronous). Returns an empty string on success, otherwise
// "<where>: <CUDA error>" for a launch failure. Thread-safe (no host state).
std::string LaunchDcnv3(const Dcnv3CudaProblem& problem, cudaStream_t stream);

// Returns the channels each thread handles (the vector width) LaunchDcnv3 would use: the widest
// of 16/8/4/2/1 bytes' worth that divides group_channels and keeps value/output aligned.
int Dcnv3ChannelsPerThread(const Dcnv3CudaProblem& problem);

}  // namespace iis::ops::cuda
