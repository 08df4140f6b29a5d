package quant

import "math"

// Int8 is a per-tensor symmetric int8 quantization of a weight, as
// onnxruntime's quantizer computes it for QInt8 weights (quant_utils:
// compute_scale_zp with symmetric=True and the range [-127, 127],
// quantize_nparray rounding half to even): scale = 2·max|w| / 254, zero point 0.
type Int8 struct {
	Values []int8
	Scale  float32
}

// QuantizeInt8 quantizes w per tensor, symmetric.
func QuantizeInt8(w []float32) Int8 {
	var absmax float32
	for _, v := range w {
		absmax = max(absmax, abs32(v))
	}
	scale := (absmax + absmax) / 254
	q := Int8{Values: make([]int8, len(w)), Scale: scale}
	if scale == 0 {
		return q
	}
	for i, v := range w {
		q.Values[i] = int8(min(max(math.RoundToEven(float64(v/scale)), -127), 127))
	}
	return q
}

// Dequantize returns the float values q stands for.
func (q Int8) Dequantize() []float32 {
	return DequantizeInt8(q.Values, q.Scale, 0)
}

// DequantizeInt8 returns (v − zeroPoint)·scale for every v.
func DequantizeInt8(values []int8, scale float32, zeroPoint int8) []float32 {
	out := make([]float32, len(values))
	for i, v := range values {
		out[i] = float32(int(v)-int(zeroPoint)) * scale
	}
	return out
}
