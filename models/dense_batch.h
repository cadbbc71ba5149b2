// Pieces shared by the dense-prediction models (Mask R-CNN in models/detection/, UperNet in
// models/segmentation/): the per-image geometry of a padded batch (mmdetection/mmsegmentation
// `img_metas`), the official collate, and mmcv's ConvModule with its checkpoint names.
//
// Thread-safety: the free functions are thread-safe; modules are not safe to mutate concurrently;
// FoldedConv::Run is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "models/layers.h"
#include "models/normalized_image.h"

namespace iis::models {

// Where one image sits in a padded batch, and how it maps back to the original picture.
struct DenseImageMeta {
  // img_shape: the network input of this image before batch padding (the resized image). The
  // image occupies rows [0, height) and columns [0, width) of its batch entry.
  int64_t height = 0;
  int64_t width = 0;
  // ori_shape: the decoded picture the results are mapped back to.
  int64_t original_height = 0;
  int64_t original_width = 0;
  // scale_factor: float32(resized / original) per axis, as the official Resize stores it.
  float scale_x = 1.0f;
  float scale_y = 1.0f;
};

// Host wall-clock seconds spent in each part of one forward pass, for benchmarks and metrics. On
// CUDA the parts are only separated where the code synchronises (reading results back).
struct DenseStageTimes {
  double backbone_seconds = 0;
  double neck_seconds = 0;   // FPN (Mask R-CNN); 0 for UperNet, whose head has no neck
  double heads_seconds = 0;  // RPN + RoI heads with their post-processing; the UperNet decode head
  double postprocess_seconds = 0;  // UperNet: resizes to the original size and argmax
};

// Returns the meta of a preprocessed image (its network size, original size and scale factors).
DenseImageMeta MetaOf(const NormalizedImage& image);

// Returns `image` as a (3, height, width) float32 CPU tensor viewing its data (no copy: `image`
// must outlive the tensor and stay unchanged).
at::Tensor ImageTensor(const NormalizedImage& image);

// Returns a meta for an already resized input of height x width (scale factor 1, original size =
// input size): how internimage-predict --input treats its arrays.
DenseImageMeta IdentityMeta(int64_t height, int64_t width);

// Returns `value` rounded up to a multiple of `divisor` (> 0).
int64_t RoundUp(int64_t value, int64_t divisor);

// Stacks images into one batch as the official collate does: every image (3, h, w) float32 (all on
// one device) is placed at the top-left of a zero-filled (N, 3, H, W) tensor, H and W being the
// largest h and w rounded up to a multiple of `size_divisor`. Throws c10::Error naming the image
// when the list is empty, an image is not a non-empty (3, h, w) float tensor, devices or dtypes
// differ, or size_divisor < 1.
at::Tensor CollateImages(const std::vector<at::Tensor>& images, int64_t size_divisor);

// Checks that `metas` describe `batch` (N, 3, H, W): one meta per image, 1 <= height <= H,
// 1 <= width <= W, positive original sizes and finite positive scale factors. Throws c10::Error
// whose message starts with `who` and names the image and field.
void CheckDenseMetas(const at::Tensor& batch, const std::vector<DenseImageMeta>& metas,
                     const char* who);

// nn.ConvTranspose2d(kernel_size=2, stride=2) with `weight` (C_in, C_out, 2, 2) and `bias` (C_out)
// on x (N, C_in, H, W), giving (N, C_out, 2H, 2W). The four output taps of an input pixel do not
// overlap, so on the CPU this is one GEMM, (N*H*W, C_in) x (C_in, C_out*4), and a pixel shuffle
// (LibTorch 1.13 runs such a deconvolution through its slow unfolding path); on other devices it
// is at::conv_transpose2d. Thread-safe.
at::Tensor ConvTranspose2x2(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// mmcv's ConvModule as the official necks and heads configure it: `conv` (Conv2d, stride 1) then,
// when `with_bn`, `bn` (BatchNorm2d eps 1e-5 in eval mode; the conv then has no bias, as mmcv
// builds it), then ReLU when `relu`. Checkpoint keys: conv.weight, [conv.bias], [bn.weight,
// bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked].
class ConvModule : public torch::nn::Module {
 public:
  ConvModule(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t padding,
             bool with_bn, bool relu);

  // Returns (weight, bias) of the single convolution equal to conv followed by the eval-mode BN
  // (weight scaled per output channel, bias = shift + conv bias * scale), in fp32 on the weights'
  // device; without BN, the conv's own weight and bias (a zero bias when it has none).
  std::pair<at::Tensor, at::Tensor> FoldedWeights() const;

  bool relu() const { return relu_; }
  int64_t padding() const { return conv->padding; }

  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;  // null without BN

 private:
  bool relu_;
};

// A ConvModule reduced to one convolution (BN folded) for inference, with its weights in the run
// dtype and, on the CPU, in channels-last memory format so oneDNN avoids layout reorders of the
// activations. Immutable; Run is thread-safe.
class FoldedConv {
 public:
  FoldedConv() = default;
  // Folds `module` and converts the weights to `dtype` on `device`.
  FoldedConv(const ConvModule& module, at::Device device, at::ScalarType dtype);
  // Builds from a plain convolution (stride 1) followed by ReLU when `relu`.
  FoldedConv(const Conv2d& conv, bool relu, at::Device device, at::ScalarType dtype);

  // x: (N, C_in, H, W) in the run dtype on the run device. Returns (N, C_out, H, W) in the
  // memory format of `x` (channels-last stays channels-last).
  at::Tensor Run(const at::Tensor& x) const;

 private:
  at::Tensor weight_;
  at::Tensor bias_;
  int64_t padding_ = 0;
  bool relu_ = false;
};

}  // namespace iis::models
