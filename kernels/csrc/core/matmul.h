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

// Four dot products at once: a (k values) with four weight rows ``stride`` apart. One pass over ``a``; the compiler
// turns each sum into a vector multiply-add of int16 pairs (pmaddwd).
inline void dot4(const int16_t* a, const int16_t* w, int64_t k, int64_t stride, int32_t* out) {
  const int16_t* w0 = w;
  const int16_t* w1 = w + stride;
  const int16_t* w2 = w + 2 * stride;
  const int16_t* w3 = w + 3 * stride;
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int32_t av = a[i];
    s0 += av * w0[i];
    s1 += av * w1[i];
    s2 += av * w2[i];
    s3 += av * w3[i];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

inline int32_t dot1(const int16_t* a, const int16_t* w, int64_t k) {
  int32_t s = 0;
  for (int64_t i = 0; i < k; ++i) s += static_cast<int32_t>(a[i]) * static_cast<int32_t>(w[i]);
  return s;
}

// acc[r * n + j] = dot(a row r, w row j) for r < m, j < n (a: m x k, w: n x k, both int16).
inline void gemm_nt(const int16_t* a, int64_t m, const int16_t* w, int64_t n, int64_t k, int32_t* acc) {
  for (int64_t r = 0; r < m; ++r) {
    const int16_t* ar = a + r * k;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) dot4(ar, w + j * k, k, k, acc + r * n + j);
    for (; j < n; ++j) acc[r * n + j] = dot1(ar, w + j * k, k);
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
  std::vector<int32_t> acc(static_cast<size_t>(n));
  for (int64_t r = 0; r < m; ++r) {
    gemm_nt(xs.data() + r * k, 1, ws.data(), n, k, acc.data());
    for (int64_t j = 0; j < n; ++j)
      out[r * n + j] = static_cast<T>(requantize(static_cast<int64_t>(acc[j]) + bias_q[j], multiplier[j], qo));
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

// Below this reduction length (cin / groups * kh * kw, e.g. depthwise 3x3 = 9) the direct loop beats im2col.
constexpr int64_t kIm2colMinReduction = 32;

// Convolution as a matrix product, a block of output pixels at a time: gather the block's receptive fields
// (x - x_zero_point, zero in the padding) into rows of int16, then one dot product per (pixel, output channel)
// with the weights, also int16 and laid out (cout, cin / groups * kh * kw).
template <typename T>
void conv2d_im2col(const T* x, const QParams& qx, const Conv2dShape& s, const int8_t* w, const WeightQParams& qw,
                   const std::vector<int64_t>& bias_q, const std::vector<double>& multiplier, T* out,
                   const QParams& qo) {
  const int64_t cin_g = s.cin / s.groups, cout_g = s.cout / s.groups;
  const int64_t k = cin_g * s.kh * s.kw, pixels = s.oh * s.ow;
  constexpr int64_t kBlock = 64;
  std::vector<int16_t> ws(static_cast<size_t>(s.cout * k));
  for (int64_t oc = 0; oc < s.cout; ++oc) {
    const int32_t zp = qw.zero_point_at(oc);
    for (int64_t i = 0; i < k; ++i) ws[oc * k + i] = static_cast<int16_t>(static_cast<int32_t>(w[oc * k + i]) - zp);
  }
  std::vector<int16_t> cols(static_cast<size_t>(kBlock * k));
  std::vector<int32_t> acc(static_cast<size_t>(kBlock * cout_g));
  for (int64_t b = 0; b < s.n; ++b) {
    const T* xb = x + b * s.cin * s.h * s.w;
    T* ob = out + b * s.cout * pixels;
    for (int64_t g = 0; g < s.groups; ++g) {
      for (int64_t p0 = 0; p0 < pixels; p0 += kBlock) {
        const int64_t np = pixels - p0 < kBlock ? pixels - p0 : kBlock;
        for (int64_t p = 0; p < np; ++p) {
          const int64_t oy = (p0 + p) / s.ow, ox = (p0 + p) % s.ow;
          int16_t* row = cols.data() + p * k;
          for (int64_t ic = 0; ic < cin_g; ++ic) {
            const T* plane = xb + (g * cin_g + ic) * s.h * s.w;
            for (int64_t ky = 0; ky < s.kh; ++ky) {
              const int64_t iy = oy * s.sh - s.ph + ky * s.dh;
              for (int64_t kx = 0; kx < s.kw; ++kx) {
                const int64_t ix = ox * s.sw - s.pw + kx * s.dw;
                const bool inside = iy >= 0 && iy < s.h && ix >= 0 && ix < s.w;
                *row++ = inside ? static_cast<int16_t>(static_cast<int32_t>(plane[iy * s.w + ix]) - qx.zero_point) : 0;
              }
            }
          }
        }
        gemm_nt(cols.data(), np, ws.data() + g * cout_g * k, cout_g, k, acc.data());
        for (int64_t j = 0; j < cout_g; ++j) {
          const int64_t oc = g * cout_g + j;
          T* o = ob + oc * pixels + p0;
          for (int64_t p = 0; p < np; ++p)
            o[p] = static_cast<T>(requantize(static_cast<int64_t>(acc[p * cout_g + j]) + bias_q[oc], multiplier[oc], qo));
        }
      }
    }
  }
}

// Direct convolution over a zero-padded copy of (x - x_zero_point) in int16: padding holds the real value
// 0.0, whose quantized value is the zero point, so it contributes nothing. The inner loop runs along an
// output row, which the compiler vectorizes. Used for short reductions (depthwise).
template <typename T>
void conv2d(const T* x, const QParams& qx, const Conv2dShape& s, const int8_t* w, const WeightQParams& qw,
            const float* bias, T* out, const QParams& qo) {
  const int64_t cin_g = s.cin / s.groups, cout_g = s.cout / s.groups;
  std::vector<int64_t> bias_q;
  std::vector<double> multiplier;
  output_params(qx, qw, bias, s.cout, qo, bias_q, multiplier);
  if (cin_g * s.kh * s.kw >= kIm2colMinReduction) {
    conv2d_im2col(x, qx, s, w, qw, bias_q, multiplier, out, qo);
    return;
  }
  const int64_t PH = s.h + 2 * s.ph, PW = s.w + 2 * s.pw;
  std::vector<int16_t> xp(static_cast<size_t>(s.cin * PH * PW));
  std::vector<int32_t> acc(static_cast<size_t>(s.oh * s.ow));
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
