package repair

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/stats"
)

// synthetic returns n samples x (in features) and y = x·M + c (+ noise).
func synthetic(r *rand.Rand, n, in, out int, m, c []float64, noise float64) (x, y []float32) {
	x = make([]float32, n*in)
	y = make([]float32, n*out)
	for s := 0; s < n; s++ {
		for i := 0; i < in; i++ {
			x[s*in+i] = float32(r.NormFloat64() * (1 + float64(i%3)))
		}
		for j := 0; j < out; j++ {
			v := c[j] + noise*r.NormFloat64()
			for i := 0; i < in; i++ {
				v += float64(x[s*in+i]) * m[i*out+j]
			}
			y[s*out+j] = float32(v)
		}
	}
	return x, y
}

func randVec(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

// solveNear solves p without a ridge and checks that the fit is within tol
// of the map m and offset c that made its data.
func solveNear(t *testing.T, p *Problem, m, c []float64, tol float64) *Map {
	t.Helper()
	fit, err := p.Solve(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := stats.MaxAbsDiff(fit.Matrix, m); d > tol {
		t.Errorf("matrix: off by %g, want ≤ %g", d, tol)
	}
	if d := stats.MaxAbsDiff(fit.Offset, c); d > tol {
		t.Errorf("offset: off by %g, want ≤ %g", d, tol)
	}
	return fit
}

// TestRecoversKnownMap: without a ridge, least squares on noiseless synthetic
// data recovers the map that made it, with and without an offset, square or not.
func TestRecoversKnownMap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out int
		offset  bool
	}{
		{"square", 12, 12, false},
		{"square with offset", 12, 12, true},
		{"wide", 5, 9, true},
		{"narrow", 9, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			m := randVec(r, tc.in*tc.out)
			c := make([]float64, tc.out)
			if tc.offset {
				c = randVec(r, tc.out)
			}
			p, err := NewProblem(tc.in, tc.out, tc.offset)
			if err != nil {
				t.Fatal(err)
			}
			for b := 0; b < 4; b++ { // added in batches
				x, y := synthetic(r, 50, tc.in, tc.out, m, c, 0)
				if err := p.Add(x, y); err != nil {
					t.Fatal(err)
				}
			}
			if got := p.Samples(); got != 200 {
				t.Errorf("samples: got %d, want 200", got)
			}
			fit := solveNear(t, p, m, c, 1e-4)
			res, err := p.Residual(fit)
			if err != nil {
				t.Fatal(err)
			}
			if res > 1e-8 {
				t.Errorf("residual: got %g, want ~0", res)
			}
		})
	}
}

// TestRidgePullsTowardPrior: a huge ridge returns the prior (the identity by
// default); a moderate one lies between the prior and the least-squares fit.
func TestRidgePullsTowardPrior(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const d = 8
	m := randVec(r, d*d)
	x, y := synthetic(r, 400, d, d, m, make([]float64, d), 0.1)
	p, _ := NewProblem(d, d, false)
	if err := p.Add(x, y); err != nil {
		t.Fatal(err)
	}
	id := make([]float64, d*d)
	for i := 0; i < d; i++ {
		id[i*d+i] = 1
	}
	huge, err := p.Solve(Options{Ridge: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	if dd := stats.MaxAbsDiff(huge.Matrix, id); dd > 1e-6 {
		t.Errorf("ridge 1e9 toward the identity: got off by %g, want ≤ 1e-6", dd)
	}
	zero := make([]float64, d*d)
	toZero, err := p.Solve(Options{Ridge: 1e9, Prior: zero})
	if err != nil {
		t.Fatal(err)
	}
	if dd := stats.MaxAbsDiff(toZero.Matrix, zero); dd > 1e-6 {
		t.Errorf("ridge 1e9 toward zero: got off by %g, want ≤ 1e-6", dd)
	}
	ls, _ := p.Solve(Options{})
	mid, _ := p.Solve(Options{Ridge: 1})
	dLS, dID := stats.MaxAbsDiff(mid.Matrix, ls.Matrix), stats.MaxAbsDiff(mid.Matrix, id)
	if dLS == 0 || dID == 0 || dLS > stats.MaxAbsDiff(ls.Matrix, id) || dID > stats.MaxAbsDiff(ls.Matrix, id) {
		t.Errorf("ridge 1: got %g from least squares and %g from the prior, want both inside (0, %g)", dLS, dID, stats.MaxAbsDiff(ls.Matrix, id))
	}
	// The ridge is relative to the data's scale: scaling x by 10 (and y with it)
	// gives the same map.
	p10, _ := NewProblem(d, d, false)
	x10, y10 := make([]float32, len(x)), make([]float32, len(y))
	for i := range x {
		x10[i], y10[i] = 10*x[i], 10*y[i]
	}
	if err := p10.Add(x10, y10); err != nil {
		t.Fatal(err)
	}
	mid10, _ := p10.Solve(Options{Ridge: 1})
	if dd := stats.MaxAbsDiff(mid10.Matrix, mid.Matrix); dd > 1e-6 {
		t.Errorf("scaled data: got a map off by %g, want the same map", dd)
	}
}

// TestResidualAndApply: Residual from the normal equations equals the mean
// squared error computed directly with Apply.
func TestResidualAndApply(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const in, out = 6, 4
	m := randVec(r, in*out)
	c := randVec(r, out)
	x, y := synthetic(r, 300, in, out, m, c, 0.5)
	p, _ := NewProblem(in, out, true)
	if err := p.Add(x, y); err != nil {
		t.Fatal(err)
	}
	fit, err := p.Solve(Options{Ridge: 0.1, Prior: make([]float64, in*out)})
	if err != nil {
		t.Fatal(err)
	}
	pred := fit.Apply(x)
	var want float64
	for i := range y {
		d := float64(pred[i]) - float64(y[i])
		want += d * d
	}
	want /= float64(len(y))
	got, err := p.Residual(fit)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-6*max(1, want) {
		t.Errorf("residual: got %g, want %g", got, want)
	}
	m32, c32 := fit.Float32()
	if len(m32) != in*out || len(c32) != out || m32[3] != float32(fit.Matrix[3]) {
		t.Errorf("Float32: got %d and %d values, want %d and %d", len(m32), len(c32), in*out, out)
	}
}

func TestErrors(t *testing.T) {
	if _, err := NewProblem(0, 3, false); err == nil {
		t.Error("NewProblem(0, 3): want an error")
	}
	p, _ := NewProblem(3, 2, false)
	if _, err := p.Solve(Options{}); err == nil || !strings.Contains(err.Error(), "no samples") {
		t.Errorf("Solve with no samples: got %v, want 'no samples'", err)
	}
	if err := p.Add(make([]float32, 6), make([]float32, 6)); err == nil {
		t.Error("Add of 2 inputs rows and 3 target rows: want an error")
	}
	if err := p.Add(make([]float32, 6), make([]float32, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Solve(Options{Ridge: -1}); err == nil {
		t.Error("negative ridge: want an error")
	}
	if _, err := p.Solve(Options{Prior: make([]float64, 5)}); err == nil {
		t.Error("prior of the wrong size: want an error")
	}
	// All-zero features: singular without a ridge, fine with one.
	if _, err := p.Solve(Options{Ridge: 0.1}); err != nil {
		t.Errorf("zero features with a ridge: got %v, want a solution", err)
	}
}
