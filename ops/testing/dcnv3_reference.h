// A slow, obviously-correct DCNv3 in double precision, written straight from the semantics in
// ops/dcnv3.h (specified in docs/dcnv3.md), for tests only.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "ops/dcnv3.h"

namespace iis::ops::testing_support {

// Returns the DCNv3 output as a dense float64 (N, H_out, W_out, G*D) tensor on the CPU. Accepts any
// floating dtype, device and layout of value/offset/mask (they are copied to dense CPU float64
// first); with params.mask_is_logits applies the softmax over the K points of each group.
// Performs no argument checking beyond what indexing needs: pass arguments the ops accept.
// Thread-compatible.
at::Tensor Dcnv3Reference(const at::Tensor& value, const at::Tensor& offset, const at::Tensor& mask,
                          const Dcnv3Params& params);

// One geometry the tests run: input size, op parameters and how far offsets reach (pixels).
struct Dcnv3TestCase {
  std::string name;
  int64_t n, h, w;
  Dcnv3Params params;
  double offset_range;
};

// Returns Dcnv3Params in the order the test tables write them.
inline Dcnv3Params Geometry(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                            int64_t dh, int64_t dw, int64_t group, int64_t depth,
                            double scale = 1.0, bool remove_center = false) {
  return Dcnv3Params{kh, kw, sh, sw, ph, pw, dh, dw, group, depth, scale, remove_center};
}

// Returns `params` with mask_is_logits = `logits` (the iis::dcnv3_softmax form when true).
inline Dcnv3Params WithLogits(Dcnv3Params params, bool logits) {
  params.mask_is_logits = logits;
  return params;
}

}  // namespace iis::ops::testing_support
