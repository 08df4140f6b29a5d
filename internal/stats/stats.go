// Package stats holds the small numeric helpers the code and its tests
// compare and summarise float slices with, each computed in float64.
package stats

import "math"

// Float is the element type of the slices the helpers take.
type Float interface{ ~float32 | ~float64 }

// MaxAbs returns max |v[i]| (0 for no values; NaN if a value is NaN).
func MaxAbs[F Float](v []F) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// MaxAbsDiff returns max |a[i] − b[i]| over b's length, the difference taken
// in float64 (0 for no values; NaN if a difference is NaN). a must be at
// least as long as b.
func MaxAbsDiff[A, B Float](a []A, b []B) float64 {
	var d float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// RelMax returns max |a − b| / max |b|: MaxAbsDiff relative to b's largest
// magnitude, the difference itself when b is all zero, and +Inf when a
// difference is NaN (so that no threshold passes it).
func RelMax[A, B Float](a []A, b []B) float64 {
	d, s := MaxAbsDiff(a, b), MaxAbs(b)
	switch {
	case math.IsNaN(d) || math.IsNaN(s):
		return math.Inf(1)
	case s == 0:
		return d
	}
	return d / s
}

// RelRMS returns ‖a − b‖ / ‖b‖ (Frobenius norms, summed in index order), 0
// when b is all zero. a must be at least as long as b.
func RelRMS[F Float](a, b []F) float64 {
	var d, s float64
	for i := range b {
		e := float64(a[i]) - float64(b[i])
		d += e * e
		s += float64(b[i]) * float64(b[i])
	}
	if s == 0 {
		return 0
	}
	return math.Sqrt(d / s)
}

// Argmax returns the index of the first largest value (0 for none).
func Argmax[F Float](v []F) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// MeanVar returns the mean of v and its population variance (the mean
// squared deviation from it, a second pass); NaN for no values.
func MeanVar[F Float](v []F) (mean, variance float64) {
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for _, x := range v {
		d := float64(x) - mean
		variance += d * d
	}
	return mean, variance / float64(len(v))
}
