// Start-up check that every custom op of libiis_ops is registered.
//
// Static op registration (TORCH_LIBRARY_*) is silently dropped when the object holding it is never
// linked (pytorch/vision#3593). libiis_ops is a shared library for that reason, and binaries call
// CheckOpsRegistered() at start-up so a packaging mistake fails loudly instead of at first use.
#pragma once

#include <string>
#include <vector>

namespace iis::ops {

// Returns the qualified names ("iis::dcnv3", ...) of every op this project defines.
const std::vector<std::string>& ProjectOpNames();

// Throws c10::Error naming the first op whose schema is missing, or whose CPU kernel is missing.
// Thread-safe.
void CheckOpsRegistered();

// Returns true when `op` (a qualified name) has a kernel for the CUDA dispatch key.
bool HasCudaKernel(const std::string& op);

}  // namespace iis::ops
