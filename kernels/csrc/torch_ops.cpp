// PyTorch registration of the quantviz operators: schemas, CPU kernels (thin wrappers over core/), and
// out variants. Fake (Meta) kernels for tracing live in Python (quantviz_kernels/fakes.py) so that they
// work with symbolic shapes. Compiled with torch's headers only; never include ExecuTorch headers here.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "core/elementwise.h"
#include "core/matmul.h"
#include "core/pool.h"

namespace {

using quantviz::make_qparams;
using quantviz::QParams;

#define QV_Q(p) double p##_scale, int64_t p##_zero_point, int64_t p##_quant_min, int64_t p##_quant_max
#define QV_QP(p) make_qparams(p##_scale, p##_zero_point, p##_quant_min, p##_quant_max)
#define QV_QA(p) p##_scale, p##_zero_point, p##_quant_min, p##_quant_max

template <typename F>
void dispatch_qtype(const at::Tensor& t, const char* op, F&& f) {
  switch (t.scalar_type()) {
    case at::kChar: f(int8_t{}); break;
    case at::kByte: f(uint8_t{}); break;
    default: TORCH_CHECK(false, "quantviz::", op, ": expects an int8 or uint8 input, got ", t.scalar_type());
  }
}

void check_out(const at::Tensor& out, const at::Tensor& like, const char* op) {
  TORCH_CHECK(out.scalar_type() == like.scalar_type(), "quantviz::", op, ": out has dtype ", out.scalar_type(),
              ", expected ", like.scalar_type());
}

quantviz::WeightQParams weight_qparams(const at::Tensor& scales, const at::Tensor& zero_points, int64_t channels,
                                       const char* op) {
  TORCH_CHECK(scales.scalar_type() == at::kFloat, "quantviz::", op, ": weight_scales must be float32");
  TORCH_CHECK(zero_points.scalar_type() == at::kLong, "quantviz::", op, ": weight_zero_points must be int64");
  TORCH_CHECK(scales.numel() == zero_points.numel() && (scales.numel() == 1 || scales.numel() == channels),
              "quantviz::", op, ": expects 1 or ", channels, " weight scales, got ", scales.numel());
  return {scales.const_data_ptr<float>(), zero_points.const_data_ptr<int64_t>(), scales.numel()};
}

// ---- add, add_relu, mul ----------------------------------------------------------------------------------
at::Tensor& binary_out(quantviz::BinaryOp op, const char* name, const at::Tensor& a, QParams qa,
                       const at::Tensor& b, QParams qb, QParams qo, at::Tensor& out) {
  TORCH_CHECK(a.sizes() == b.sizes(), "quantviz::", name, ": inputs must have one shape (no broadcasting), got ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "quantviz::", name, ": inputs must have one dtype");
  check_out(out, a, name);
  const at::Tensor ac = a.contiguous(), bc = b.contiguous();
  out.resize_(a.sizes());
  dispatch_qtype(a, name, [&](auto tag) {
    using T = decltype(tag);
    quantviz::binary<T>(op, ac.const_data_ptr<T>(), qa, bc.const_data_ptr<T>(), qb, out.mutable_data_ptr<T>(), qo,
                        a.numel());
  });
  return out;
}

#define QV_BINARY(NAME, OP)                                                                                  \
  at::Tensor& NAME##_out(const at::Tensor& a, QV_Q(a), const at::Tensor& b, QV_Q(b), QV_Q(out),             \
                         at::Tensor& out) {                                                                  \
    return binary_out(OP, #NAME, a, QV_QP(a), b, QV_QP(b), QV_QP(out), out);                                \
  }                                                                                                          \
  at::Tensor NAME(const at::Tensor& a, QV_Q(a), const at::Tensor& b, QV_Q(b), QV_Q(out)) {                  \
    at::Tensor out = at::empty(a.sizes(), a.options());                                                      \
    return NAME##_out(a, QV_QA(a), b, QV_QA(b), QV_QA(out), out);                                            \
  }
QV_BINARY(add, quantviz::BinaryOp::kAdd)
QV_BINARY(add_relu, quantviz::BinaryOp::kAddRelu)
QV_BINARY(mul, quantviz::BinaryOp::kMul)

// ---- hardtanh --------------------------------------------------------------------------------------------
at::Tensor& hardtanh_out(const at::Tensor& input, QV_Q(input), double min_val, double max_val, QV_Q(out),
                         at::Tensor& out) {
  check_out(out, input, "hardtanh");
  const at::Tensor x = input.contiguous();
  out.resize_(input.sizes());
  dispatch_qtype(input, "hardtanh", [&](auto tag) {
    using T = decltype(tag);
    quantviz::hardtanh<T>(x.const_data_ptr<T>(), QV_QP(input), static_cast<float>(min_val),
                          static_cast<float>(max_val), out.mutable_data_ptr<T>(), QV_QP(out), x.numel());
  });
  return out;
}
at::Tensor hardtanh(const at::Tensor& input, QV_Q(input), double min_val, double max_val, QV_Q(out)) {
  at::Tensor out = at::empty(input.sizes(), input.options());
  return hardtanh_out(input, QV_QA(input), min_val, max_val, QV_QA(out), out);
}

// ---- linear ----------------------------------------------------------------------------------------------
at::Tensor& linear_out(const at::Tensor& input, QV_Q(input), const at::Tensor& weight, const at::Tensor& weight_scales,
                       const at::Tensor& weight_zero_points, const std::optional<at::Tensor>& bias, QV_Q(out),
                       at::Tensor& out) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kChar, "quantviz::linear: weight must be 2-D int8");
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == weight.size(1), "quantviz::linear: input's last dim ",
              input.size(-1), " does not match weight's ", weight.size(1));
  TORCH_CHECK(weight.size(1) <= quantviz::kMaxReduction, "quantviz::linear: in_features too large for int32");
  check_out(out, input, "linear");
  const int64_t k = weight.size(1), n = weight.size(0), m = input.numel() / k;
  const auto qw = weight_qparams(weight_scales, weight_zero_points, n, "linear");
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  std::optional<at::Tensor> b;
  if (bias.has_value()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->numel() == n, "quantviz::linear: bias must be float32[", n, "]");
    b = bias->contiguous();
  }
  std::vector<int64_t> sizes = input.sizes().vec();
  sizes.back() = n;
  out.resize_(sizes);
  dispatch_qtype(input, "linear", [&](auto tag) {
    using T = decltype(tag);
    quantviz::linear<T>(x.const_data_ptr<T>(), QV_QP(input), m, k, w.const_data_ptr<int8_t>(), qw, n,
                        b ? b->const_data_ptr<float>() : nullptr, out.mutable_data_ptr<T>(), QV_QP(out));
  });
  return out;
}
at::Tensor linear(const at::Tensor& input, QV_Q(input), const at::Tensor& weight, const at::Tensor& weight_scales,
                  const at::Tensor& weight_zero_points, const std::optional<at::Tensor>& bias, QV_Q(out)) {
  at::Tensor out = at::empty({0}, input.options());
  return linear_out(input, QV_QA(input), weight, weight_scales, weight_zero_points, bias, QV_QA(out), out);
}

// ---- conv2d ----------------------------------------------------------------------------------------------
int64_t at2(at::IntArrayRef v, int64_t i) { return v.size() == 1 ? v[0] : v[i]; }

at::Tensor& conv2d_out(const at::Tensor& input, QV_Q(input), const at::Tensor& weight, const at::Tensor& weight_scales,
                       const at::Tensor& weight_zero_points, const std::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                       QV_Q(out), at::Tensor& out) {
  TORCH_CHECK(input.dim() == 4, "quantviz::conv2d: input must be NCHW (4-D), got ", input.dim(), "-D");
  TORCH_CHECK(weight.dim() == 4 && weight.scalar_type() == at::kChar, "quantviz::conv2d: weight must be 4-D int8");
  TORCH_CHECK(groups >= 1 && input.size(1) % groups == 0 && weight.size(0) % groups == 0 &&
                  weight.size(1) * groups == input.size(1),
              "quantviz::conv2d: channels do not match groups");
  TORCH_CHECK(weight.size(1) * weight.size(2) * weight.size(3) <= quantviz::kMaxReduction,
              "quantviz::conv2d: reduction too large for int32");
  check_out(out, input, "conv2d");
  quantviz::Conv2dShape s{input.size(0), input.size(1), input.size(2), input.size(3), weight.size(0), weight.size(2),
                          weight.size(3), at2(stride, 0), at2(stride, 1), at2(padding, 0), at2(padding, 1),
                          at2(dilation, 0), at2(dilation, 1), groups, 0, 0};
  s.oh = quantviz::conv_out_size(s.h, s.kh, s.sh, s.ph, s.dh);
  s.ow = quantviz::conv_out_size(s.w, s.kw, s.sw, s.pw, s.dw);
  TORCH_CHECK(s.oh > 0 && s.ow > 0, "quantviz::conv2d: output would be empty");
  const auto qw = weight_qparams(weight_scales, weight_zero_points, s.cout, "conv2d");
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  std::optional<at::Tensor> b;
  if (bias.has_value()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->numel() == s.cout, "quantviz::conv2d: bias must be float32[",
                s.cout, "]");
    b = bias->contiguous();
  }
  out.resize_({s.n, s.cout, s.oh, s.ow});
  dispatch_qtype(input, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    quantviz::conv2d<T>(x.const_data_ptr<T>(), QV_QP(input), s, w.const_data_ptr<int8_t>(), qw,
                        b ? b->const_data_ptr<float>() : nullptr, out.mutable_data_ptr<T>(), QV_QP(out));
  });
  return out;
}
at::Tensor conv2d(const at::Tensor& input, QV_Q(input), const at::Tensor& weight, const at::Tensor& weight_scales,
                  const at::Tensor& weight_zero_points, const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                  at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, QV_Q(out)) {
  at::Tensor out = at::empty({0}, input.options());
  return conv2d_out(input, QV_QA(input), weight, weight_scales, weight_zero_points, bias, stride, padding, dilation,
                    groups, QV_QA(out), out);
}

// ---- pooling ---------------------------------------------------------------------------------------------
quantviz::Pool2dShape pool_shape(const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, const char* op) {
  TORCH_CHECK(input.dim() == 4, "quantviz::", op, ": input must be NCHW (4-D)");
  at::IntArrayRef st = stride.empty() ? kernel_size : stride;  // aten's default: stride = kernel_size
  quantviz::Pool2dShape s{input.size(0), input.size(1), input.size(2), input.size(3), at2(kernel_size, 0),
                          at2(kernel_size, 1), at2(st, 0), at2(st, 1), at2(padding, 0), at2(padding, 1),
                          dilation.empty() ? 1 : at2(dilation, 0), dilation.empty() ? 1 : at2(dilation, 1), 0, 0};
  s.oh = quantviz::pool_out_size(s.h, s.kh, s.sh, s.ph, s.dh);
  s.ow = quantviz::pool_out_size(s.w, s.kw, s.sw, s.pw, s.dw);
  TORCH_CHECK(s.oh > 0 && s.ow > 0, "quantviz::", op, ": output would be empty");
  return s;
}

at::Tensor& max_pool2d_out(const at::Tensor& input, QV_Q(input), at::IntArrayRef kernel_size, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation, QV_Q(out), at::Tensor& out) {
  check_out(out, input, "max_pool2d");
  const auto s = pool_shape(input, kernel_size, stride, padding, dilation, "max_pool2d");
  const at::Tensor x = input.contiguous();
  out.resize_({s.n, s.c, s.oh, s.ow});
  dispatch_qtype(input, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    quantviz::max_pool2d<T>(x.const_data_ptr<T>(), QV_QP(input), s, out.mutable_data_ptr<T>(), QV_QP(out));
  });
  return out;
}
at::Tensor max_pool2d(const at::Tensor& input, QV_Q(input), at::IntArrayRef kernel_size, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation, QV_Q(out)) {
  at::Tensor out = at::empty({0}, input.options());
  return max_pool2d_out(input, QV_QA(input), kernel_size, stride, padding, dilation, QV_QA(out), out);
}

at::Tensor& avg_pool2d_out(const at::Tensor& input, QV_Q(input), at::IntArrayRef kernel_size, at::IntArrayRef stride,
                           at::IntArrayRef padding, QV_Q(out), at::Tensor& out) {
  check_out(out, input, "avg_pool2d");
  const auto s = pool_shape(input, kernel_size, stride, padding, {}, "avg_pool2d");
  const at::Tensor x = input.contiguous();
  out.resize_({s.n, s.c, s.oh, s.ow});
  dispatch_qtype(input, "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    quantviz::avg_pool2d<T>(x.const_data_ptr<T>(), QV_QP(input), s, out.mutable_data_ptr<T>(), QV_QP(out));
  });
  return out;
}
at::Tensor avg_pool2d(const at::Tensor& input, QV_Q(input), at::IntArrayRef kernel_size, at::IntArrayRef stride,
                      at::IntArrayRef padding, QV_Q(out)) {
  at::Tensor out = at::empty({0}, input.options());
  return avg_pool2d_out(input, QV_QA(input), kernel_size, stride, padding, QV_QA(out), out);
}

at::Tensor& mean_out(const at::Tensor& input, QV_Q(input), bool keepdim, QV_Q(out), at::Tensor& out) {
  TORCH_CHECK(input.dim() >= 2, "quantviz::mean: input needs at least 2 dims (mean over the last two)");
  check_out(out, input, "mean");
  const at::Tensor x = input.contiguous();
  std::vector<int64_t> sizes = input.sizes().vec();
  const int64_t hw = sizes[sizes.size() - 1] * sizes[sizes.size() - 2];
  if (keepdim) {
    sizes[sizes.size() - 1] = 1;
    sizes[sizes.size() - 2] = 1;
  } else {
    sizes.resize(sizes.size() - 2);
  }
  out.resize_(sizes);
  TORCH_CHECK(hw > 0, "quantviz::mean: empty input");
  dispatch_qtype(input, "mean", [&](auto tag) {
    using T = decltype(tag);
    quantviz::mean_hw<T>(x.const_data_ptr<T>(), QV_QP(input), x.numel() / hw, hw, out.mutable_data_ptr<T>(),
                         QV_QP(out));
  });
  return out;
}
at::Tensor mean(const at::Tensor& input, QV_Q(input), bool keepdim, QV_Q(out)) {
  at::Tensor out = at::empty({0}, input.options());
  return mean_out(input, QV_QA(input), keepdim, QV_QA(out), out);
}

}  // namespace

#define QV_S(p) "float " #p "_scale, int " #p "_zero_point, int " #p "_quant_min, int " #p "_quant_max"
#define QV_OUT ", *, Tensor(a!) out) -> Tensor(a!)"

TORCH_LIBRARY(quantviz, m) {
#define QV_DEF(name, args) \
  m.def(name "(" args ") -> Tensor"); \
  m.def(name ".out(" args QV_OUT);
  QV_DEF("add", "Tensor a, " QV_S(a) ", Tensor b, " QV_S(b) ", " QV_S(out))
  QV_DEF("add_relu", "Tensor a, " QV_S(a) ", Tensor b, " QV_S(b) ", " QV_S(out))
  QV_DEF("mul", "Tensor a, " QV_S(a) ", Tensor b, " QV_S(b) ", " QV_S(out))
  QV_DEF("hardtanh", "Tensor input, " QV_S(input) ", float min_val, float max_val, " QV_S(out))
  QV_DEF("linear", "Tensor input, " QV_S(input) ", Tensor weight, Tensor weight_scales, Tensor weight_zero_points, "
                   "Tensor? bias, " QV_S(out))
  QV_DEF("conv2d", "Tensor input, " QV_S(input) ", Tensor weight, Tensor weight_scales, Tensor weight_zero_points, "
                   "Tensor? bias, int[] stride, int[] padding, int[] dilation, int groups, " QV_S(out))
  QV_DEF("max_pool2d", "Tensor input, " QV_S(input) ", int[] kernel_size, int[] stride, int[] padding, "
                       "int[] dilation, " QV_S(out))
  QV_DEF("avg_pool2d", "Tensor input, " QV_S(input) ", int[] kernel_size, int[] stride, int[] padding, " QV_S(out))
  QV_DEF("mean", "Tensor input, " QV_S(input) ", bool keepdim, " QV_S(out))
#undef QV_DEF
}

TORCH_LIBRARY_IMPL(quantviz, CPU, m) {
#define QV_IMPL(name) \
  m.impl(#name, TORCH_FN(name)); \
  m.impl(#name ".out", TORCH_FN(name##_out));
  QV_IMPL(add)
  QV_IMPL(add_relu)
  QV_IMPL(mul)
  QV_IMPL(hardtanh)
  QV_IMPL(linear)
  QV_IMPL(conv2d)
  QV_IMPL(max_pool2d)
  QV_IMPL(avg_pool2d)
  QV_IMPL(mean)
#undef QV_IMPL
}
