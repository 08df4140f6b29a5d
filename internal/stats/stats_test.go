package stats

import (
	"math"
	"testing"
)

func TestStats(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name                 string
		a, b                 []float32
		maxAbs, diff, relMax float64
		relRMS               float64
		argmax               int
	}{
		{"empty", nil, nil, 0, 0, 0, 0, 0},
		{"equal", []float32{1, -2}, []float32{1, -2}, 2, 0, 0, 0, 0},
		{"scaled", []float32{2, 0}, []float32{1, -2}, 2, 2, 1, math.Sqrt(5.0 / 5), 0},
		{"zero reference", []float32{3, -4}, []float32{0, 0}, 0, 4, 4, 0, 0},
		{"first of equal maxima", []float32{5, 7, 7}, []float32{5, 7, 7}, 7, 0, 0, 0, 1},
		{"NaN", []float32{float32(nan), 1}, []float32{1, 1}, 1, nan, inf, nan, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, got, want float64) {
				t.Helper()
				if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("MaxAbs(b)", MaxAbs(tc.b), tc.maxAbs)
			check("MaxAbsDiff", MaxAbsDiff(tc.a, tc.b), tc.diff)
			check("RelMax", RelMax(tc.a, tc.b), tc.relMax)
			check("RelRMS", RelRMS(tc.a, tc.b), tc.relRMS)
			if got := Argmax(tc.a); got != tc.argmax {
				t.Errorf("Argmax = %d, want %d", got, tc.argmax)
			}
		})
	}
}

func TestMixedTypes(t *testing.T) {
	got, want := []float32{1, 2.5}, []float64{1, 2}
	if d := MaxAbsDiff(got, want); d != 0.5 {
		t.Errorf("MaxAbsDiff = %v, want 0.5", d)
	}
	if r := RelMax(got, want); r != 0.25 {
		t.Errorf("RelMax = %v, want 0.25", r)
	}
}

func TestMeanVar(t *testing.T) {
	for _, tc := range []struct {
		v          []float64
		mean, vari float64
	}{
		{[]float64{2}, 2, 0},
		{[]float64{1, 3}, 2, 1},
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, 4},
	} {
		if m, v := MeanVar(tc.v); m != tc.mean || v != tc.vari {
			t.Errorf("MeanVar(%v) = %v, %v, want %v, %v", tc.v, m, v, tc.mean, tc.vari)
		}
	}
	if m, v := MeanVar([]float32{1, 2}); m != 1.5 || v != 0.25 {
		t.Errorf("MeanVar(float32 1, 2) = %v, %v, want 1.5, 0.25", m, v)
	}
	if m, v := MeanVar([]float64(nil)); !math.IsNaN(m) || !math.IsNaN(v) {
		t.Errorf("MeanVar(nil) = %v, %v, want NaN, NaN", m, v)
	}
}
