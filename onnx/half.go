package onnx

import (
	"math"

	"github.com/onnxslm/onnxslm/internal/half"
)

// Float16ToFloat32 widens an IEEE 754 binary16 value, given by its bits, to
// float32. The conversion is exact; NaN payloads are kept.
func Float16ToFloat32(h uint16) float32 { return half.ToFloat32(h) }

// Float32ToFloat16 narrows f to IEEE 754 binary16 bits, rounding to nearest
// with ties to even. Values too large become ±Inf, values too small ±0 or a
// subnormal; NaN stays a (quiet) NaN with the top of its payload.
func Float32ToFloat16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int32(bits>>23) & 0xff
	mant := bits & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign // below half the smallest subnormal: ±0
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || rem == mid && half&1 == 1 {
			half++ // may carry into the smallest normal: still right
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && half&1 == 1 {
		half++ // may carry into the exponent, up to Inf: still right
	}
	return sign | uint16(half)
}

// BFloat16ToFloat32 widens a bfloat16 value, given by its bits, to float32 (exact).
func BFloat16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBFloat16 narrows f to bfloat16 bits, rounding to nearest with ties
// to even; NaN stays a quiet NaN.
func Float32ToBFloat16(f float32) uint16 {
	bits := math.Float32bits(f)
	if bits&0x7fffffff > 0x7f800000 { // NaN
		return uint16(bits>>16) | 0x40
	}
	bits += 0x7fff + (bits>>16)&1
	return uint16(bits >> 16)
}
