// Reads .safetensors files (https://github.com/huggingface/safetensors, format version 0.x).
#pragma once

#include <string>

#include "models/checkpoint/state_dict.h"

namespace iis::models::checkpoint {

// Reads every tensor of the .safetensors file at `path`: an 8-byte little-endian header length
// N, N bytes of JSON mapping names to {"dtype", "shape", "data_offsets"} (plus an optional
// "__metadata__", ignored), then the tensor bytes. Tensors come back in the order of their data
// in the file (empty tensors at one offset: by name), each read straight into its own CPU memory.
// Supported dtypes: F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL. Throws CheckpointError
// naming the file and the problem for a header over 100 MB or that is not strict JSON (RFC 8259,
// valid UTF-8, no repeated key in an object, containers nested at most 64 deep) or not this
// schema (sizes and offsets must be integers in [0, 2^63)), an unknown dtype, offsets outside the
// data or overlapping, a byte size that disagrees with dtype and shape, a bool byte other than 0
// or 1, or a read error. Thread-safe: calls share nothing.
StateDict ReadSafetensors(const std::string& path);

}  // namespace iis::models::checkpoint
