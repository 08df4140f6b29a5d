// Package half converts 16-bit floating-point values (IEEE binary16 and
// bfloat16) to and from float32: the one definition that the ONNX codec
// (package onnx) and the runtime's kernels both use, one value at a time
// (ToFloat32, FromFloat32, …) or a slice at a time (Widen, Narrow, …), the
// slice forms bitwise equal to the scalar ones.
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

// FromFloat32 narrows f to IEEE 754 binary16 bits, rounding to nearest with
// ties to even. Values too large become ±Inf, values too small ±0 or a
// subnormal; NaN stays a (quiet) NaN with the top of its payload.
func FromFloat32(f float32) uint16 {
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
		h := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || rem == mid && h&1 == 1 {
			h++ // may carry into the smallest normal: still right
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // may carry into the exponent, up to Inf: still right
	}
	return sign | uint16(h)
}

// BFloat16FromFloat32 narrows f to bfloat16 bits, rounding to nearest with
// ties to even; NaN stays a quiet NaN.
func BFloat16FromFloat32(f float32) uint16 {
	bits := math.Float32bits(f)
	if bits&0x7fffffff > 0x7f800000 { // NaN
		return uint16(bits>>16) | 0x40
	}
	bits += 0x7fff + (bits>>16)&1
	return uint16(bits >> 16)
}
