package similarity

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// outer returns the linear Gram matrix x xᵀ of a one-feature sample.
func outer(x []float64) []float64 {
	n := len(x)
	g := make([]float64, n*n)
	for i := range x {
		for j := range x {
			g[i*n+j] = x[i] * x[j]
		}
	}
	return g
}

func close(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// The expected values are worked out by hand in the comments.
func TestHSICByHand(t *testing.T) {
	x := []float64{0, 1, 2, 3}
	xc := []float64{-1.5, -0.5, 0.5, 1.5} // x centered
	y := []float64{0, 0, 1, 1}
	for _, tc := range []struct {
		name             string
		k, l             []float64
		biased, unbiased float64
	}{
		// Biased: HKH = xc xcᵀ, tr(KHLH) = (sum xc²)² = 5² = 25, / (n-1)² = 25/9.
		// Unbiased: off-diagonal products x_i x_j (i<j): 0,0,0,2,3,6.
		// tr(K~L~) = 2(4+9+36) = 98; 1ᵀK~1 = 2(2+3+6) = 22, 22²/((n-1)(n-2)) = 484/6;
		// row sums of K~ = 0,5,8,9, 1ᵀK~L~1 = 0+25+64+81 = 170, · 2/(n-2) = 170.
		// (98 + 484/6 - 170) / (n(n-3) = 4) = 13/6.
		{"x,x", outer(x), outer(x), 25.0 / 9, 13.0 / 6},
		// Centered features: off-diagonal products .75,-.75,-2.25,-.25,-.75,.75;
		// tr = 2(7.375) = 14.75; 1ᵀK~1 = -5, 25/6; row sums -2.25,-.25,-.25,-2.25,
		// sum of squares 10.25; (14.75 + 25/6 - 10.25)/4 = 13/6 again: the unbiased
		// estimator ignores a shift of the features.
		{"xc,xc", outer(xc), outer(xc), 25.0 / 9, 13.0 / 6},
		// Biased: yc = (-.5,-.5,.5,.5), tr(HKH HLH) = (sum xc·yc)² = 2² = 4, /9.
		// Unbiased: L~ has only L_23 = L_32 = 1: tr(K~L~) = 2·6·1 = 12;
		// 1ᵀK~1·1ᵀL~1/6 = 22·2/6 = 22/3; row sums of L~ = 0,0,1,1, so
		// 1ᵀK~L~1 = 8+9 = 17; (12 + 22/3 - 17)/4 = 7/12.
		{"x,y", outer(x), outer(y), 4.0 / 9, 7.0 / 12},
	} {
		b, err := HSICBiased(tc.k, tc.l, 4)
		if err != nil || !close(b, tc.biased, 1e-14) {
			t.Errorf("%s: HSICBiased = %v, %v, want %v", tc.name, b, err, tc.biased)
		}
		u, err := HSICUnbiased(tc.k, tc.l, 4)
		if err != nil || !close(u, tc.unbiased, 1e-14) {
			t.Errorf("%s: HSICUnbiased = %v, %v, want %v", tc.name, u, err, tc.unbiased)
		}
	}
	// The same through the CKA accumulator (feature centering, U-centering).
	m, _ := NewCKAMatrix(2, LinearKernel)
	if err := m.Add(4, [][]float32{{0, 1, 2, 3}, {0, 0, 1, 1}}); err != nil {
		t.Fatal(err)
	}
	h := m.HSIC()
	for _, c := range []struct {
		a, b int
		want float64
	}{{0, 0, 13.0 / 6}, {0, 1, 7.0 / 12}, {1, 0, 7.0 / 12}} {
		if !close(h[c.a][c.b], c.want, 1e-14) {
			t.Errorf("CKAMatrix.HSIC()[%d][%d] = %v, want %v", c.a, c.b, h[c.a][c.b], c.want)
		}
	}
	// HSIC(y,y): L~ row sums 0,0,1,1: tr = 2, 1ᵀL~1 = 2 → 4/6, 1ᵀL~L~1 = 2:
	// (2 + 2/3 - 2)/4 = 1/6. CKA = (7/12)/sqrt(13/6 · 1/6) = 7/(2 sqrt 13).
	want := 7 / (2 * math.Sqrt(13))
	if got := m.Matrix()[0][1]; !close(got, want, 1e-14) {
		t.Errorf("CKA = %v, want 7/(2√13) = %v", got, want)
	}
}

func TestHSICErrors(t *testing.T) {
	if _, err := HSICUnbiased(make([]float64, 9), make([]float64, 9), 3); err == nil || !strings.Contains(err.Error(), "at least 4") {
		t.Errorf("HSICUnbiased with n=3: got %v, want an error asking for 4 samples", err)
	}
	if _, err := HSICBiased(make([]float64, 9), make([]float64, 8), 3); err == nil || !strings.Contains(err.Error(), "want 3×3") {
		t.Errorf("HSICBiased with a short L: got %v", err)
	}
}

func randMatrix(r *rand.Rand, n, d int) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// orthogonal returns a random d×d orthogonal matrix (Gram-Schmidt in float64).
func orthogonal(r *rand.Rand, d int) [][]float64 {
	q := make([][]float64, d)
	for i := range q {
		for {
			v := make([]float64, d)
			for k := range v {
				v[k] = r.NormFloat64()
			}
			for j := 0; j < i; j++ {
				var p float64
				for k := range v {
					p += v[k] * q[j][k]
				}
				for k := range v {
					v[k] -= p * q[j][k]
				}
			}
			var norm float64
			for _, e := range v {
				norm += e * e
			}
			if norm > 1e-6 {
				norm = math.Sqrt(norm)
				for k := range v {
					v[k] /= norm
				}
				q[i] = v
				break
			}
		}
	}
	return q
}

// transform returns x (n×d) · q, optionally scaled and shifted.
func transform(x []float32, n, d int, q [][]float64, scale float64, shift []float64) []float32 {
	out := make([]float32, n*d)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			var s float64
			for k := 0; k < d; k++ {
				s += float64(x[i*d+k]) * q[k][j]
			}
			if shift != nil {
				s += shift[j]
			}
			out[i*d+j] = float32(s * scale)
		}
	}
	return out
}

func identity(d int) [][]float64 {
	q := make([][]float64, d)
	for i := range q {
		q[i] = make([]float64, d)
		q[i][i] = 1
	}
	return q
}

func TestCKAInvariances(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, d = 40, 12
	x := randMatrix(r, n, d)
	z := randMatrix(r, n, d)
	for i := range z { // z depends on x, so CKA(x, z) is far from 0 and 1
		z[i] = x[i]*0.6 + z[i]
	}
	q := orthogonal(r, d)
	shift := make([]float64, d)
	for i := range shift {
		shift[i] = 50 * r.NormFloat64()
	}
	for _, k := range []Kernel{LinearKernel, RBFMedian(0), RBFMedian(2)} {
		self, err := CKA(x, x, n, k)
		if err != nil || !close(self, 1, 1e-12) {
			t.Errorf("%v: CKA(X, X) = %v, %v, want 1", k, self, err)
		}
		base, _ := CKA(x, z, n, k)
		if !(base > 0.1 && base < 0.99) {
			t.Errorf("%v: CKA(X, Z) = %v, want a value well inside (0, 1)", k, base)
		}
		for _, tr := range []struct {
			name  string
			y     []float32
			bound float64
		}{
			{"isotropic scaling ×3.7", transform(x, n, d, identity(d), 3.7, nil), 1e-6},
			{"orthogonal", transform(x, n, d, q, 1, nil), 1e-6},
			{"orthogonal, scaled ×0.01, shifted", transform(x, n, d, q, 0.01, shift), 1e-5},
		} {
			got, _ := CKA(tr.y, z, n, k)
			if !close(got, base, tr.bound) {
				t.Errorf("%v: %s: CKA(T(X), Z) = %v, want CKA(X, Z) = %v", k, tr.name, got, base)
			}
			self, _ := CKA(tr.y, x, n, k)
			if !close(self, 1, tr.bound) {
				t.Errorf("%v: %s: CKA(T(X), X) = %v, want 1", k, tr.name, self)
			}
		}
	}
	// A fixed bandwidth is not scale invariant: a check that the kernel is used.
	a, _ := CKA(x, z, n, RBFKernel(1))
	b, _ := CKA(transform(x, n, d, identity(d), 10, nil), z, n, RBFKernel(1))
	if close(a, b, 1e-3) {
		t.Errorf("RBF(sigma=1): CKA unchanged (%v) by scaling X ×10, want a change", a)
	}
}

// TestUCenteringMatchesSong checks the accumulator's U-centered inner product
// against the direct formula of Song et al. on random asymmetric-free Grams.
func TestUCenteringMatchesSong(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{4, 5, 17, 64} {
		for _, k := range []Kernel{LinearKernel, RBFMedian(0.5)} {
			x, y := randMatrix(r, n, 7), randMatrix(r, n, 3)
			kx, _, _ := Gram(x, n, k)
			ky, _, _ := Gram(y, n, k)
			want, err := HSICUnbiased(kx, ky, n)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := NewCKAMatrix(2, k)
			if err := m.Add(n, [][]float32{x, y}); err != nil {
				t.Fatal(err)
			}
			if got := m.HSIC()[0][1]; !close(got, want, 1e-12) {
				t.Errorf("n=%d %v: U-centered HSIC = %v, Song's formula %v", n, k, got, want)
			}
		}
	}
}

func TestMedianHeuristic(t *testing.T) {
	// Points 0, 1, 3, 7 on a line: pairwise distances 1,3,7,2,6,4, sorted
	// 1,2,3,4,6,7: the median is (3+4)/2 = 3.5.
	x := []float32{0, 1, 3, 7}
	for _, tc := range []struct {
		k         Kernel
		wantSigma float64
	}{
		{RBFMedian(0), 3.5},
		{RBFMedian(2), 7},
		{RBFKernel(0.25), 0.25},
	} {
		g, sigma, err := Gram(x, 4, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		if sigma != tc.wantSigma {
			t.Errorf("%v: sigma = %v, want %v", tc.k, sigma, tc.wantSigma)
		}
		// K[0][3] = exp(-7² / (2 sigma²)).
		if want := math.Exp(-49 / (2 * tc.wantSigma * tc.wantSigma)); !close(g[3], want, 1e-15) || g[0] != 1 {
			t.Errorf("%v: K[0][3] = %v, K[0][0] = %v, want %v and 1", tc.k, g[3], g[0], want)
		}
	}
	// Median of an odd number of distances: points 0, 1, 3 give 1, 3, 2.
	if _, sigma, _ := Gram([]float32{0, 1, 3}, 3, RBFMedian(0)); sigma != 2 {
		t.Errorf("median of 1,3,2 = %v, want 2", sigma)
	}
	// All points equal: sigma 0, the limit kernel is all ones, CKA undefined.
	g, sigma, _ := Gram(make([]float32, 8), 4, RBFMedian(0))
	if sigma != 0 || g[1] != 1 {
		t.Errorf("coinciding points: sigma %v, K[0][1] %v, want 0 and 1", sigma, g[1])
	}
	if c, _ := CKA(make([]float32, 8), x, 4, RBFMedian(0)); !math.IsNaN(c) {
		t.Errorf("CKA of a constant representation = %v, want NaN", c)
	}
}

func TestKernelErrors(t *testing.T) {
	for _, k := range []Kernel{{Kind: RBF, Sigma: -1}, {Kind: RBF, Factor: math.NaN()}, {Kind: 7}} {
		if _, err := NewCKAMatrix(2, k); err == nil {
			t.Errorf("NewCKAMatrix(2, %+v) accepted a bad kernel", k)
		}
	}
	m, _ := NewCKAMatrix(2, LinearKernel)
	for _, tc := range []struct {
		n   int
		mb  [][]float32
		msg string
	}{
		{4, [][]float32{make([]float32, 8)}, "minibatch has 1 layers, the CKA matrix 2"},
		{3, [][]float32{make([]float32, 6), make([]float32, 6)}, "at least 4"},
		{4, [][]float32{make([]float32, 8), make([]float32, 9)}, "layer 1: similarity: 9 values do not split into 4 rows"},
	} {
		if err := m.Add(tc.n, tc.mb); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Add(%d, ...): got %v, want an error containing %q", tc.n, err, tc.msg)
		}
	}
	if m.Batches() != 0 || m.Matrix() != nil {
		t.Errorf("failed Adds changed the accumulator: %d batches", m.Batches())
	}
}

// TestMinibatchMean checks that the matrix combines minibatches by averaging
// HSIC values (Nguyen et al.), not by averaging per-batch CKA values.
func TestMinibatchMean(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n = 10
	m, _ := NewCKAMatrix(2, LinearKernel)
	var xy, xx, yy float64
	for b := 0; b < 3; b++ {
		x, y := randMatrix(r, n, 4), randMatrix(r, n, 5)
		for i := range y[:n*4] {
			y[i] += x[i] * float32(b)
		}
		kx, _, _ := Gram(x, n, LinearKernel)
		ky, _, _ := Gram(y, n, LinearKernel)
		h, _ := HSICUnbiased(kx, ky, n)
		hx, _ := HSICUnbiased(kx, kx, n)
		hy, _ := HSICUnbiased(ky, ky, n)
		xy, xx, yy = xy+h, xx+hx, yy+hy
		if err := m.Add(n, [][]float32{x, y}); err != nil {
			t.Fatal(err)
		}
	}
	want := (xy / 3) / math.Sqrt(xx/3*yy/3)
	if got := m.Matrix()[1][0]; !close(got, want, 1e-12) {
		t.Errorf("CKA over 3 minibatches = %v, want %v", got, want)
	}
	if m.Batches() != 3 || m.Samples() != 3*n {
		t.Errorf("Batches, Samples = %d, %d, want 3, %d", m.Batches(), m.Samples(), 3*n)
	}
}

// TestDeterministic checks bit-identical results with 1 and several workers.
func TestDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, d, layers = 70, 33, 4
	mb := make([][]float32, layers)
	for l := range mb {
		mb[l] = randMatrix(r, n, d)
	}
	run := func(procs int) [][]float64 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		m, _ := NewCKAMatrix(layers, RBFMedian(0))
		m.Add(n, mb)
		m.Add(n, mb)
		return m.Matrix()
	}
	a, b := run(1), run(4)
	for i := range a {
		for j := range a[i] {
			if math.Float64bits(a[i][j]) != math.Float64bits(b[i][j]) {
				t.Fatalf("[%d][%d]: %v with GOMAXPROCS=1, %v with 4", i, j, a[i][j], b[i][j])
			}
		}
	}
}

func TestCosineAndBlockInfluence(t *testing.T) {
	for _, tc := range []struct {
		a, b []float32
		want float64
	}{
		{[]float32{1, 0}, []float32{1, 1}, 1 / math.Sqrt2},
		{[]float32{1, 2, 3}, []float32{2, 4, 6}, 1},
		{[]float32{1, 2, 3}, []float32{-1, -2, -3}, -1},
		{[]float32{1, 0, 0}, []float32{0, 5, 0}, 0},
		{[]float32{0, 0}, []float32{1, 1}, 0},
		// |a|² = 1e-30 is far below float32's range for a sum of squares.
		{[]float32{1e-15, 0}, []float32{1e-15, 1e-15}, 1 / math.Sqrt2},
	} {
		got, err := Cosine(tc.a, tc.b)
		if err != nil || !close(got, tc.want, 1e-12) {
			t.Errorf("Cosine(%v, %v) = %v, %v, want %v", tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := Cosine([]float32{1}, []float32{1, 2}); err == nil {
		t.Error("Cosine of different lengths: no error")
	}
	// Two tokens of width 2: cosines 1/√2 and -1; BI = 1 - (1/√2 - 1)/2.
	in := []float32{1, 0, 1, 1}
	out := []float32{1, 1, -2, -2}
	want := 1 - (1/math.Sqrt2-1)/2
	if got, err := BlockInfluence(in, out, 2); err != nil || !close(got, want, 1e-12) {
		t.Errorf("BlockInfluence = %v, %v, want %v", got, err, want)
	}
	var acc BlockInfluenceMean
	acc.Add(in[:2], out[:2], 2)
	acc.Add(in[2:], out[2:], 2)
	if got := acc.Value(); !close(got, want, 1e-12) || acc.Tokens() != 2 {
		t.Errorf("BlockInfluenceMean over two sequences = %v (%d tokens), want %v", got, acc.Tokens(), want)
	}
	if _, err := BlockInfluence(in, out[:3], 2); err == nil {
		t.Error("BlockInfluence of mismatched shapes: no error")
	}
}

// BenchmarkCKAMatrixAdd measures one minibatch: llama8's shape (9 values of
// 128 tokens × 128) and a larger one (32 layers of 512 tokens × 1024).
func BenchmarkCKAMatrixAdd(b *testing.B) {
	for _, c := range []struct{ layers, n, d int }{{8, 128, 128}, {32, 512, 1024}} {
		for _, k := range []Kernel{LinearKernel, RBFMedian(0)} {
			b.Run(fmt.Sprintf("L%d_n%d_d%d_%v", c.layers, c.n, c.d, k.Kind), func(b *testing.B) {
				r := rand.New(rand.NewPCG(9, 10))
				mb := make([][]float32, c.layers)
				for l := range mb {
					mb[l] = randMatrix(r, c.n, c.d)
				}
				m, _ := NewCKAMatrix(c.layers, k)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := m.Add(c.n, mb); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
