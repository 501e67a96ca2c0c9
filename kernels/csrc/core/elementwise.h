// Elementwise quantized kernels: add, add_relu, mul (two inputs of one shape) and hardtanh/relu clamps.
// Each does dequantize -> float op -> quantize per element in float32, in the reference's order, so the
// result is the reference's bytes.
#pragma once

#include <cstdint>

#include "quant.h"

namespace quantviz {

enum class BinaryOp { kAdd, kAddRelu, kMul };

template <typename T, BinaryOp Op>
void binary_kernel(const T* a, const QParams& qa, const T* b, const QParams& qb, T* out, const QParams& qo,
                   int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = dequantize(static_cast<int32_t>(a[i]), qa);
    const float y = dequantize(static_cast<int32_t>(b[i]), qb);
    float r;
    if constexpr (Op == BinaryOp::kMul) {
      r = x * y;
    } else {
      r = x + y;
    }
    if constexpr (Op == BinaryOp::kAddRelu) {
      r = r > 0.0f ? r : 0.0f;
    }
    out[i] = static_cast<T>(quantize(r, qo));
  }
}

template <typename T>
void binary(BinaryOp op, const T* a, const QParams& qa, const T* b, const QParams& qb, T* out,
            const QParams& qo, int64_t n) {
  switch (op) {
    case BinaryOp::kAdd: binary_kernel<T, BinaryOp::kAdd>(a, qa, b, qb, out, qo, n); break;
    case BinaryOp::kAddRelu: binary_kernel<T, BinaryOp::kAddRelu>(a, qa, b, qb, out, qo, n); break;
    case BinaryOp::kMul: binary_kernel<T, BinaryOp::kMul>(a, qa, b, qb, out, qo, n); break;
  }
}

// hardtanh(min_val, max_val) on dequantized values, then quantize; relu is hardtanh(0, +inf).
template <typename T>
void hardtanh(const T* in, const QParams& qi, float min_val, float max_val, T* out, const QParams& qo,
              int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float x = dequantize(static_cast<int32_t>(in[i]), qi);
    x = x < min_val ? min_val : (x > max_val ? max_val : x);
    out[i] = static_cast<T>(quantize(x, qo));
  }
}

}  // namespace quantviz
