package kernels

import "math"

// Vector kernels for whole multiples of 8 elements, set where the CPU has
// them (see mathf_amd64.go). They return true when some input needs the
// scalar path (NaN, or exp's argument above its clamp); the scalar loops
// below handle those and the tail.
var (
	vecExp         func(dst, src []float32) bool
	vecSigmoid     func(dst, src []float32) bool
	vecTanh        func(dst, src []float32) bool
	vecExpShiftSum func(dst, src []float32, m float32) float32
	// vecMax returns the maximum and whether any element is NaN.
	vecMax func(x []float32) (float32, bool)
)

// Max returns the maximum of x (NaN if any element is NaN); x is not
// empty.
func Max(x []float32) float32 {
	m := x[0]
	n := 0
	if vecMax != nil && len(x) >= 8 {
		n = len(x) &^ 7
		var nan bool
		if m, nan = vecMax(x[:n]); nan {
			return float32(math.NaN())
		}
	}
	for _, v := range x[n:] {
		if v > m || v != v {
			if v != v {
				return v
			}
			m = v
		}
	}
	return m
}

// vecLen is the length the vector kernel handles (a multiple of 8; 0 without
// a kernel).
func vecLen(have bool, dst, src []float32) int {
	if !have || len(dst) != len(src) {
		return 0
	}
	return len(src) &^ 7
}

// vectorized applies vec to the leading multiple of 8 and scalar to the rest
// and to every element vec flags (f64 is the float64 definition).
func vectorized(vec func(d, s []float32) bool, f64 func(float64) float64, d, s []float32, special func(float32) bool) {
	n := vecLen(vec != nil, d, s)
	if n > 0 && vec(d[:n], s[:n]) {
		for i, x := range s[:n] {
			if special(x) {
				d[i] = float32(f64(float64(x)))
			}
		}
	}
	for i := n; i < len(s); i++ {
		d[i] = float32(f64(float64(s[i])))
	}
}

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func isNaN32(x float32) bool { return x != x }

// Exp sets d[i] = exp(s[i]).
func Exp(d, s []float32) {
	vectorized(vecExp, math.Exp, d, s, func(x float32) bool { return !(x <= 88.3762626647949) })
}

// Sigmoid sets d[i] = 1/(1+exp(-s[i])).
func Sigmoid(d, s []float32) { vectorized(vecSigmoid, sigmoid64, d, s, isNaN32) }

// Tanh sets d[i] = tanh(s[i]).
func Tanh(d, s []float32) { vectorized(vecTanh, math.Tanh, d, s, isNaN32) }

// ExpShiftSum sets dst[i] = exp(src[i]-m) and returns their sum; m must be
// the maximum of src (so that no argument is positive) and not NaN.
func ExpShiftSum(dst, src []float32, m float32) float64 {
	n := vecLen(vecExpShiftSum != nil, dst, src)
	var s float64
	if n > 0 {
		s = float64(vecExpShiftSum(dst[:n], src[:n], m))
	}
	for i := n; i < len(src); i++ {
		e := float32(math.Exp(float64(src[i] - m)))
		dst[i] = e
		s += float64(e)
	}
	return s
}

// ScaleMaskMax, where the CPU allows, sets x[i] = x[i]/c + mask[i] (div) or
// x[i]·c + mask[i] for len(x) a multiple of 8 and returns the new maximum and
// whether any value is NaN; MulScalar multiplies x by c, and MulScalarTo sets
// o[i] = x[i]·c.
var (
	ScaleMaskMax func(x, mask []float32, c float32, div bool) (float32, bool)
	MulScalar    func(x []float32, c float32)
	MulScalarTo  func(o, x []float32, c float32)
)
