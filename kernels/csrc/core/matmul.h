// Quantized linear and conv2d: int32 accumulation of (x - x_zero_point) * (w - w_zero_point), the float
// bias quantized to int32 at scale input_scale * weight_scale (as integer kernels do), then one
// requantization per output with multiplier input_scale * weight_scale / output_scale.
// Weights are int8 with one scale/zero point (per tensor) or one per output channel.
#pragma once

#include <cstdint>
#include <vector>

#include "quant.h"

namespace quantviz {

struct WeightQParams {
  const float* scale;        // n entries
  const int64_t* zero_point; // n entries
  int64_t n;                 // 1 (per tensor) or the number of output channels
  float scale_at(int64_t c) const { return scale[n == 1 ? 0 : c]; }
  int32_t zero_point_at(int64_t c) const { return static_cast<int32_t>(zero_point[n == 1 ? 0 : c]); }
};

// Largest reduction length whose int32 accumulator cannot overflow: |x - zp|, |w - zp| <= 255.
constexpr int64_t kMaxReduction = 2147483647LL / (255LL * 255LL);

// Per output channel: bias in int32 and the requantization multiplier.
inline void output_params(const QParams& qx, const WeightQParams& qw, const float* bias, int64_t channels,
                          const QParams& qo, std::vector<int64_t>& bias_q, std::vector<double>& multiplier) {
  bias_q.assign(channels, 0);
  multiplier.assign(channels, 0.0);
  for (int64_t c = 0; c < channels; ++c) {
    const double acc_scale = static_cast<double>(qx.scale) * static_cast<double>(qw.scale_at(c));
    multiplier[c] = acc_scale / static_cast<double>(qo.scale);
    if (bias != nullptr) bias_q[c] = round_half_even_d(static_cast<double>(bias[c]) / acc_scale);
  }
}

// x: (m, k) in T; w: (n, k) int8; bias: n floats or null; out: (m, n) in T.
template <typename T>
void linear(const T* x, const QParams& qx, int64_t m, int64_t k, const int8_t* w, const WeightQParams& qw,
            int64_t n, const float* bias, T* out, const QParams& qo) {
  std::vector<int16_t> xs(static_cast<size_t>(m * k)), ws(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < m * k; ++i) xs[i] = static_cast<int16_t>(static_cast<int32_t>(x[i]) - qx.zero_point);
  for (int64_t j = 0; j < n; ++j) {
    const int32_t zp = qw.zero_point_at(j);
    for (int64_t i = 0; i < k; ++i) ws[j * k + i] = static_cast<int16_t>(static_cast<int32_t>(w[j * k + i]) - zp);
  }
  std::vector<int64_t> bias_q;
  std::vector<double> multiplier;
  output_params(qx, qw, bias, n, qo, bias_q, multiplier);
  for (int64_t r = 0; r < m; ++r) {
    const int16_t* xr = xs.data() + r * k;
    for (int64_t j = 0; j < n; ++j) {
      const int16_t* wr = ws.data() + j * k;
      int32_t acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += static_cast<int32_t>(xr[i]) * static_cast<int32_t>(wr[i]);
      out[r * n + j] = static_cast<T>(requantize(static_cast<int64_t>(acc) + bias_q[j], multiplier[j], qo));
    }
  }
}

struct Conv2dShape {
  int64_t n, cin, h, w;          // input, NCHW
  int64_t cout, kh, kw;          // weight: (cout, cin / groups, kh, kw)
  int64_t sh, sw, ph, pw, dh, dw, groups;
  int64_t oh, ow;                // output
};

inline int64_t conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

// Direct convolution over a zero-padded copy of (x - x_zero_point) in int16: padding holds the real value
// 0.0, whose quantized value is the zero point, so it contributes nothing. The inner loop runs along an
// output row, which the compiler vectorizes.
template <typename T>
void conv2d(const T* x, const QParams& qx, const Conv2dShape& s, const int8_t* w, const WeightQParams& qw,
            const float* bias, T* out, const QParams& qo) {
  const int64_t cin_g = s.cin / s.groups, cout_g = s.cout / s.groups;
  const int64_t PH = s.h + 2 * s.ph, PW = s.w + 2 * s.pw;
  std::vector<int16_t> xp(static_cast<size_t>(s.cin * PH * PW));
  std::vector<int32_t> acc(static_cast<size_t>(s.oh * s.ow));
  std::vector<int64_t> bias_q;
  std::vector<double> multiplier;
  output_params(qx, qw, bias, s.cout, qo, bias_q, multiplier);
  for (int64_t b = 0; b < s.n; ++b) {
    const T* xb = x + b * s.cin * s.h * s.w;
    for (int64_t c = 0; c < s.cin; ++c) {
      int16_t* plane = xp.data() + c * PH * PW;
      for (int64_t i = 0; i < PH * PW; ++i) plane[i] = 0;
      for (int64_t y = 0; y < s.h; ++y) {
        const T* src = xb + (c * s.h + y) * s.w;
        int16_t* dst = plane + (y + s.ph) * PW + s.pw;
        for (int64_t xx = 0; xx < s.w; ++xx)
          dst[xx] = static_cast<int16_t>(static_cast<int32_t>(src[xx]) - qx.zero_point);
      }
    }
    T* ob = out + b * s.cout * s.oh * s.ow;
    for (int64_t oc = 0; oc < s.cout; ++oc) {
      const int64_t g = oc / cout_g;
      const int32_t wzp = qw.zero_point_at(oc);
      for (auto& a : acc) a = 0;
      for (int64_t icg = 0; icg < cin_g; ++icg) {
        const int16_t* plane = xp.data() + (g * cin_g + icg) * PH * PW;
        const int8_t* wk = w + (oc * cin_g + icg) * s.kh * s.kw;
        for (int64_t ky = 0; ky < s.kh; ++ky) {
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            const int16_t wv = static_cast<int16_t>(static_cast<int32_t>(wk[ky * s.kw + kx]) - wzp);
            if (wv == 0) continue;
            for (int64_t oy = 0; oy < s.oh; ++oy) {
              const int16_t* row = plane + (oy * s.sh + ky * s.dh) * PW + kx * s.dw;
              int32_t* a = acc.data() + oy * s.ow;
              if (s.sw == 1) {
                for (int64_t ox = 0; ox < s.ow; ++ox)
                  a[ox] += static_cast<int32_t>(wv) * static_cast<int32_t>(row[ox]);
              } else {
                for (int64_t ox = 0; ox < s.ow; ++ox)
                  a[ox] += static_cast<int32_t>(wv) * static_cast<int32_t>(row[ox * s.sw]);
              }
            }
          }
        }
      }
      T* o = ob + oc * s.oh * s.ow;
      for (int64_t i = 0; i < s.oh * s.ow; ++i)
        o[i] = static_cast<T>(requantize(static_cast<int64_t>(acc[i]) + bias_q[oc], multiplier[oc], qo));
    }
  }
}

}  // namespace quantviz
