// ExecuTorch runtime registration of the quantviz operators' out variants: thin wrappers over core/,
// registered with EXECUTORCH_LIBRARY into the runtime's kernel registry (the wheel's libexecutorch.so).
// Compiled against the executorch wheel's headers only; never include torch headers here.
#include <executorch/extension/kernel_util/make_boxed_from_unboxed_functor.h>
#include <executorch/runtime/core/exec_aten/util/tensor_util.h>
#include <executorch/runtime/kernel/kernel_includes.h>

#include <optional>

#include "core/elementwise.h"
#include "core/matmul.h"
#include "core/pool.h"

namespace {

using executorch::aten::ArrayRef;
using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::aten::Tensor;
using executorch::runtime::Error;
using executorch::runtime::KernelRuntimeContext;
using executorch::runtime::resize_tensor;
using quantviz::make_qparams;
using quantviz::QParams;

#define QV_Q(p) double p##_scale, int64_t p##_zero_point, int64_t p##_quant_min, int64_t p##_quant_max
#define QV_QP(p) make_qparams(p##_scale, p##_zero_point, p##_quant_min, p##_quant_max)

// Runs f(T{}) for an int8 or uint8 tensor; returns false for any other dtype.
template <typename F>
bool dispatch_qtype(const Tensor& t, F&& f) {
  switch (t.scalar_type()) {
    case ScalarType::Char: f(int8_t{}); return true;
    case ScalarType::Byte: f(uint8_t{}); return true;
    default: return false;
  }
}

bool same_sizes(const Tensor& a, const Tensor& b) {
  if (a.dim() != b.dim()) return false;
  for (ssize_t i = 0; i < a.dim(); ++i)
    if (a.size(i) != b.size(i)) return false;
  return true;
}

bool resize(Tensor& out, std::initializer_list<int64_t> sizes) {
  SizesType s[8];
  size_t n = 0;
  for (int64_t v : sizes) s[n++] = static_cast<SizesType>(v);
  return resize_tensor(out, ArrayRef<SizesType>(s, n)) == Error::Ok;
}

bool weight_ok(const Tensor& scales, const Tensor& zero_points, int64_t channels) {
  return scales.scalar_type() == ScalarType::Float && zero_points.scalar_type() == ScalarType::Long &&
         scales.numel() == zero_points.numel() && (scales.numel() == 1 || scales.numel() == channels);
}

quantviz::WeightQParams weight_qparams(const Tensor& scales, const Tensor& zero_points) {
  return {scales.const_data_ptr<float>(), zero_points.const_data_ptr<int64_t>(),
          static_cast<int64_t>(scales.numel())};
}

int64_t at2(ArrayRef<int64_t> v, size_t i) { return v.size() == 1 ? v[0] : v[i]; }

// ---- add, add_relu, mul ----------------------------------------------------------------------------------
Tensor& binary_out(KernelRuntimeContext& ctx, quantviz::BinaryOp op, const Tensor& a, QParams qa, const Tensor& b,
                   QParams qb, QParams qo, Tensor& out) {
  ET_KERNEL_CHECK_MSG(ctx, same_sizes(a, b) && a.scalar_type() == b.scalar_type() &&
                               out.scalar_type() == a.scalar_type(),
                      InvalidArgument, out, "quantviz binary op: inputs need one shape and one dtype");
  ET_KERNEL_CHECK(ctx, resize_tensor(out, a.sizes()) == Error::Ok, InvalidArgument, out);
  const bool ok = dispatch_qtype(a, [&](auto tag) {
    using T = decltype(tag);
    quantviz::binary<T>(op, a.const_data_ptr<T>(), qa, b.const_data_ptr<T>(), qb, out.mutable_data_ptr<T>(), qo,
                        a.numel());
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, InvalidArgument, out, "quantviz binary op: int8 or uint8 only");
  return out;
}

#define QV_BINARY(NAME, OP)                                                                                  \
  Tensor& NAME##_out(KernelRuntimeContext& ctx, const Tensor& a, QV_Q(a), const Tensor& b, QV_Q(b), QV_Q(out), \
                     Tensor& out) {                                                                          \
    return binary_out(ctx, OP, a, QV_QP(a), b, QV_QP(b), QV_QP(out), out);                                   \
  }
QV_BINARY(add, quantviz::BinaryOp::kAdd)
QV_BINARY(add_relu, quantviz::BinaryOp::kAddRelu)
QV_BINARY(mul, quantviz::BinaryOp::kMul)

Tensor& hardtanh_out(KernelRuntimeContext& ctx, const Tensor& input, QV_Q(input), double min_val, double max_val,
                     QV_Q(out), Tensor& out) {
  ET_KERNEL_CHECK(ctx, out.scalar_type() == input.scalar_type(), InvalidArgument, out);
  ET_KERNEL_CHECK(ctx, resize_tensor(out, input.sizes()) == Error::Ok, InvalidArgument, out);
  const bool ok = dispatch_qtype(input, [&](auto tag) {
    using T = decltype(tag);
    quantviz::hardtanh<T>(input.const_data_ptr<T>(), QV_QP(input), static_cast<float>(min_val),
                          static_cast<float>(max_val), out.mutable_data_ptr<T>(), QV_QP(out), input.numel());
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, InvalidArgument, out, "quantviz::hardtanh: int8 or uint8 only");
  return out;
}

// ---- linear ----------------------------------------------------------------------------------------------
Tensor& linear_out(KernelRuntimeContext& ctx, const Tensor& input, QV_Q(input), const Tensor& weight,
                   const Tensor& weight_scales, const Tensor& weight_zero_points, const std::optional<Tensor>& bias,
                   QV_Q(out), Tensor& out) {
  ET_KERNEL_CHECK_MSG(ctx, weight.dim() == 2 && weight.scalar_type() == ScalarType::Char && input.dim() >= 1 &&
                               input.size(input.dim() - 1) == weight.size(1) &&
                               weight.size(1) <= quantviz::kMaxReduction &&
                               out.scalar_type() == input.scalar_type(),
                      InvalidArgument, out, "quantviz::linear: bad shapes or dtypes");
  const int64_t k = weight.size(1), n = weight.size(0), m = input.numel() / k;
  ET_KERNEL_CHECK(ctx, weight_ok(weight_scales, weight_zero_points, n), InvalidArgument, out);
  ET_KERNEL_CHECK(ctx, !bias.has_value() || (bias->scalar_type() == ScalarType::Float && bias->numel() == n),
                  InvalidArgument, out);
  SizesType sizes[16];
  ET_KERNEL_CHECK(ctx, input.dim() <= 16, InvalidArgument, out);
  for (ssize_t i = 0; i < input.dim(); ++i) sizes[i] = input.size(i);
  sizes[input.dim() - 1] = static_cast<SizesType>(n);
  ET_KERNEL_CHECK(ctx, resize_tensor(out, ArrayRef<SizesType>(sizes, input.dim())) == Error::Ok, InvalidArgument,
                  out);
  const auto qw = weight_qparams(weight_scales, weight_zero_points);
  const bool ok = dispatch_qtype(input, [&](auto tag) {
    using T = decltype(tag);
    quantviz::linear<T>(input.const_data_ptr<T>(), QV_QP(input), m, k, weight.const_data_ptr<int8_t>(), qw, n,
                        bias.has_value() ? bias->const_data_ptr<float>() : nullptr, out.mutable_data_ptr<T>(),
                        QV_QP(out));
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, InvalidArgument, out, "quantviz::linear: int8 or uint8 only");
  return out;
}

// ---- conv2d ----------------------------------------------------------------------------------------------
Tensor& conv2d_out(KernelRuntimeContext& ctx, const Tensor& input, QV_Q(input), const Tensor& weight,
                   const Tensor& weight_scales, const Tensor& weight_zero_points, const std::optional<Tensor>& bias,
                   ArrayRef<int64_t> stride, ArrayRef<int64_t> padding, ArrayRef<int64_t> dilation, int64_t groups,
                   QV_Q(out), Tensor& out) {
  ET_KERNEL_CHECK_MSG(ctx, input.dim() == 4 && weight.dim() == 4 && weight.scalar_type() == ScalarType::Char &&
                               groups >= 1 && input.size(1) % groups == 0 && weight.size(0) % groups == 0 &&
                               weight.size(1) * groups == input.size(1) &&
                               out.scalar_type() == input.scalar_type() &&
                               weight.size(1) * weight.size(2) * weight.size(3) <= quantviz::kMaxReduction,
                      InvalidArgument, out, "quantviz::conv2d: bad shapes or dtypes");
  quantviz::Conv2dShape s{input.size(0), input.size(1), input.size(2), input.size(3), weight.size(0), weight.size(2),
                          weight.size(3), at2(stride, 0), at2(stride, 1), at2(padding, 0), at2(padding, 1),
                          at2(dilation, 0), at2(dilation, 1), groups, 0, 0};
  s.oh = quantviz::conv_out_size(s.h, s.kh, s.sh, s.ph, s.dh);
  s.ow = quantviz::conv_out_size(s.w, s.kw, s.sw, s.pw, s.dw);
  ET_KERNEL_CHECK(ctx, s.oh > 0 && s.ow > 0, InvalidArgument, out);
  ET_KERNEL_CHECK(ctx, weight_ok(weight_scales, weight_zero_points, s.cout), InvalidArgument, out);
  ET_KERNEL_CHECK(ctx, !bias.has_value() || (bias->scalar_type() == ScalarType::Float && bias->numel() == s.cout),
                  InvalidArgument, out);
  ET_KERNEL_CHECK(ctx, resize(out, {s.n, s.cout, s.oh, s.ow}), InvalidArgument, out);
  const auto qw = weight_qparams(weight_scales, weight_zero_points);
  const bool ok = dispatch_qtype(input, [&](auto tag) {
    using T = decltype(tag);
    quantviz::conv2d<T>(input.const_data_ptr<T>(), QV_QP(input), s, weight.const_data_ptr<int8_t>(), qw,
                        bias.has_value() ? bias->const_data_ptr<float>() : nullptr, out.mutable_data_ptr<T>(),
                        QV_QP(out));
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, InvalidArgument, out, "quantviz::conv2d: int8 or uint8 only");
  return out;
}

// ---- pooling ---------------------------------------------------------------------------------------------
bool pool_shape(const Tensor& input, ArrayRef<int64_t> kernel_size, ArrayRef<int64_t> stride,
                ArrayRef<int64_t> padding, ArrayRef<int64_t> dilation, quantviz::Pool2dShape& s) {
  if (input.dim() != 4 || kernel_size.empty()) return false;
  ArrayRef<int64_t> st = stride.empty() ? kernel_size : stride;
  s = quantviz::Pool2dShape{input.size(0), input.size(1), input.size(2), input.size(3), at2(kernel_size, 0),
                            at2(kernel_size, 1), at2(st, 0), at2(st, 1),
                            padding.empty() ? 0 : at2(padding, 0), padding.empty() ? 0 : at2(padding, 1),
                            dilation.empty() ? 1 : at2(dilation, 0), dilation.empty() ? 1 : at2(dilation, 1), 0, 0};
  s.oh = quantviz::pool_out_size(s.h, s.kh, s.sh, s.ph, s.dh);
  s.ow = quantviz::pool_out_size(s.w, s.kw, s.sw, s.pw, s.dw);
  return s.oh > 0 && s.ow > 0;
}

Tensor& max_pool2d_out(KernelRuntimeContext& ctx, const Tensor& input, QV_Q(input), ArrayRef<int64_t> kernel_size,
                       ArrayRef<int64_t> stride, ArrayRef<int64_t> padding, ArrayRef<int64_t> dilation, QV_Q(out),
                       Tensor& out) {
  quantviz::Pool2dShape s{};
  ET_KERNEL_CHECK_MSG(ctx, pool_shape(input, kernel_size, stride, padding, dilation, s) &&
                               out.scalar_type() == input.scalar_type(),
                      InvalidArgument, out, "quantviz::max_pool2d: bad shapes or dtypes");
  ET_KERNEL_CHECK(ctx, resize(out, {s.n, s.c, s.oh, s.ow}), InvalidArgument, out);
  const bool ok = dispatch_qtype(input, [&](auto tag) {
    using T = decltype(tag);
    quantviz::max_pool2d<T>(input.const_data_ptr<T>(), QV_QP(input), s, out.mutable_data_ptr<T>(), QV_QP(out));
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, InvalidArgument, out, "quantviz::max_pool2d: int8 or uint8 only");
  return out;
}

Tensor& avg_pool2d_out(KernelRuntimeContext& ctx, const Tensor& input, QV_Q(input), ArrayRef<int64_t> kernel_size,
                       ArrayRef<int64_t> stride, ArrayRef<int64_t> padding, QV_Q(out), Tensor& out) {
  quantviz::Pool2dShape s{};
  ET_KERNEL_CHECK_MSG(ctx, pool_shape(input, kernel_size, stride, padding, {}, s) &&
                               out.scalar_type() == input.scalar_type(),
                      InvalidArgument, out, "quantviz::avg_pool2d: bad shapes or dtypes");
  ET_KERNEL_CHECK(ctx, resize(out, {s.n, s.c, s.oh, s.ow}), InvalidArgument, out);
  const bool ok = dispatch_qtype(input, [&](auto tag) {
    using T = decltype(tag);
    quantviz::avg_pool2d<T>(input.const_data_ptr<T>(), QV_QP(input), s, out.mutable_data_ptr<T>(), QV_QP(out));
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, InvalidArgument, out, "quantviz::avg_pool2d: int8 or uint8 only");
  return out;
}

Tensor& mean_out(KernelRuntimeContext& ctx, const Tensor& input, QV_Q(input), bool keepdim, QV_Q(out), Tensor& out) {
  ET_KERNEL_CHECK_MSG(ctx, input.dim() >= 2 && input.dim() <= 16 && out.scalar_type() == input.scalar_type(),
                      InvalidArgument, out, "quantviz::mean: bad shapes or dtypes");
  const ssize_t d = input.dim();
  const int64_t hw = static_cast<int64_t>(input.size(d - 1)) * input.size(d - 2);
  ET_KERNEL_CHECK(ctx, hw > 0, InvalidArgument, out);
  SizesType sizes[16];
  for (ssize_t i = 0; i < d; ++i) sizes[i] = input.size(i);
  size_t nd = static_cast<size_t>(d);
  if (keepdim) {
    sizes[d - 1] = 1;
    sizes[d - 2] = 1;
  } else {
    nd -= 2;
  }
  ET_KERNEL_CHECK(ctx, resize_tensor(out, ArrayRef<SizesType>(sizes, nd)) == Error::Ok, InvalidArgument, out);
  const bool ok = dispatch_qtype(input, [&](auto tag) {
    using T = decltype(tag);
    quantviz::mean_hw<T>(input.const_data_ptr<T>(), QV_QP(input), input.numel() / hw, hw,
                         out.mutable_data_ptr<T>(), QV_QP(out));
  });
  ET_KERNEL_CHECK_MSG(ctx, ok, InvalidArgument, out, "quantviz::mean: int8 or uint8 only");
  return out;
}

}  // namespace

EXECUTORCH_LIBRARY(quantviz, "add.out", add_out);
EXECUTORCH_LIBRARY(quantviz, "add_relu.out", add_relu_out);
EXECUTORCH_LIBRARY(quantviz, "mul.out", mul_out);
EXECUTORCH_LIBRARY(quantviz, "hardtanh.out", hardtanh_out);
EXECUTORCH_LIBRARY(quantviz, "linear.out", linear_out);
EXECUTORCH_LIBRARY(quantviz, "conv2d.out", conv2d_out);
EXECUTORCH_LIBRARY(quantviz, "max_pool2d.out", max_pool2d_out);
EXECUTORCH_LIBRARY(quantviz, "avg_pool2d.out", avg_pool2d_out);
EXECUTORCH_LIBRARY(quantviz, "mean.out", mean_out);
