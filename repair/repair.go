// Package repair fits, by regularised least squares in float64, a linear map
// y ≈ x·M + c from activations collected on calibration tokens.
//
// onnxslm uses it for a training-free repair of a merged window (in the
// spirit of ReplaceMe, 2025): x is the output of the merged layer's last
// projection (the MLP's down projection), the target is what that output
// should have been for the layer to reproduce the residual stream leaving the
// original window, and M, c are folded into the projection's weights.
//
// The fit only accumulates the normal equations (XᵀX and XᵀY, with one more
// row and column for the offset), so memory is O((in+1)·(in+out)) whatever
// the number of samples, and samples can be added batch by batch.
package repair

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// Problem accumulates the normal equations of y ≈ x·M + c.
type Problem struct {
	in, out int
	offset  bool
	// xtx is (in+1)×(in+1), xty (in+1)×out; the last row/column is the constant
	// feature 1 (used only when offset is set).
	xtx, xty []float64
	yy       float64 // Σ‖y‖², for the residual
	n        int
	// bl, when set, is the float32 path's matrix product (float32.go); g32
	// and c32 are its per-chunk products.
	bl       Sgemm
	g32, c32 []float32
}

// NewProblem prepares a fit from in features to out targets. offset says
// whether an offset c is fitted too (the projection must have a bias to fold
// it into).
func NewProblem(in, out int, offset bool) (*Problem, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("repair: problem of %d inputs and %d outputs", in, out)
	}
	n := in + 1
	return &Problem{in: in, out: out, offset: offset, xtx: make([]float64, n*n), xty: make([]float64, n*out)}, nil
}

// Samples is the number of samples added.
func (p *Problem) Samples() int { return p.n }

// Add adds samples: x holds k rows of in values, y k rows of out values,
// row-major.
func (p *Problem) Add(x, y []float32) error {
	if len(x)%p.in != 0 || len(y)%p.out != 0 || len(x)/p.in != len(y)/p.out {
		return fmt.Errorf("repair: %d inputs and %d targets do not make rows of %d and %d", len(x), len(y), p.in, p.out)
	}
	k := len(x) / p.in
	if k == 0 {
		return nil
	}
	if p.bl != nil {
		p.add32(x, y, k)
		p.n += k
		return nil
	}
	// XᵀX and XᵀY of the batch by a (blocked, parallel) BLAS, in float64. X is
	// stored transposed (n×k, the constant feature 1 as its last row) so that
	// both products run along contiguous rows.
	n := p.in + 1
	xt := make([]float64, n*k)
	ys := make([]float64, k*p.out)
	for s := 0; s < k; s++ {
		for i, v := range x[s*p.in : (s+1)*p.in] {
			xt[i*k+s] = float64(v)
		}
		xt[p.in*k+s] = 1
		for j, v := range y[s*p.out : (s+1)*p.out] {
			ys[s*p.out+j] = float64(v)
			p.yy += float64(v) * float64(v)
		}
	}
	xg := blas64.General{Rows: n, Cols: k, Stride: k, Data: xt}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, xg, xg, 1, blas64.General{Rows: n, Cols: n, Stride: n, Data: p.xtx})
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, xg, blas64.General{Rows: k, Cols: p.out, Stride: p.out, Data: ys}, 1,
		blas64.General{Rows: n, Cols: p.out, Stride: p.out, Data: p.xty})
	p.n += k
	return nil
}

// Options regularise a fit.
type Options struct {
	// Ridge is the strength λ of the penalty λ·s·‖M − Prior‖², relative to the
	// data: s is the mean of XᵀX's diagonal, so a Ridge of 0.01 weighs the prior
	// like 1 % of the data's energy per feature, whatever the activations' scale.
	// The offset is not penalised.
	Ridge float64
	// Prior is the map the fit is pulled toward (in×out, row-major). Nil means
	// the identity when in == out (a repair that does nothing), else zero.
	Prior []float64
}

// Map is a fitted y = x·Matrix + Offset.
type Map struct {
	In, Out int
	Matrix  []float64 // In×Out, row-major
	Offset  []float64 // Out values; zero when no offset was fitted
}

// Apply maps rows of In values (row-major) to rows of Out values.
func (m *Map) Apply(x []float32) []float32 {
	k := len(x) / m.In
	y := make([]float32, k*m.Out)
	acc := make([]float64, m.Out)
	for s := 0; s < k; s++ {
		copy(acc, m.Offset)
		for i, v := range x[s*m.In : (s+1)*m.In] {
			if v == 0 {
				continue
			}
			row := m.Matrix[i*m.Out : (i+1)*m.Out]
			for j := range acc {
				acc[j] += float64(v) * row[j]
			}
		}
		for j, v := range acc {
			y[s*m.Out+j] = float32(v)
		}
	}
	return y
}

// Float32 returns the matrix and offset in float32, the form rewrite.Repair takes.
func (m *Map) Float32() (matrix, offset []float32) {
	matrix = make([]float32, len(m.Matrix))
	for i, v := range m.Matrix {
		matrix[i] = float32(v)
	}
	offset = make([]float32, len(m.Offset))
	for i, v := range m.Offset {
		offset[i] = float32(v)
	}
	return matrix, offset
}

// Solve returns the map minimising ‖X·M + 1·cᵀ − Y‖² + λ·s·‖M − Prior‖².
func (p *Problem) Solve(opts Options) (*Map, error) {
	if p.n == 0 {
		return nil, errors.New("repair: no samples")
	}
	if opts.Ridge < 0 || math.IsNaN(opts.Ridge) {
		return nil, fmt.Errorf("repair: ridge %g is negative", opts.Ridge)
	}
	if opts.Prior != nil && len(opts.Prior) != p.in*p.out {
		return nil, fmt.Errorf("repair: prior of %d values for a %d×%d map", len(opts.Prior), p.in, p.out)
	}
	p.g32, p.c32 = nil, nil
	if p.bl != nil {
		if m, ok := p.solve32(opts); ok {
			return m, nil
		}
		// A pivot that is not positive in float32: the float64 path decides.
	}
	prior := opts.Prior
	if prior == nil {
		prior = make([]float64, p.in*p.out)
		if p.in == p.out {
			for i := 0; i < p.in; i++ {
				prior[i*p.out+i] = 1
			}
		}
	}
	n, full := p.unknowns(), p.in+1
	a := make([]float64, n*n)
	b := make([]float64, n*p.out)
	lambda, jitter := p.ridge(opts.Ridge)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			a[i*n+j] = p.xtx[i*full+j]
			a[j*n+i] = p.xtx[i*full+j]
		}
		copy(b[i*p.out:(i+1)*p.out], p.xty[i*p.out:(i+1)*p.out])
	}
	for i := 0; i < p.in; i++ {
		a[i*n+i] += lambda
		for j := 0; j < p.out; j++ {
			b[i*p.out+j] += lambda * prior[i*p.out+j]
		}
	}
	for i := 0; i < n; i++ {
		a[i*n+i] += jitter
	}
	// Cholesky factor and two triangular solves, by gonum's LAPACK (blocked).
	t, ok := lapack64.Potrf(blas64.Symmetric{N: n, Stride: n, Uplo: blas.Upper, Data: a})
	if !ok {
		return nil, errors.New("repair: the normal equations are not positive definite (add a ridge)")
	}
	lapack64.Potrs(t, blas64.General{Rows: n, Cols: p.out, Stride: p.out, Data: b})
	return p.mapOf(b), nil
}

// unknowns is the number of unknown rows: the in rows of M, then (with an
// offset) c.
func (p *Problem) unknowns() int {
	if p.offset {
		return p.in + 1
	}
	return p.in
}

// ridge returns the penalty λ·s for a relative ridge r (s: the mean of
// XᵀX's diagonal) and the jitter added to every unknown's diagonal: a tiny
// relative amount that keeps a rank-deficient system (a dead feature, an
// offset with constant features) solvable, far below any ridge a caller
// would choose.
func (p *Problem) ridge(r float64) (lambda, jitter float64) {
	full := p.in + 1
	var diag float64
	for i := 0; i < p.in; i++ {
		diag += p.xtx[i*full+i]
	}
	return r * diag / float64(p.in), 1e-12 * (diag/float64(p.in) + 1)
}

// mapOf is the map of a solution x: the in rows of M, then (with an offset) c.
func (p *Problem) mapOf(x []float64) *Map {
	m := &Map{In: p.in, Out: p.out, Matrix: x[:p.in*p.out], Offset: make([]float64, p.out)}
	if p.offset {
		copy(m.Offset, x[p.in*p.out:])
	}
	return m
}

// Residual returns the mean squared error per target value of m on the
// samples added: (‖X·M + 1·cᵀ − Y‖²) / (samples·out), from the normal
// equations (so it needs no second pass over the data).
func (p *Problem) Residual(m *Map) (float64, error) {
	if m.In != p.in || m.Out != p.out {
		return 0, fmt.Errorf("repair: a %d×%d map for a %d×%d problem", m.In, m.Out, p.in, p.out)
	}
	if p.n == 0 {
		return 0, errors.New("repair: no samples")
	}
	full := p.in + 1
	// W is (in+1)×out: M stacked on c.
	w := make([]float64, full*p.out)
	copy(w, m.Matrix)
	copy(w[p.in*p.out:], m.Offset)
	// ‖XW − Y‖² = tr(WᵀXᵀXW) − 2 tr(WᵀXᵀY) + ‖Y‖².
	var quad, cross float64
	for i := 0; i < full; i++ {
		for j := 0; j < full; j++ {
			g := p.xtx[min(i, j)*full+max(i, j)]
			if g == 0 {
				continue
			}
			wi, wj := w[i*p.out:(i+1)*p.out], w[j*p.out:(j+1)*p.out]
			var dot float64
			for k := range wi {
				dot += wi[k] * wj[k]
			}
			quad += g * dot
		}
		wi, xy := w[i*p.out:(i+1)*p.out], p.xty[i*p.out:(i+1)*p.out]
		for k := range wi {
			cross += wi[k] * xy[k]
		}
	}
	r := (quad - 2*cross + p.yy) / float64(p.n*p.out)
	return max(r, 0), nil
}
