package similarity

import (
	"fmt"
	"math"
)

// CKAMatrix accumulates minibatch CKA (Nguyen, Raghu and Kornblith 2020)
// between every pair of a fixed number of layers. Each Add takes one
// minibatch: the same n samples (e.g. the token positions of one
// calibration sequence) as seen by every layer. For each pair (a, b) it adds
// the unbiased HSIC (Song et al. 2012) of the two layers' Gram matrices; the
// result is
//
//	CKA(a, b) = mean HSIC1(K_a, K_b) / sqrt(mean HSIC1(K_a, K_a) · mean HSIC1(K_b, K_b))
//
// with means over minibatches. Memory is numLayers Gram matrices of n×n
// float64 (kept for reuse by the next Add), one float64 copy of one layer's
// n×d input at a time, and the numLayers² sums; the inputs are read, never
// kept.
//
// A CKAMatrix is not safe for concurrent use; Add itself uses GOMAXPROCS
// goroutines and gives results that do not depend on their number.
type CKAMatrix struct {
	layers  int
	kernel  Kernel
	sum     []float64 // layers×layers sums of HSIC1, symmetric
	batches int
	samples int
	sigmas  [][]float64 // per Add, per layer: the RBF bandwidth used
	buf     []float64   // centered float64 copy of one layer's input
	grams   [][]float64 // per layer, n×n, reused between Adds
}

// NewCKAMatrix returns an empty accumulator for numLayers layers (>= 1) with
// kernel k.
func NewCKAMatrix(numLayers int, k Kernel) (*CKAMatrix, error) {
	if numLayers < 1 {
		return nil, fmt.Errorf("similarity: CKA matrix of %d layers, want at least 1", numLayers)
	}
	if err := k.validate(); err != nil {
		return nil, err
	}
	return &CKAMatrix{layers: numLayers, kernel: k, sum: make([]float64, numLayers*numLayers)}, nil
}

// Add accumulates one minibatch of n samples (n >= 4): minibatch[l] holds
// layer l's representation of the samples as an n×d_l row-major matrix
// (widths may differ between layers).
func (m *CKAMatrix) Add(n int, minibatch [][]float32) error {
	if len(minibatch) != m.layers {
		return fmt.Errorf("similarity: minibatch has %d layers, the CKA matrix %d", len(minibatch), m.layers)
	}
	if n < 4 {
		return fmt.Errorf("similarity: minibatch of %d samples, unbiased HSIC needs at least 4", n)
	}
	for l, x := range minibatch {
		if _, err := checkShape(x, n); err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
	}
	if m.grams == nil {
		m.grams = make([][]float64, m.layers)
	}
	grams := m.grams
	sig := make([]float64, m.layers)
	for l, x := range minibatch {
		d := len(x) / n
		g, sigma, buf := computeGram(x, n, d, m.kernel, grams[l], m.buf)
		m.buf = buf
		grams[l] = uCenter(g, n)
		sig[l] = sigma
	}
	scale := 1 / (float64(n) * float64(n-3))
	pairs := make([][2]int, 0, m.layers*(m.layers+1)/2)
	for a := 0; a < m.layers; a++ {
		for b := a; b < m.layers; b++ {
			pairs = append(pairs, [2]int{a, b})
		}
	}
	vals := make([]float64, len(pairs))
	parallelRows(len(pairs), func(p int) {
		vals[p] = dot(grams[pairs[p][0]], grams[pairs[p][1]]) * scale
	})
	for p, ab := range pairs {
		a, b := ab[0], ab[1]
		m.sum[a*m.layers+b] += vals[p]
		if a != b {
			m.sum[b*m.layers+a] += vals[p]
		}
	}
	m.batches++
	m.samples += n
	m.sigmas = append(m.sigmas, sig)
	return nil
}

// Batches returns the number of minibatches added.
func (m *CKAMatrix) Batches() int { return m.batches }

// Samples returns the number of samples added over all minibatches.
func (m *CKAMatrix) Samples() int { return m.samples }

// Sigmas returns the RBF bandwidth used for each minibatch (outer) and layer
// (inner); all zero for the linear kernel.
func (m *CKAMatrix) Sigmas() [][]float64 { return m.sigmas }

// HSIC returns the mean unbiased HSIC over the minibatches for every pair of
// layers (nil before the first Add).
func (m *CKAMatrix) HSIC() [][]float64 {
	return m.pairs(func(a, b int) float64 { return m.sum[a*m.layers+b] / float64(m.batches) })
}

// pairs returns f of every pair of layers as a matrix, nil before the first Add.
func (m *CKAMatrix) pairs(f func(a, b int) float64) [][]float64 {
	if m.batches == 0 {
		return nil
	}
	out := make([][]float64, m.layers)
	for a := range out {
		out[a] = make([]float64, m.layers)
		for b := range out[a] {
			out[a][b] = f(a, b)
		}
	}
	return out
}

// Matrix returns the CKA of every pair of layers (nil before the first Add).
// The diagonal is 1 by construction. An entry is NaN where a layer's mean
// self-HSIC is not positive (a representation that does not vary across
// samples), for which CKA is undefined.
func (m *CKAMatrix) Matrix() [][]float64 {
	return m.pairs(func(a, b int) float64 {
		return cka(m.sum[a*m.layers+b], m.sum[a*m.layers+a], m.sum[b*m.layers+b])
	})
}

// cka normalizes an HSIC sum by the self-HSIC sums (the 1/batches factors
// cancel).
func cka(xy, xx, yy float64) float64 {
	if !(xx > 0 && yy > 0) {
		return math.NaN()
	}
	return xy / math.Sqrt(xx*yy)
}

// CKA returns the CKA of two representations of the same n samples (x: n×dx,
// y: n×dy, row-major) in one minibatch, with the unbiased HSIC estimator.
func CKA(x, y []float32, n int, k Kernel) (float64, error) {
	m, err := NewCKAMatrix(2, k)
	if err != nil {
		return 0, err
	}
	if err := m.Add(n, [][]float32{x, y}); err != nil {
		return 0, err
	}
	return m.Matrix()[0][1], nil
}
