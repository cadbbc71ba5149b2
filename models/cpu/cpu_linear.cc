#include "models/cpu/cpu_linear.h"

#include <ATen/ATen.h>

#if defined(IIS_WITH_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace iis::models::cpu {

class CpuLinear::Impl {
 public:
  virtual ~Impl() = default;
  virtual void Run(const at::Tensor& src, const at::Tensor& dst) const = 0;
};

namespace {

class AtenLinear final : public CpuLinear::Impl {
 public:
  AtenLinear(const at::Tensor& weight, const at::Tensor& bias, CpuLinear::Epilogue epilogue)
      : weight_t_(weight.to(at::kFloat).t().contiguous()),
        bias_(bias.to(at::kFloat).contiguous().clone()),
        epilogue_(epilogue) {}

  void Run(const at::Tensor& src, const at::Tensor& dst) const override {
    at::Tensor out = dst;
    if (epilogue_ == CpuLinear::Epilogue::kBiasAccumulate) {
      out.addmm_(src, weight_t_).add_(bias_);
      return;
    }
    at::addmm_out(out, bias_, src, weight_t_);
    if (epilogue_ == CpuLinear::Epilogue::kBiasGelu) out.copy_(at::gelu(out));
  }

 private:
  at::Tensor weight_t_;  // (K, N)
  at::Tensor bias_;
  CpuLinear::Epilogue epilogue_;
};

#if defined(IIS_WITH_ONEDNN)
dnnl::engine& CpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

class OneDnnLinear final : public CpuLinear::Impl {
 public:
  OneDnnLinear(const at::Tensor& weight, const at::Tensor& bias, CpuLinear::Epilogue epilogue)
      : k_(weight.size(1)), n_(weight.size(0)) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    auto& engine = CpuEngine();
    const dnnl::memory::dim rt = DNNL_RUNTIME_DIM_VAL;
    // Runtime M and row strides: one primitive serves every batch size and strided views.
    const dnnl::memory::desc src_md({rt, k_}, dt::f32, {rt, 1});
    const dnnl::memory::desc dst_md({rt, n_}, dt::f32, {rt, 1});
    const dnnl::memory::desc w_any({k_, n_}, dt::f32, tag::any);
    const dnnl::memory::desc b_md({1, n_}, dt::f32, tag::ab);
    dnnl::post_ops ops;
    if (epilogue == CpuLinear::Epilogue::kBiasGelu) {
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    }
    if (epilogue == CpuLinear::Epilogue::kBiasAccumulate) ops.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, b_md, dst_md), attr,
                                          engine);
    primitive_ = dnnl::matmul(pd);
    // W is (N, K) row-major, i.e. the K x N matrix in "ba" layout; reorder once.
    const at::Tensor w = weight.to(at::kFloat).contiguous();
    dnnl::memory w_plain({{k_, n_}, dt::f32, tag::ba}, engine, w.data_ptr<float>());
    weights_ = dnnl::memory(pd.weights_desc(), engine);
    dnnl::stream stream(engine);
    dnnl::reorder(w_plain, weights_).execute(stream, w_plain, weights_);
    stream.wait();
    bias_storage_ = bias.to(at::kFloat).contiguous().clone();
    bias_ = dnnl::memory(b_md, engine, bias_storage_.data_ptr<float>());
  }

  void Run(const at::Tensor& src, const at::Tensor& dst) const override {
    using dt = dnnl::memory::data_type;
    auto& engine = CpuEngine();
    const dnnl::memory s({{src.size(0), k_}, dt::f32, {src.stride(0), 1}}, engine, src.data_ptr());
    const dnnl::memory d({{dst.size(0), n_}, dt::f32, {dst.stride(0), 1}}, engine, dst.data_ptr());
    dnnl::stream stream(engine);
    primitive_.execute(stream, {{DNNL_ARG_SRC, s},
                                {DNNL_ARG_WEIGHTS, weights_},
                                {DNNL_ARG_BIAS, bias_},
                                {DNNL_ARG_DST, d}});
    stream.wait();
  }

 private:
  int64_t k_, n_;
  dnnl::matmul primitive_;
  dnnl::memory weights_;
  dnnl::memory bias_;
  at::Tensor bias_storage_;
};
#endif

}  // namespace

CpuLinear::CpuLinear(const at::Tensor& weight, const at::Tensor& bias, Epilogue epilogue,
                     Backend backend)
    : k_(weight.dim() == 2 ? weight.size(1) : 0), n_(weight.dim() == 2 ? weight.size(0) : 0) {
  TORCH_CHECK(weight.dim() == 2 && bias.dim() == 1 && bias.size(0) == n_,
              "CpuLinear: weight must be (N, K) and bias (N), got ", weight.sizes(), " and ",
              bias.sizes());
  TORCH_CHECK(backend != Backend::kOneDnn || HasOneDnn(),
              "CpuLinear: the oneDNN backend is not compiled into this build");
  if (backend == Backend::kAten || !HasOneDnn()) {
    impl_ = std::make_unique<AtenLinear>(weight, bias, epilogue);
    return;
  }
#if defined(IIS_WITH_ONEDNN)
  impl_ = std::make_unique<OneDnnLinear>(weight, bias, epilogue);
#endif
}

void CpuLinear::Run(const at::Tensor& src, const at::Tensor& dst) const {
  TORCH_CHECK(src.dim() == 2 && src.size(1) == k_ && src.stride(1) == 1 &&
                  src.scalar_type() == at::kFloat && src.device().is_cpu(),
              "CpuLinear: src must be a CPU fp32 (M, ", k_,
              ") matrix with unit column stride, got ", src.sizes(), " ", src.scalar_type());
  TORCH_CHECK(dst.dim() == 2 && dst.size(0) == src.size(0) && dst.size(1) == n_ &&
                  dst.stride(1) == 1 && dst.scalar_type() == at::kFloat,
              "CpuLinear: dst must be an fp32 (", src.size(0), ", ", n_,
              ") matrix with unit column stride, got ", dst.sizes());
  if (src.size(0) == 0) return;
  impl_->Run(src, dst);
}

bool CpuLinear::HasOneDnn() {
#if defined(IIS_WITH_ONEDNN)
  return true;
#else
  return false;
#endif
}

CpuLinear::~CpuLinear() = default;
CpuLinear::CpuLinear(CpuLinear&&) noexcept = default;
CpuLinear& CpuLinear::operator=(CpuLinear&&) noexcept = default;

}  // namespace iis::models::cpu
