// CPU kernel of iis::roi_align (semantics in ops/roi_align.h).
//
// Work is split over RoIs (at::parallel_for). For each RoI the sample positions and bilinear
// weights are computed once per axis (they are separable: a sample's row depends only on (ph, iy),
// its column only on (pw, ix)). The pixels one band of bins (one ph) reads are then gathered into
// a small (rows, cols, C) tile, so that for every sample the four bilinear taps are contiguous runs
// of C floats: the channel loop is innermost and vectorised, and the tile stays in cache while all
// the bins of the band reuse it. Each tap is accumulated in the same order and with the same float
// operations as mmcv's (and torchvision's) CPU kernel, so results match them bit for bit.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/roi_align.h"

namespace iis::ops {
namespace {

// One sample position along an axis: the two pixel rows (or columns) it interpolates between and
// their weights. `low`/`high` are map coordinates when built, tile indices after Localize().
struct AxisSample {
  int64_t low;
  int64_t high;
  float frac;       // weight of `high`: position - low
  float one_minus;  // weight of `low`: 1 - frac
};

// The valid samples of one RoI along one axis, bin by bin (samples outside the map are dropped:
// they contribute 0).
struct AxisTable {
  std::vector<AxisSample> samples;
  std::vector<int64_t> bin_begin;  // samples of bin p are [bin_begin[p], bin_begin[p + 1])
};

// Scratch buffers of one worker, reused across its RoIs.
struct Scratch {
  AxisTable x;
  AxisTable y;
  std::vector<int64_t> cols;     // distinct map columns the RoI reads, ascending
  std::vector<int64_t> rows;     // distinct map rows the current band reads, ascending
  std::vector<AxisSample> band;  // the band's y samples with tile row indices
  std::vector<float> tile;       // (rows, cols, C) copy of the pixels the band reads
  std::vector<float> acc;        // C accumulators of one bin
};

// Fills `table` with the valid samples along an axis of `size` pixels, following mmcv's
// bilinear_interpolate / pre_calc rules literally (float arithmetic, same expression order).
void BuildAxis(const RoiAxis& axis, int64_t pooled, int64_t size, AxisTable* table) {
  table->samples.clear();
  table->bin_begin.resize(pooled + 1);
  const float grid = static_cast<float>(axis.grid);
  const float limit = static_cast<float>(size);
  for (int64_t p = 0; p < pooled; ++p) {
    table->bin_begin[p] = static_cast<int64_t>(table->samples.size());
    for (int64_t i = 0; i < axis.grid; ++i) {
      float v = axis.start + static_cast<float>(p) * axis.bin_size +
                (static_cast<float>(i) + 0.5f) * axis.bin_size / grid;
      if (v < -1.0f || v > limit) continue;
      if (v <= 0.0f) v = 0.0f;
      int64_t low = static_cast<int64_t>(v);
      int64_t high;
      if (low >= size - 1) {
        low = high = size - 1;
        v = static_cast<float>(low);
      } else {
        high = low + 1;
      }
      const float frac = v - static_cast<float>(low);
      table->samples.push_back({low, high, frac, 1.0f - frac});
    }
  }
  table->bin_begin[pooled] = static_cast<int64_t>(table->samples.size());
}

// Collects the distinct pixels of samples [first, last) into `pixels` (ascending) and rewrites
// each sample's low/high as an index into `pixels`, writing the result to `out`.
void Localize(const AxisSample* first, const AxisSample* last, std::vector<int64_t>* pixels,
              AxisSample* out) {
  pixels->clear();
  for (const AxisSample* s = first; s != last; ++s) {
    pixels->push_back(s->low);
    pixels->push_back(s->high);
  }
  std::sort(pixels->begin(), pixels->end());
  pixels->erase(std::unique(pixels->begin(), pixels->end()), pixels->end());
  const auto index = [pixels](int64_t pixel) {
    return static_cast<int64_t>(std::lower_bound(pixels->begin(), pixels->end(), pixel) -
                                pixels->begin());
  };
  for (const AxisSample* s = first; s != last; ++s, ++out) {
    *out = {index(s->low), index(s->high), s->frac, s->one_minus};
  }
}

// Copies pixel (rows[r], cols[ci]) of every channel of `image` (C planes of `plane` floats, rows
// of `width`) to tile[(r * cols.size() + ci) * channels + c]. A blocked transpose: for each pixel,
// a block of kChannelBlock channels is read from as many planes (each walked sequentially) and
// written as one contiguous run, so writes fill whole cache lines.
void GatherTile(const float* image, int64_t channels, int64_t plane, int64_t width,
                const std::vector<int64_t>& rows, const std::vector<int64_t>& cols, float* tile) {
  constexpr int64_t kChannelBlock = 16;
  const int64_t num_cols = static_cast<int64_t>(cols.size());
  const float* src[kChannelBlock];
  for (int64_t c0 = 0; c0 < channels; c0 += kChannelBlock) {
    const int64_t block = std::min(kChannelBlock, channels - c0);
    for (size_t r = 0; r < rows.size(); ++r) {
      for (int64_t j = 0; j < block; ++j) src[j] = image + (c0 + j) * plane + rows[r] * width;
      float* dst = tile + static_cast<int64_t>(r) * num_cols * channels + c0;
      for (int64_t ci = 0; ci < num_cols; ++ci, dst += channels) {
        const int64_t col = cols[ci];
        for (int64_t j = 0; j < block; ++j) dst[j] = src[j][col];
      }
    }
  }
}

// acc[c] += w1 * t1[c] + w2 * t2[c] + w3 * t3[c] + w4 * t4[c] for c in [0, n): one bilinear sample
// for every channel, in mmcv's summation order.
void AccumulateSample(float w1, const float* __restrict t1, float w2, const float* __restrict t2,
                      float w3, const float* __restrict t3, float w4, const float* __restrict t4,
                      float* __restrict acc, int64_t n) {
  for (int64_t c = 0; c < n; ++c) {
    acc[c] += w1 * t1[c] + w2 * t2[c] + w3 * t3[c] + w4 * t4[c];
  }
}

// Pools one RoI. `image` is the (C, H, W) map of the RoI's batch element, `out` its (C, PH, PW)
// output.
void RoiAlignOne(const float* image, int64_t channels, int64_t height, int64_t width,
                 const float* roi, float spatial_scale, int64_t pooled_height, int64_t pooled_width,
                 int64_t sampling_ratio, bool aligned, float* out, Scratch* s) {
  const int64_t bins = pooled_height * pooled_width;
  const RoiAxis ax =
      ComputeRoiAxis(roi[1], roi[3], spatial_scale, pooled_width, sampling_ratio, aligned);
  const RoiAxis ay =
      ComputeRoiAxis(roi[2], roi[4], spatial_scale, pooled_height, sampling_ratio, aligned);
  const float count = static_cast<float>(std::max<int64_t>(ax.grid * ay.grid, 1));
  BuildAxis(ax, pooled_width, width, &s->x);
  BuildAxis(ay, pooled_height, height, &s->y);
  if (s->x.samples.empty() || s->y.samples.empty()) {
    std::fill(out, out + channels * bins, 0.0f);
    return;
  }
  Localize(s->x.samples.data(), s->x.samples.data() + s->x.samples.size(), &s->cols,
           s->x.samples.data());
  const int64_t num_cols = static_cast<int64_t>(s->cols.size());
  const int64_t plane = height * width;
  s->acc.resize(channels);
  float* acc = s->acc.data();

  for (int64_t ph = 0; ph < pooled_height; ++ph) {
    const AxisSample* band_first = s->y.samples.data() + s->y.bin_begin[ph];
    const AxisSample* band_last = s->y.samples.data() + s->y.bin_begin[ph + 1];
    if (band_first == band_last) {
      for (int64_t c = 0; c < channels; ++c) {
        std::fill_n(out + c * bins + ph * pooled_width, pooled_width, 0.0f);
      }
      continue;
    }
    s->band.resize(band_last - band_first);
    Localize(band_first, band_last, &s->rows, s->band.data());
    const int64_t num_rows = static_cast<int64_t>(s->rows.size());

    s->tile.resize(num_rows * num_cols * channels);
    float* tile = s->tile.data();
    GatherTile(image, channels, plane, width, s->rows, s->cols, tile);

    for (int64_t pw = 0; pw < pooled_width; ++pw) {
      const AxisSample* xs_first = s->x.samples.data() + s->x.bin_begin[pw];
      const AxisSample* xs_last = s->x.samples.data() + s->x.bin_begin[pw + 1];
      std::fill(acc, acc + channels, 0.0f);
      for (const AxisSample& sy : s->band) {
        const float* row_low = tile + sy.low * num_cols * channels;
        const float* row_high = tile + sy.high * num_cols * channels;
        for (const AxisSample* sx = xs_first; sx != xs_last; ++sx) {
          AccumulateSample(sy.one_minus * sx->one_minus, row_low + sx->low * channels,
                           sy.one_minus * sx->frac, row_low + sx->high * channels,
                           sy.frac * sx->one_minus, row_high + sx->low * channels,
                           sy.frac * sx->frac, row_high + sx->high * channels, acc, channels);
        }
      }
      float* dst = out + ph * pooled_width + pw;
      for (int64_t c = 0; c < channels; ++c) dst[c * bins] = acc[c] / count;
    }
  }
}

at::Tensor RoiAlignCpu(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                       int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                       bool aligned) {
  CheckRoiAlignArguments(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio);
  TORCH_CHECK(input.device().is_cpu(),
              "iis::roi_align (CPU kernel): input must be on the CPU, got ", input.device());
  TORCH_CHECK(input.scalar_type() == at::kFloat,
              "iis::roi_align: on the CPU input must be float32, got ", input.scalar_type());
  TORCH_CHECK(rois.scalar_type() == at::kFloat,
              "iis::roi_align: on the CPU rois must be float32, got ", rois.scalar_type());
  const at::Tensor in = input.contiguous();
  const at::Tensor boxes = rois.contiguous();
  const int64_t batch = in.size(0);
  const int64_t channels = in.size(1);
  const int64_t height = in.size(2);
  const int64_t width = in.size(3);
  CheckRoiValues(boxes, batch, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);

  const int64_t num_rois = boxes.size(0);
  at::Tensor output = at::empty({num_rois, channels, pooled_height, pooled_width}, in.options());
  if (output.numel() == 0) return output;

  const float* in_data = in.data_ptr<float>();
  const float* roi_data = boxes.data_ptr<float>();
  float* out_data = output.data_ptr<float>();
  const float scale = static_cast<float>(spatial_scale);
  const int64_t out_stride = channels * pooled_height * pooled_width;
  // A RoI costs tens of microseconds: with fewer than kMinRoisPerThread per thread an OpenMP team
  // costs more than it saves on a busy machine.
  constexpr int64_t kMinRoisPerThread = 16;
  at::parallel_for(0, num_rois, kMinRoisPerThread, [&](int64_t begin, int64_t end) {
    Scratch scratch;
    for (int64_t k = begin; k < end; ++k) {
      const float* roi = roi_data + k * 5;
      const int64_t b = static_cast<int64_t>(roi[0]);
      RoiAlignOne(in_data + b * channels * height * width, channels, height, width, roi, scale,
                  pooled_height, pooled_width, sampling_ratio, aligned, out_data + k * out_stride,
                  &scratch);
    }
  });
  return output;
}

}  // namespace

TORCH_LIBRARY_IMPL(iis, CPU, m) { m.impl("roi_align", &RoiAlignCpu); }

}  // namespace iis::ops
