package onnx

import "github.com/onnxslm/onnxslm/internal/half"

// Float16ToFloat32 widens an IEEE 754 binary16 value, given by its bits, to
// float32. The conversion is exact; NaN payloads are kept.
func Float16ToFloat32(h uint16) float32 { return half.ToFloat32(h) }

// Float32ToFloat16 narrows f to IEEE 754 binary16 bits, rounding to nearest
// with ties to even. Values too large become ±Inf, values too small ±0 or a
// subnormal; NaN stays a (quiet) NaN with the top of its payload.
func Float32ToFloat16(f float32) uint16 { return half.FromFloat32(f) }

// BFloat16ToFloat32 widens a bfloat16 value, given by its bits, to float32 (exact).
func BFloat16ToFloat32(h uint16) float32 { return half.BFloat16ToFloat32(h) }

// Float32ToBFloat16 narrows f to bfloat16 bits, rounding to nearest with ties
// to even; NaN stays a quiet NaN.
func Float32ToBFloat16(f float32) uint16 { return half.BFloat16FromFloat32(f) }
