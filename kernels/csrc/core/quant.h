// Quantization arithmetic shared by every kernel. Framework-free: no torch or ExecuTorch headers.
//
// The reference model computes, in float32:
//   dequantize: (float(q) - zero_point) * float(scale)
//   quantize:   clamp(round_half_even(x * float(1.0 / scale)) + zero_point, quant_min, quant_max)
// The helpers below repeat those float32 operations in the same order, so an elementwise kernel that
// does dequantize -> float op -> quantize gives the reference's bytes exactly.
#pragma once

#include <cstdint>

namespace quantviz {

struct QParams {
  float scale;      // float(scale): what dequantize multiplies by
  float inv_scale;  // float(1.0 / scale): what quantize multiplies by
  int32_t zero_point;
  int32_t quant_min;
  int32_t quant_max;
};

inline QParams make_qparams(double scale, int64_t zero_point, int64_t quant_min, int64_t quant_max) {
  return QParams{static_cast<float>(scale), static_cast<float>(1.0 / scale),
                 static_cast<int32_t>(zero_point), static_cast<int32_t>(quant_min),
                 static_cast<int32_t>(quant_max)};
}

// Round half to even, as torch.round does, for |x| <= 2^22 (callers clamp first). Adding 1.5 * 2^23
// moves x into [2^23, 2^24), where the float spacing is 1, so the FPU's default rounding (to nearest,
// ties to even) does the work. Vectorizes on plain SSE2, unlike nearbyintf.
inline float round_half_even(float x) {
  // Needs IEEE semantics: the build never uses -ffast-math.
  const float magic = 12582912.0f;
  return (x + magic) - magic;
}

inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

inline float dequantize(int32_t q, const QParams& p) {
  return static_cast<float>(q - p.zero_point) * p.scale;
}

// Quantize x (already a float32 value of the float op) to the integer grid of p.
inline int32_t quantize(float x, const QParams& p) {
  float y = clampf(x * p.inv_scale, -4194304.0f, 4194304.0f);  // outside this, the clamp below decides
  y = round_half_even(y) + static_cast<float>(p.zero_point);
  y = clampf(y, static_cast<float>(p.quant_min), static_cast<float>(p.quant_max));
  return static_cast<int32_t>(y);
}

// Requantize an int32 accumulator whose real value is acc * multiplier_scale (multiplier = acc_scale /
// out_scale): round(acc * multiplier) + zero point, clamped. Used by the integer (accumulating) kernels.
inline int32_t requantize(int64_t acc, double multiplier, const QParams& out) {
  double y = static_cast<double>(acc) * multiplier;
  if (y < -4194304.0) y = -4194304.0;
  if (y > 4194304.0) y = 4194304.0;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52: the same trick in double
  double r = ((y + magic) - magic) + static_cast<double>(out.zero_point);
  if (r < out.quant_min) r = out.quant_min;
  if (r > out.quant_max) r = out.quant_max;
  return static_cast<int32_t>(r);
}

// Round to nearest, ties to even, in double (bias quantization), for |x| < 2^51.
inline int64_t round_half_even_d(double x) {
  const double magic = 6755399441055744.0;
  return static_cast<int64_t>((x + magic) - magic);
}

}  // namespace quantviz
