// Package half converts 16-bit floating-point values (IEEE binary16 and
// bfloat16), given by their bits, to float32: the one scalar definition that
// the ONNX codec (package onnx) and the runtime's kernels both widen with.
package half

import "math"

// ToFloat32 widens an IEEE 754 binary16 value, given by its bits, to float32.
// The conversion is exact; NaN payloads are kept.
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0: // ±0
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalize
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}

// BFloat16ToFloat32 widens a bfloat16 value, given by its bits (exact).
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
