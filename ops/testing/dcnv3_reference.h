// A slow, obviously-correct DCNv3 in double precision, written straight from the semantics in
// ops/dcnv3.h (docs/dcnv3.md of the shared reference material), for tests only.
#pragma once

#include <ATen/core/Tensor.h>

#include "ops/dcnv3.h"

namespace iis::ops::testing_support {

// Returns the DCNv3 output as a dense float64 (N, H_out, W_out, G*D) tensor on the CPU. Accepts any
// floating dtype, device and layout of value/offset/mask (they are copied to dense CPU float64
// first); with mask_is_logits applies the softmax over the K points of each group. Performs no
// argument checking beyond what indexing needs: pass arguments the ops accept. Thread-compatible.
at::Tensor Dcnv3Reference(const at::Tensor& value, const at::Tensor& offset,
                          const at::Tensor& mask, const Dcnv3Params& params, bool mask_is_logits);

}  // namespace iis::ops::testing_support
