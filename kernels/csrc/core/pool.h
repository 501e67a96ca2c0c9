// Quantized pooling over NCHW: max_pool2d, avg_pool2d (count_include_pad, floor mode) and mean over H, W.
#pragma once

#include <cstdint>

#include "quant.h"

namespace quantviz {

struct Pool2dShape {
  int64_t n, c, h, w;           // input
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t oh, ow;               // output (floor mode)
};

inline int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

// Max of the integers equals the max of their dequantized values (scale > 0), then requantize exactly as
// the reference does: dequantize the max, quantize with the output qparams.
template <typename T>
void max_pool2d(const T* in, const QParams& qi, const Pool2dShape& s, T* out, const QParams& qo) {
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const T* src = in + plane * s.h * s.w;
    T* dst = out + plane * s.oh * s.ow;
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        int32_t m = INT32_MIN;
        for (int64_t ky = 0; ky < s.kh; ++ky) {
          const int64_t iy = oy * s.sh - s.ph + ky * s.dh;
          if (iy < 0 || iy >= s.h) continue;
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            const int64_t ix = ox * s.sw - s.pw + kx * s.dw;
            if (ix < 0 || ix >= s.w) continue;
            const int32_t v = static_cast<int32_t>(src[iy * s.w + ix]);
            m = v > m ? v : m;
          }
        }
        dst[oy * s.ow + ox] = static_cast<T>(quantize(dequantize(m, qi), qo));
      }
    }
  }
}

// Sum of (q - zero_point) over the window in int32, divided by the window size (padding counted, as
// count_include_pad=True does), then requantized: the float reference sums floats, so results may differ
// from it by one LSB where it lands on a rounding boundary.
template <typename T>
void avg_pool2d(const T* in, const QParams& qi, const Pool2dShape& s, T* out, const QParams& qo) {
  const double multiplier = static_cast<double>(qi.scale) / (static_cast<double>(qo.scale) * s.kh * s.kw);
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const T* src = in + plane * s.h * s.w;
    T* dst = out + plane * s.oh * s.ow;
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        int64_t acc = 0;
        for (int64_t ky = 0; ky < s.kh; ++ky) {
          const int64_t iy = oy * s.sh - s.ph + ky;
          if (iy < 0 || iy >= s.h) continue;
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            const int64_t ix = ox * s.sw - s.pw + kx;
            if (ix < 0 || ix >= s.w) continue;
            acc += static_cast<int32_t>(src[iy * s.w + ix]) - qi.zero_point;
          }
        }
        dst[oy * s.ow + ox] = static_cast<T>(requantize(acc, multiplier, qo));
      }
    }
  }
}

// Mean over the last two dims of an (outer, h*w) view: one output per outer index.
template <typename T>
void mean_hw(const T* in, const QParams& qi, int64_t outer, int64_t hw, T* out, const QParams& qo) {
  const double multiplier = static_cast<double>(qi.scale) / (static_cast<double>(qo.scale) * hw);
  for (int64_t o = 0; o < outer; ++o) {
    const T* src = in + o * hw;
    int64_t acc = 0;
    for (int64_t i = 0; i < hw; ++i) acc += static_cast<int32_t>(src[i]);
    acc -= static_cast<int64_t>(qi.zero_point) * hw;
    out[o] = static_cast<T>(requantize(acc, multiplier, qo));
  }
}

}  // namespace quantviz
