// CPU kernel of DCNv3 (the iis::dcnv3 / iis::dcnv3_softmax ops) on raw fp32 pointers.
//
// No LibTorch headers: cpu/dcnv3_kernel.cc is compiled once per ISA (iis_multiarch_sources) into
// the namespaces isa_avx512, isa_avx2 and isa_baseline declared below; cpu/dcnv3_cpu.cc checks
// the arguments, picks a variant with SelectDcnv3Kernel() and splits the rows over threads.
//
// Algorithm. First value is copied into a zero-bordered buffer (Dcnv3PadRows), so that every
// bilinear corner of a sampled point is addressable with the out-of-image ones reading zeros (as
// the semantics require, never the neighbouring pixels) and one address plus two fixed steps
// locates all four corners: no masks, clamps or bounds checks in the inner loops. Then, per block
// of consecutive output pixels of a row (~256 sampling points), every point of the block (all
// pixels and groups at once) gets its coordinates, validity, four bilinear weights (mask folded
// in) and corner address computed with SIMD over the points; then each (pixel, group)
// accumulates 4*K gathered vectors of its D contiguous channels (fast paths for D = 16, 32 and 8
// and for K = 9 and 8; chunks of 16/8/4/1 channels for any other D). With mask logits the softmax
// over the K points of each group is fused, with a SIMD exp.
#pragma once

#include <cstdint>

#include "ops/dcnv3_params.h"

namespace iis::ops::cpu {

// One DCNv3 forward problem (semantics: the comment of iis::ops::Dcnv3 in ops/dcnv3.h): the op's
// parameters and the sizes derived from its tensors (ops/dcnv3_params.h, with their
// preconditions) and the host pointers, which must cover the described memory.
struct Dcnv3Problem {
  Dcnv3Params params;
  Dcnv3Geometry geometry;
  const float* value = nullptr;  // (batch, height_in, width_in, group * group_channels), dense.
  // Pixel p = (n * height_out + h) * width_out + w has its group*points*2 offsets (dx, dy pairs,
  // channel (g * points + k) * 2 + {0, 1}) at offset + p * offset_pixel_stride, contiguous.
  const float* offset = nullptr;
  // Pixel p has its group*points mask weights (or logits) at mask + p * mask_pixel_stride.
  const float* mask = nullptr;
  float* output = nullptr;  // (batch, height_out, width_out, group * group_channels), dense.
  // Scratch of Dcnv3PaddedElements() floats: value with a zero border, written by pad_rows and read
  // by forward_rows (Dcnv3Kernel) (layout private to the kernel).
  float* padded_value = nullptr;
};

// Returns the rows of padded_value per image (pad_rows' range is batch times this).
inline int64_t Dcnv3PaddedRowsPerImage(const Dcnv3Problem& problem) {
  return problem.geometry.height_in + 3;
}

// Returns the size of Dcnv3Problem::padded_value in floats: (height_in + 3) * (width_in + 2) *
// channels per image.
inline int64_t Dcnv3PaddedElements(const Dcnv3Problem& problem) {
  return problem.geometry.batch * Dcnv3PaddedRowsPerImage(problem) *
         (problem.geometry.width_in + 2) * problem.geometry.channels;
}

// A function over a range of rows of `problem`; disjoint ranges may run concurrently.
using Dcnv3RowsFn = void (*)(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end);

// The two phases of one forward pass, each to be run over its whole row range (split over threads
// as wanted), padding before forward.
struct Dcnv3Kernel {
  // Fills rows [row_begin, row_end) of padded_value (batch * Dcnv3PaddedRowsPerImage() rows) from
  // value. Writes those rows only.
  Dcnv3RowsFn pad_rows;
  // Computes the output rows [row_begin, row_end), where row r is output row r % height_out of
  // image r / height_out, from padded_value, offset and mask. Writes every element of those rows
  // and nothing else. Allocates scratch for one block (about 60 bytes per point of
  // max(256, group * points) points) per call.
  Dcnv3RowsFn forward_rows;
};

// Returns the kernel variant for iis::ops::cpu::BestIsa() (defined in cpu/dcnv3_cpu.cc).
Dcnv3Kernel SelectDcnv3Kernel();

// Writes out[i] = exp(in[i]) for i < n with the SIMD exp of the fused softmax, variant chosen by
// BestIsa(). Inputs are clamped to [-87, 88] (results within [1.6e-38, 1.7e38]); accurate to about
// 1 ulp there; NaN gives NaN. Exposed so tests can measure its accuracy. Thread-safe.
void Dcnv3Exp(const float* in, float* out, int64_t n);

// The per-ISA variants; only those built into the binary are defined (IIS_HAVE_ISA_*).
namespace isa_avx512 {
void Dcnv3PadRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end);
void Dcnv3ForwardRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end);
void Dcnv3Exp(const float* in, float* out, int64_t n);
}  // namespace isa_avx512
namespace isa_avx2 {
void Dcnv3PadRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end);
void Dcnv3ForwardRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end);
void Dcnv3Exp(const float* in, float* out, int64_t n);
}  // namespace isa_avx2
namespace isa_baseline {
void Dcnv3PadRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end);
void Dcnv3ForwardRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end);
void Dcnv3Exp(const float* in, float* out, int64_t n);
}  // namespace isa_baseline

}  // namespace iis::ops::cpu
