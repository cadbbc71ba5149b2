// DCNv3 forward on the CPU, compiled once per ISA (see ops/cpu/dcnv3_kernel.h).
//
// The vector code uses GCC/Clang vector extensions: one source that the compiler lowers to
// AVX-512 (16 lanes), AVX2 (8 lanes) or SSE2 (4 lanes) depending on the flags of the variant, so
// the coordinate math is vectorised whatever the auto-vectoriser decides.
#include "ops/cpu/dcnv3_kernel.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#ifndef IIS_ISA_NAMESPACE
#error "ops/cpu/dcnv3_kernel.cc must be compiled through iis_multiarch_sources"
#endif

// Helpers pass vectors wider than the variant's registers (e.g. 16 int64 lanes) by value; GCC
// warns that such arguments had a different ABI in GCC 4.6. They are internal and inlined, so no
// ABI boundary is crossed.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace iis::ops::cpu::IIS_ISA_NAMESPACE {
namespace {

static_assert(sizeof(const float*) == sizeof(int64_t), "corner addresses are stored as int64");

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX2__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif

// GCC vector types keep GCC's documented typedef spelling: clang-tidy's modernize-use-using
// rewrite of them moves the attribute and, in Chunk, multiplies the size by sizeof(float) again.
// NOLINTBEGIN(modernize-use-using)

// Lanes for the coordinate math: one value per sampling point.
typedef float VecF __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t VecI __attribute__((vector_size(kLanes * sizeof(int32_t))));
typedef int64_t VecQ __attribute__((vector_size(kLanes * sizeof(int64_t))));

// A chunk of `kWidth` channels accumulated in registers (plain float for one channel).
template <int kWidth>
struct Chunk {
  typedef float Type __attribute__((vector_size(kWidth * sizeof(float))));
};
// NOLINTEND(modernize-use-using)
template <>
struct Chunk<1> {
  using Type = float;
};

template <typename V, typename T>
inline V Load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void Store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

template <typename To, typename From>
inline To BitCast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "BitCast needs equal sizes");
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

template <typename V, typename S>
inline V Splat(S s) {
  return V{} + s;
}

// Lanes of `a` where `keep` is all ones, +0.0f elsewhere.
inline VecF KeepOrZero(VecI keep, VecF a) { return BitCast<VecF>(BitCast<VecI>(a) & keep); }

inline VecF Select(VecI take_a, VecF a, VecF b) {
  return BitCast<VecF>((BitCast<VecI>(a) & take_a) | (BitCast<VecI>(b) & ~take_a));
}

// floor(x) as int32 for |x| < 2^31: truncate, then step down where truncation rounded up.
inline VecI FloorToInt(VecF x) {
  const VecI truncated = __builtin_convertvector(x, VecI);
  return truncated + (__builtin_convertvector(truncated, VecF) > x);  // true is -1
}

// exp(x) for x clamped to [-87, 88]: x = n*ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
// a degree-7 Taylor polynomial for exp(r) (truncation error < 1e-8 relative), times 2^n built in
// the exponent bits.
inline VecF Exp(VecF x) {
  x = Select(x < -87.0f, Splat<VecF>(-87.0f), x);
  x = Select(x > 88.0f, Splat<VecF>(88.0f), x);
  // Adding 1.5 * 2^23 rounds x*log2(e) to an integer held in the low mantissa bits.
  constexpr float kRoundingShift = 12582912.0f;
  constexpr int32_t kRoundingShiftBits = 0x4B400000;
  const VecF shifted = x * 1.44269504088896341f + kRoundingShift;
  const VecF n = shifted - kRoundingShift;
  const VecI n_int = BitCast<VecI>(shifted) - kRoundingShiftBits;
  VecF r = x - n * 0.693359375f;  // ln2 high part: 9 significant bits, so n * it is exact.
  r = r - n * -2.12194440e-4f;    // ln2 low part.
  VecF p = Splat<VecF>(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const VecF two_to_n = BitCast<VecF>((n_int + 127) << 23);
  return p * two_to_n;
}

// The zero-bordered copy of value the gathers read (Dcnv3Problem::padded_value): per image
// H+3 rows of W+2 pixels, image pixel (y, x) at padded (y+1, x+1); row 0, rows H+1 and H+2 and
// columns 0 and W+1 are zero.
struct PaddedLayout {
  explicit PaddedLayout(const Dcnv3Problem& problem)
      : channels(problem.geometry.channels),
        rows(problem.geometry.height_in + 3),
        pixels_per_row(problem.geometry.width_in + 2),
        pixel_bytes(channels * static_cast<int64_t>(sizeof(float))),
        row_bytes(pixels_per_row * pixel_bytes),
        image_elements(rows * pixels_per_row * channels) {}
  int64_t channels;
  int64_t rows;
  int64_t pixels_per_row;
  int64_t pixel_bytes;
  int64_t row_bytes;
  int64_t image_elements;
};

// Points handled per block (a run of consecutive output pixels of one row): enough to amortise
// the per-block setup, few enough that the block's scratch (~48 bytes per point) stays in L1.
constexpr int64_t kBlockPoints = 256;

// The scratch of one block of output pixels and the tables it is computed from. Point
// t = p * group_points + g * points + k is point k of group g of the block's pixel p. Arrays are
// padded to whole vectors; padding lanes are computed but never read back.
class Workspace {
 public:
  explicit Workspace(const Dcnv3Problem& problem)
      : points_(static_cast<int>(problem.params.Points())),
        group_points_(problem.params.group * points_),
        block_pixels_(std::max<int64_t>(
            1, std::min<int64_t>(problem.geometry.width_out, kBlockPoints / group_points_))),
        capacity_((block_pixels_ * group_points_ + kLanes - 1) / kLanes * kLanes),
        pixel_x_(capacity_, 0.0f),
        grid_x_(capacity_, 0.0f),
        grid_y_(capacity_, 0.0f),
        group_bytes_(capacity_, 0),
        dx_(capacity_, 0.0f),
        dy_(capacity_, 0.0f),
        mask_(capacity_, 0.0f),
        weights_(4 * capacity_, 0.0f),
        corners_(capacity_, 0),
        inverse_sums_(block_pixels_ * problem.params.group, 1.0f) {
    const Dcnv3Params& params = problem.params;
    const int64_t half_w = (params.dilation_w * (params.kernel_w - 1)) >> 1;
    const int64_t half_h = (params.dilation_h * (params.kernel_h - 1)) >> 1;
    int64_t t = 0;
    for (int64_t p = 0; p < block_pixels_; ++p) {
      for (int64_t g = 0; g < params.group; ++g) {
        // Points run x-outer: k = i * kernel_h + j, the window centre skipped with remove_center.
        for (int64_t i = 0; i < params.kernel_w; ++i) {
          for (int64_t j = 0; j < params.kernel_h; ++j) {
            if (params.remove_center && i == params.kernel_w / 2 && j == params.kernel_h / 2) {
              continue;
            }
            pixel_x_[t] = static_cast<float>(p * params.stride_w);
            grid_x_[t] = static_cast<float>(i * params.dilation_w - half_w);
            grid_y_[t] = static_cast<float>(j * params.dilation_h - half_h);
            group_bytes_[t] = g * params.group_channels * static_cast<int64_t>(sizeof(float));
            ++t;
          }
        }
      }
    }
  }

  int points() const { return points_; }
  int64_t group_points() const { return group_points_; }
  int64_t block_pixels() const { return block_pixels_; }
  const float* pixel_x() const { return pixel_x_.data(); }
  const float* grid_x() const { return grid_x_.data(); }
  const float* grid_y() const { return grid_y_.data(); }
  const int64_t* group_bytes() const { return group_bytes_.data(); }
  float* dx() { return dx_.data(); }
  float* dy() { return dy_.data(); }
  float* mask() { return mask_.data(); }
  // Weight of corner c (0: (y0, x0), 1: (y0, x0+1), 2: (y0+1, x0), 3: (y0+1, x0+1)) of point t.
  float* weights(int c) { return weights_.data() + c * capacity_; }
  // Address of corner (y0, x0) of point t in the padded image; the others follow at fixed steps.
  int64_t* corners() { return corners_.data(); }
  float* inverse_sums() { return inverse_sums_.data(); }

 private:
  int points_;
  int64_t group_points_;
  int64_t block_pixels_;
  int64_t capacity_;
  std::vector<float> pixel_x_;         // p * stride_w of point t.
  std::vector<float> grid_x_;          // i * dilation_w - half_w of point t.
  std::vector<float> grid_y_;          // j * dilation_h - half_h of point t.
  std::vector<int64_t> group_bytes_;   // Byte offset of point t's group in a value pixel.
  std::vector<float> dx_, dy_, mask_;  // The block's inputs, deinterleaved.
  std::vector<float> weights_;         // 4 corner weights per point, mask folded in.
  std::vector<int64_t> corners_;       // Padded-image address of corner (y0, x0) per point.
  std::vector<float> inverse_sums_;    // 1 / softmax denominator per (pixel, group), else 1.
};

// Logits within (-kSafeLogit, kSafeLogit) need no max subtraction for kMaxPointsWithoutMax points.
constexpr float kSafeLogit = 80.0f;
constexpr int kMaxPointsWithoutMax = 1 << 10;

// Loads the offsets and mask of `pixels` consecutive output pixels starting at `first_pixel`;
// with logits, replaces them by exp(logit - group max) and records 1 / sum per (pixel, group)
// (applied after the accumulation). kPoints > 0 fixes the points per group at compile time.
template <int kPoints>
void LoadBlockInputs(const Dcnv3Problem& problem, int64_t first_pixel, int64_t pixels,
                     Workspace& ws) {
  const int64_t n = ws.group_points();
  for (int64_t p = 0; p < pixels; ++p) {
    const float* offset = problem.offset + (first_pixel + p) * problem.geometry.offset_pixel_stride;
    float* __restrict dx = ws.dx() + p * n;
    float* __restrict dy = ws.dy() + p * n;
    for (int64_t t = 0; t < n; ++t) {
      dx[t] = offset[2 * t];
      dy[t] = offset[2 * t + 1];
    }
    std::memcpy(ws.mask() + p * n,
                problem.mask + (first_pixel + p) * problem.geometry.mask_pixel_stride,
                n * sizeof(float));
  }
  if (!problem.params.mask_is_logits) return;
  const int points = kPoints > 0 ? kPoints : ws.points();
  const int64_t groups = pixels * problem.params.group;
  const int64_t count = pixels * n;
  float* m = ws.mask();
  // The softmax is shift-invariant: the group max is subtracted only to keep exp in range. With
  // every logit of the block in (-80, 80) exp neither overflows nor leaves the normal range (and
  // K * e^80 stays far below FLT_MAX), so the max pass is skipped. NaN and infinities take it.
  VecI in_range = Splat<VecI>(-1);
  VecI lane{};
  for (int i = 0; i < kLanes; ++i) lane[i] = i;
  for (int64_t t = 0; t < count; t += kLanes) {
    const VecF l = Load<VecF>(m + t);
    const VecI past_end = (lane + static_cast<int32_t>(t)) >= static_cast<int32_t>(count);
    in_range &= ((l > -kSafeLogit) & (l < kSafeLogit)) | past_end;  // Stale padding lanes pass.
  }
  bool skip_max = points <= kMaxPointsWithoutMax;
  for (int i = 0; i < kLanes; ++i) skip_max = skip_max && in_range[i] != 0;
  if (!skip_max) {
    for (int64_t pg = 0; pg < groups; ++pg) {
      float* logits = m + pg * points;
      float max_logit = logits[0];
      for (int k = 1; k < points; ++k) max_logit = logits[k] > max_logit ? logits[k] : max_logit;
      for (int k = 0; k < points; ++k) logits[k] -= max_logit;
    }
  }
  for (int64_t t = 0; t < count; t += kLanes) Store(m + t, Exp(Load<VecF>(m + t)));
  float* inverse_sums = ws.inverse_sums();
  for (int64_t pg = 0; pg < groups; ++pg) {
    const float* e = m + pg * points;
    float sum = 0.0f;
    for (int k = 0; k < points; ++k) sum += e[k];
    inverse_sums[pg] = 1.0f / sum;
  }
}

// Computes the corner weights and the corner (y0, x0) address of the first `count` points of the
// block whose first pixel has window origin (output position times stride minus pad plus the
// half window) (base_x, base_y). `padded` is the block's image in the padded layout (see
// PaddedLayout): every corner of a point inside the image is addressable there, the ones outside
// the image reading its zero border, and points outside the image get zero weights and corners
// in the two zero rows at the bottom, so no corner needs a mask or a bounds check.
void ComputeCorners(const Dcnv3Problem& problem, const float* padded, float base_x, float base_y,
                    int64_t count, Workspace& ws) {
  const PaddedLayout layout(problem);
  const float scale = static_cast<float>(problem.params.offset_scale);
  const float width = static_cast<float>(problem.geometry.width_in);
  const float height = static_cast<float>(problem.geometry.height_in);
  // Padded row of the (y0, x0) corner of points outside the image: rows H+1 and H+2 are zero.
  const int32_t outside_row = static_cast<int32_t>(problem.geometry.height_in + 1);
  const VecQ pixel_step = Splat<VecQ>(layout.pixel_bytes);
  const VecQ row_step = Splat<VecQ>(layout.row_bytes);
  const VecQ image_address = Splat<VecQ>(static_cast<int64_t>(reinterpret_cast<intptr_t>(padded)));
  const float* pixel_x = ws.pixel_x();
  const float* grid_x = ws.grid_x();
  const float* grid_y = ws.grid_y();
  const int64_t* group_bytes = ws.group_bytes();
  const float* dx = ws.dx();
  const float* dy = ws.dy();
  const float* mask = ws.mask();
  float* w00 = ws.weights(0);
  float* w01 = ws.weights(1);
  float* w10 = ws.weights(2);
  float* w11 = ws.weights(3);
  int64_t* corner = ws.corners();
  for (int64_t t = 0; t < count; t += kLanes) {
    const VecF px =
        (base_x + Load<VecF>(pixel_x + t)) + (Load<VecF>(grid_x + t) + Load<VecF>(dx + t)) * scale;
    const VecF py = base_y + (Load<VecF>(grid_y + t) + Load<VecF>(dy + t)) * scale;
    // Strict -1 < p < size; NaN fails too. Outside points are moved to 0 before the float->int
    // conversion (so huge offsets cannot overflow it).
    const VecI inside = (px > -1.0f) & (px < width) & (py > -1.0f) & (py < height);
    const VecF sx = KeepOrZero(inside, px);
    const VecF sy = KeepOrZero(inside, py);
    const VecI x0 = FloorToInt(sx);
    const VecI y0 = FloorToInt(sy);
    const VecF lx = sx - __builtin_convertvector(x0, VecF);
    const VecF ly = sy - __builtin_convertvector(y0, VecF);
    const VecF m = KeepOrZero(inside, Load<VecF>(mask + t));
    const VecF top = m * (1.0f - ly);
    const VecF bottom = m * ly;
    Store(w00 + t, top * (1.0f - lx));
    Store(w01 + t, top * lx);
    Store(w10 + t, bottom * (1.0f - lx));
    Store(w11 + t, bottom * lx);
    // Padded coordinates are one more than image coordinates; outside points (x0 = 0) go to the
    // zero rows at the bottom.
    const VecI padded_x = x0 + 1;
    const VecI padded_y = ((y0 + 1) & inside) | (outside_row & ~inside);
    Store(corner + t, __builtin_convertvector(padded_y, VecQ) * row_step +
                          __builtin_convertvector(padded_x, VecQ) * pixel_step +
                          Load<VecQ>(group_bytes + t) + image_address);
  }
}

inline const float* Address(int64_t bits) {
  return reinterpret_cast<const float*>(static_cast<intptr_t>(bits));
}

// The block's corner weights (corner c of point t at w[c][t]) and corner (y0, x0) addresses
// (corner[t]), with the steps to the (y0, x0+1) and (y0+1, x0) corners.
struct Corners {
  const float* w[4];
  const int64_t* corner;
  int64_t pixel_bytes;
  int64_t row_bytes;
};

// out[d0, d0 + kWidth) = scale * sum over the points [first, first + count) and their corners of
// weight * corner[d0, d0 + kWidth). kPoints > 0 fixes count at compile time (unrolled loop).
template <int kWidth, int kPoints>
inline void GatherChunk(const Corners& cs, int64_t first, int count, float scale, int64_t d0,
                        float* out) {
  using V = typename Chunk<kWidth>::Type;
  if constexpr (kPoints > 0) count = kPoints;
  V acc0{}, acc1{}, acc2{}, acc3{};  // One chain per corner hides the FMA latency.
#pragma GCC unroll 9
  for (int64_t t = first; t < first + count; ++t) {
    const char* c00 = reinterpret_cast<const char*>(Address(cs.corner[t]) + d0);
    const char* c10 = c00 + cs.row_bytes;
    acc0 += cs.w[0][t] * Load<V>(reinterpret_cast<const float*>(c00));
    acc1 += cs.w[1][t] * Load<V>(reinterpret_cast<const float*>(c00 + cs.pixel_bytes));
    acc2 += cs.w[2][t] * Load<V>(reinterpret_cast<const float*>(c10));
    acc3 += cs.w[3][t] * Load<V>(reinterpret_cast<const float*>(c10 + cs.pixel_bytes));
  }
  Store(out + d0, ((acc0 + acc1) + (acc2 + acc3)) * scale);
}

// Writes the `channels` outputs of one (pixel, group); kChannels > 0 fixes the count at compile
// time, 0 handles any count in chunks of 16, 8, 4 and 1.
template <int kChannels, int kPoints>
inline void GatherGroup(const Corners& cs, int64_t first, int count, float scale, int channels,
                        float* out) {
  if constexpr (kChannels > 0) {
    GatherChunk<kChannels, kPoints>(cs, first, count, scale, 0, out);
  } else {
    int64_t d = 0;
    for (; d + 16 <= channels; d += 16) GatherChunk<16, kPoints>(cs, first, count, scale, d, out);
    if (d + 8 <= channels) {
      GatherChunk<8, kPoints>(cs, first, count, scale, d, out);
      d += 8;
    }
    if (d + 4 <= channels) {
      GatherChunk<4, kPoints>(cs, first, count, scale, d, out);
      d += 4;
    }
    for (; d < channels; ++d) GatherChunk<1, kPoints>(cs, first, count, scale, d, out);
  }
}

// Reads the problem's fields where they are used: with them copied into locals first, GCC 12 kept
// the accumulators of the AVX2 16-channel gather on the stack (3% more instructions, callgrind).
template <int kChannels, int kPoints>
void ForwardRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end) {
  Workspace ws(problem);
  const PaddedLayout layout(problem);
  const int64_t channels = layout.channels;
  const int64_t half_w = (problem.params.dilation_w * (problem.params.kernel_w - 1)) >> 1;
  const int64_t half_h = (problem.params.dilation_h * (problem.params.kernel_h - 1)) >> 1;
  const int points = ws.points();
  const Corners cs = {{ws.weights(0), ws.weights(1), ws.weights(2), ws.weights(3)},
                      ws.corners(),
                      layout.pixel_bytes,
                      layout.row_bytes};
  const float* inverse_sums = ws.inverse_sums();
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / problem.geometry.height_out;
    const int64_t h = row % problem.geometry.height_out;
    const float* image = problem.padded_value + n * layout.image_elements;
    const float base_y =
        static_cast<float>(h * problem.params.stride_h - problem.params.pad_h + half_h);
    for (int64_t w0 = 0; w0 < problem.geometry.width_out; w0 += ws.block_pixels()) {
      const int64_t pixels = std::min(ws.block_pixels(), problem.geometry.width_out - w0);
      const int64_t first_pixel = row * problem.geometry.width_out + w0;
      const float base_x =
          static_cast<float>(w0 * problem.params.stride_w - problem.params.pad_w + half_w);
      LoadBlockInputs<kPoints>(problem, first_pixel, pixels, ws);
      ComputeCorners(problem, image, base_x, base_y, pixels * ws.group_points(), ws);
      // (pixel, group) pg of the block has points [pg * points, (pg + 1) * points) and writes
      // output channels [g * D, (g + 1) * D) of its pixel: consecutive pg, consecutive outputs.
      float* out = problem.output + first_pixel * channels;
      const int64_t groups = pixels * problem.params.group;
      for (int64_t pg = 0; pg < groups; ++pg) {
        GatherGroup<kChannels, kPoints>(cs, pg * points, points, inverse_sums[pg],
                                        problem.params.group_channels,
                                        out + pg * problem.params.group_channels);
      }
    }
  }
}

// Picks the compile-time point count: 9 (3x3) and 8 (3x3 without centre) are unrolled.
template <int kChannels>
void ForwardRowsForPoints(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end) {
  switch (problem.params.Points()) {
    case 9:
      ForwardRows<kChannels, 9>(problem, row_begin, row_end);
      return;
    case 8:
      ForwardRows<kChannels, 8>(problem, row_begin, row_end);
      return;
    default:
      ForwardRows<kChannels, 0>(problem, row_begin, row_end);
      return;
  }
}

}  // namespace

void Dcnv3PadRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end) {
  const PaddedLayout layout(problem);
  const int64_t row_elements = layout.pixels_per_row * layout.channels;
  const int64_t image_row_elements = problem.geometry.width_in * layout.channels;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / layout.rows;
    const int64_t y = r % layout.rows;
    float* dst = problem.padded_value + r * row_elements;
    if (y == 0 || y > problem.geometry.height_in) {
      std::memset(dst, 0, row_elements * sizeof(float));
      continue;
    }
    const float* src =
        problem.value + (n * problem.geometry.height_in + y - 1) * image_row_elements;
    std::memset(dst, 0, layout.pixel_bytes);
    std::memcpy(dst + layout.channels, src, image_row_elements * sizeof(float));
    std::memset(dst + layout.channels + image_row_elements, 0, layout.pixel_bytes);
  }
}

void Dcnv3ForwardRows(const Dcnv3Problem& problem, int64_t row_begin, int64_t row_end) {
  switch (problem.params.group_channels) {
    case 16:
      ForwardRowsForPoints<16>(problem, row_begin, row_end);
      return;
    case 32:
      ForwardRowsForPoints<32>(problem, row_begin, row_end);
      return;
    case 8:
      ForwardRowsForPoints<8>(problem, row_begin, row_end);
      return;
    default:
      ForwardRowsForPoints<0>(problem, row_begin, row_end);
      return;
  }
}

void Dcnv3Exp(const float* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) Store(out + i, Exp(Load<VecF>(in + i)));
  if (i < n) {
    float tail[kLanes] = {};
    std::memcpy(tail, in + i, (n - i) * sizeof(float));
    const VecF result = Exp(Load<VecF>(tail));
    std::memcpy(tail, &result, sizeof(tail));
    std::memcpy(out + i, tail, (n - i) * sizeof(float));
  }
}

}  // namespace iis::ops::cpu::IIS_ISA_NAMESPACE
