// Package similarity measures how alike two layers' representations are:
// HSIC (biased and unbiased), minibatch CKA with linear or RBF kernels,
// cosine similarity and Block Influence. All sums are accumulated in float64.
package similarity

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
)

// KernelKind selects the kernel of a Gram matrix.
type KernelKind int

const (
	// Linear is k(x, y) = <x, y>.
	Linear KernelKind = iota
	// RBF is k(x, y) = exp(-|x - y|^2 / (2 sigma^2)).
	RBF
)

func (k KernelKind) String() string {
	switch k {
	case Linear:
		return "linear"
	case RBF:
		return "rbf"
	}
	return fmt.Sprintf("KernelKind(%d)", int(k))
}

// Kernel is a kernel with its parameters.
type Kernel struct {
	Kind KernelKind
	// Sigma is the RBF bandwidth. 0 selects the median heuristic: for each
	// Gram matrix (one layer, one minibatch), sigma = Factor * the median of
	// the Euclidean distances |x_i - x_j| over the n(n-1)/2 pairs i < j (for
	// an even number of pairs, the mean of the two middle distances).
	Sigma float64
	// Factor multiplies the median distance; 0 means 1.
	Factor float64
}

// LinearKernel is the linear kernel.
var LinearKernel = Kernel{Kind: Linear}

// RBFKernel returns an RBF kernel with a fixed bandwidth sigma > 0.
func RBFKernel(sigma float64) Kernel { return Kernel{Kind: RBF, Sigma: sigma} }

// RBFMedian returns an RBF kernel whose bandwidth is factor times the median
// pairwise distance of each minibatch (factor 0 means 1).
func RBFMedian(factor float64) Kernel { return Kernel{Kind: RBF, Factor: factor} }

func (k Kernel) String() string {
	switch {
	case k.Kind == Linear:
		return "linear"
	case k.Kind == RBF && k.Sigma > 0:
		return fmt.Sprintf("rbf(sigma=%g)", k.Sigma)
	case k.Kind == RBF:
		return fmt.Sprintf("rbf(sigma=%g*median distance)", k.factor())
	}
	return k.Kind.String()
}

func (k Kernel) factor() float64 {
	if k.Factor == 0 {
		return 1
	}
	return k.Factor
}

func (k Kernel) validate() error {
	switch k.Kind {
	case Linear:
		return nil
	case RBF:
		if k.Sigma < 0 || math.IsNaN(k.Sigma) || math.IsInf(k.Sigma, 0) {
			return fmt.Errorf("similarity: RBF bandwidth %g: want sigma > 0, or 0 for the median heuristic", k.Sigma)
		}
		if k.Factor < 0 || math.IsNaN(k.Factor) || math.IsInf(k.Factor, 0) {
			return fmt.Errorf("similarity: RBF median factor %g: want > 0 (0 means 1)", k.Factor)
		}
		return nil
	}
	return fmt.Errorf("similarity: unknown kernel kind %d", int(k.Kind))
}

// checkShape checks that x holds n rows and returns the row width d.
func checkShape(x []float32, n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("similarity: %d samples, want at least 1", n)
	}
	if len(x)%n != 0 {
		return 0, fmt.Errorf("similarity: %d values do not split into %d rows", len(x), n)
	}
	return len(x) / n, nil
}

// Gram returns the n×n kernel matrix (row-major) of the n rows of x
// (row-major, n×d), computed in float64. For the linear kernel the features
// are centered first (column means subtracted): this leaves every centered
// HSIC unchanged and avoids cancellation when the rows share a large mean.
// It also returns the bandwidth used (0 for the linear kernel).
func Gram(x []float32, n int, k Kernel) ([]float64, float64, error) {
	if err := k.validate(); err != nil {
		return nil, 0, err
	}
	d, err := checkShape(x, n)
	if err != nil {
		return nil, 0, err
	}
	g, sigma, _ := computeGram(x, n, d, k, nil, nil)
	return g, sigma, nil
}

// computeGram computes the Gram matrix of x (n×d) under k into g (allocated
// when shorter than n×n), using buf for the centered float64 copy of x; it
// returns the matrix, the bandwidth and the buffer for reuse.
func computeGram(x []float32, n, d int, k Kernel, g, buf []float64) ([]float64, float64, []float64) {
	c := centered(x, n, d, buf)
	if cap(g) < n*n {
		g = make([]float64, n*n)
	}
	g = g[:n*n]
	if k.Kind == Linear {
		parallelRows(n, func(i int) { dotRow(g, c, n, d, i) })
		return g, 0, c
	}
	parallelRows(n, func(i int) { sqDistRow(g, c, n, d, i) })
	sigma := k.Sigma
	if sigma == 0 {
		sigma = k.factor() * medianDistance(g, n)
	}
	rbfFromSqDist(g, sigma)
	return g, sigma, c
}

// centered returns x (n×d) as float64 with column means subtracted, reusing
// buf when it is large enough.
func centered(x []float32, n, d int, buf []float64) []float64 {
	if cap(buf) < n*d {
		buf = make([]float64, n*d)
	}
	c := buf[:n*d]
	mean := make([]float64, d)
	for i := 0; i < n; i++ {
		row := x[i*d : (i+1)*d]
		for j, v := range row {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		row, out := x[i*d:(i+1)*d], c[i*d:(i+1)*d]
		for j, v := range row {
			out[j] = float64(v) - mean[j]
		}
	}
	return c
}

// parallelRows calls f(i) for i in [0, n), spread over GOMAXPROCS workers.
// Each row is computed by one call in a fixed order, so results do not
// depend on the number of workers.
func parallelRows(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 || n < 16 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// dotRow fills g[i][j] and g[j][i] for j >= i with <c_i, c_j>.
func dotRow(g, c []float64, n, d, i int) {
	a := c[i*d : (i+1)*d]
	for j := i; j < n; j++ {
		v := dot(a, c[j*d:(j+1)*d])
		g[i*n+j] = v
		g[j*n+i] = v
	}
}

// sqDistRow fills g[i][j] and g[j][i] for j >= i with |c_i - c_j|^2,
// summing squared differences (no cancellation for close points).
func sqDistRow(g, c []float64, n, d, i int) {
	a := c[i*d : (i+1)*d]
	g[i*n+i] = 0
	for j := i + 1; j < n; j++ {
		b := c[j*d : (j+1)*d]
		var s0, s1, s2, s3 float64
		k := 0
		for ; k+4 <= len(a); k += 4 {
			e0, e1, e2, e3 := a[k]-b[k], a[k+1]-b[k+1], a[k+2]-b[k+2], a[k+3]-b[k+3]
			s0 += e0 * e0
			s1 += e1 * e1
			s2 += e2 * e2
			s3 += e3 * e3
		}
		for ; k < len(a); k++ {
			e := a[k] - b[k]
			s0 += e * e
		}
		v := (s0 + s1) + (s2 + s3)
		g[i*n+j] = v
		g[j*n+i] = v
	}
}

// dot returns <a, b> with four partial sums.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	k := 0
	for ; k+4 <= len(a); k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < len(a); k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// medianDistance returns the median of sqrt(D_ij) over i < j of the n×n
// squared-distance matrix D (0 when n < 2).
func medianDistance(sq []float64, n int) float64 {
	if n < 2 {
		return 0
	}
	v := make([]float64, 0, n*(n-1)/2)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			v = append(v, sq[i*n+j])
		}
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return math.Sqrt(v[m])
	}
	return (math.Sqrt(v[m-1]) + math.Sqrt(v[m])) / 2
}

// rbfFromSqDist turns squared distances into exp(-D/(2 sigma^2)) in place.
// With sigma = 0 (more than half of the pairs coincide) the kernel is the
// limit: 1 for coinciding points, 0 otherwise.
func rbfFromSqDist(g []float64, sigma float64) {
	if sigma == 0 {
		for i, v := range g {
			if v == 0 {
				g[i] = 1
			} else {
				g[i] = 0
			}
		}
		return
	}
	s := -1 / (2 * sigma * sigma)
	for i, v := range g {
		g[i] = math.Exp(v * s)
	}
}
