package repair

import (
	"math"

	"gonum.org/v1/gonum/blas"
)

// The float32 path. At the widths of the models people deploy (d 2048 and
// more) the float64 fit costs far more than the forward passes around it:
// gonum's float64 products run at 1–2 GFLOP/s here, and a fit at d 2048 on
// 1,536 tokens is about 26 GFLOP of XᵀX and XᵀY plus a 20 GFLOP solve, half
// a minute. A Problem given a float32 matrix product (the runtime's kernels,
// ~100 GFLOP/s a core) forms XᵀX and XᵀY in float32 over chunks of
// chunk32 samples and sums the chunks in float64, and solves by a blocked
// Cholesky factorisation whose O(n³) updates are float32 products and whose
// diagonal blocks are factored and inverted in float64. The fit differs from
// the float64 one by rounding only (TestFloat32MatchesFloat64 bounds it);
// if the float32 factorisation meets a pivot that is not positive, Solve
// falls back to float64.

// Sgemm is the float32 matrix product the float32 path uses, as gonum's
// blas.Float32Level3 specifies it (row-major).
type Sgemm interface {
	Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
}

const (
	// chunk32 samples are summed in float32 before the float64 sum.
	chunk32 = 256
	// block32 is the Cholesky factorisation's block size.
	block32 = 128
)

// NewProblem32 is NewProblem with the float32 path: products by bl.
func NewProblem32(in, out int, offset bool, bl Sgemm) (*Problem, error) {
	p, err := NewProblem(in, out, offset)
	if err != nil {
		return nil, err
	}
	p.bl = bl
	return p, nil
}

// add32 is Add on the float32 path: k samples, x k×in and y k×out.
func (p *Problem) add32(x, y []float32, k int) {
	full := p.in + 1
	if p.g32 == nil {
		p.g32 = make([]float32, p.in*p.in)
		p.c32 = make([]float32, p.in*p.out)
	}
	for s0 := 0; s0 < k; s0 += chunk32 {
		kk := min(chunk32, k-s0)
		xs, ys := x[s0*p.in:(s0+kk)*p.in], y[s0*p.out:(s0+kk)*p.out]
		p.bl.Sgemm(blas.Trans, blas.NoTrans, p.in, p.in, kk, 1, xs, p.in, xs, p.in, 0, p.g32, p.in)
		p.bl.Sgemm(blas.Trans, blas.NoTrans, p.in, p.out, kk, 1, xs, p.in, ys, p.out, 0, p.c32, p.out)
		for i := 0; i < p.in; i++ {
			row, g := p.xtx[i*full:i*full+p.in], p.g32[i*p.in:(i+1)*p.in]
			for j, v := range g {
				row[j] += float64(v)
			}
			row, c := p.xty[i*p.out:(i+1)*p.out], p.c32[i*p.out:(i+1)*p.out]
			for j, v := range c {
				row[j] += float64(v)
			}
		}
	}
	// The constant feature: its row and column of XᵀX, its row of XᵀY.
	last, ylast := p.xtx[p.in*full:], p.xty[p.in*p.out:]
	for s := 0; s < k; s++ {
		for i, v := range x[s*p.in : (s+1)*p.in] {
			last[i] += float64(v)
		}
		for j, v := range y[s*p.out : (s+1)*p.out] {
			ylast[j] += float64(v)
			p.yy += float64(v) * float64(v)
		}
	}
	for i := 0; i < p.in; i++ {
		p.xtx[i*full+p.in] = last[i]
	}
	last[p.in] += float64(k)
}

// solve32 is Solve on the float32 path; false when the float32
// factorisation meets a pivot that is not positive. The system is built in
// float32 from the float64 sums, as Solve builds it in float64.
func (p *Problem) solve32(opts Options) (*Map, bool) {
	n, full, out := p.unknowns(), p.in+1, p.out
	lambda, jitter := p.ridge(opts.Ridge)
	l := make([]float32, n*n)
	x := make([]float32, n*out)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			v := p.xtx[j*full+i]
			if i == j {
				v += jitter
				if i < p.in {
					v += lambda
				}
			}
			l[i*n+j] = float32(v)
		}
		for j := 0; j < out; j++ {
			v := p.xty[i*out+j]
			if i < p.in {
				switch {
				case opts.Prior != nil:
					v += lambda * opts.Prior[i*out+j]
				case p.in == out && i == j:
					v += lambda
				}
			}
			x[i*out+j] = float32(v)
		}
	}
	inv, ok := cholesky32(p.bl, l, n)
	if !ok {
		return nil, false
	}
	solveCholesky32(p.bl, l, inv, x, n, out)
	l = nil
	r := make([]float64, n*out)
	for i, v := range x {
		r[i] = float64(v)
	}
	return p.mapOf(r), true
}

// cholesky32 overwrites the lower triangle of the n×n matrix l (row-major)
// with its Cholesky factor L (a = L·Lᵀ), by blocks of block32: each diagonal
// block is factored in float64, the panel below it is solved with the
// block's inverse and the trailing matrix updated by float32 products. It
// returns the inverses of L's diagonal blocks (float32, block32×block32 each,
// the last possibly smaller), or false on a pivot that is not positive.
func cholesky32(bl Sgemm, l []float32, n int) ([][]float32, bool) {
	var invs [][]float32
	for k := 0; k < n; k += block32 {
		b := min(block32, n-k)
		d := make([]float64, b*b)
		for i := 0; i < b; i++ {
			for j := 0; j <= i; j++ {
				d[i*b+j] = float64(l[(k+i)*n+k+j])
			}
		}
		if !cholesky64(d, b) {
			return nil, false
		}
		di := invertLower64(d, b)
		inv := make([]float32, b*b)
		for i := range d {
			inv[i] = float32(di[i])
		}
		invs = append(invs, inv)
		for i := 0; i < b; i++ {
			for j := 0; j <= i; j++ {
				l[(k+i)*n+k+j] = float32(d[i*b+j])
			}
		}
		m := n - k - b
		if m == 0 {
			break
		}
		// L21 = A21·L11⁻ᵀ, then A22 −= L21·L21ᵀ (both triangles computed;
		// only the lower one is read).
		a21 := make([]float32, m*b)
		for i := 0; i < m; i++ {
			copy(a21[i*b:(i+1)*b], l[(k+b+i)*n+k:(k+b+i)*n+k+b])
		}
		l21 := make([]float32, m*b)
		bl.Sgemm(blas.NoTrans, blas.Trans, m, b, b, 1, a21, b, inv, b, 0, l21, b)
		for i := 0; i < m; i++ {
			copy(l[(k+b+i)*n+k:(k+b+i)*n+k+b], l21[i*b:(i+1)*b])
		}
		bl.Sgemm(blas.NoTrans, blas.Trans, m, m, b, -1, l21, b, l21, b, 1, l[(k+b)*n+k+b:], n)
	}
	return invs, true
}

// solveCholesky32 overwrites x (n×out) with (L·Lᵀ)⁻¹·x, L from cholesky32
// with the inverses of its diagonal blocks.
func solveCholesky32(bl Sgemm, l []float32, invs [][]float32, x []float32, n, out int) {
	tmp := make([]float32, block32*out)
	panel := make([]float32, block32*n)
	// Forward: L·Y = X, block row by block row.
	for bi, k := 0, 0; k < n; bi, k = bi+1, k+block32 {
		b := min(block32, n-k)
		xi := x[k*out : (k+b)*out]
		if k > 0 {
			for i := 0; i < b; i++ {
				copy(panel[i*k:(i+1)*k], l[(k+i)*n:(k+i)*n+k])
			}
			bl.Sgemm(blas.NoTrans, blas.NoTrans, b, out, k, -1, panel, k, x, out, 1, xi, out)
		}
		t := tmp[:b*out]
		bl.Sgemm(blas.NoTrans, blas.NoTrans, b, out, b, 1, invs[bi], b, xi, out, 0, t, out)
		copy(xi, t)
	}
	// Backward: Lᵀ·Z = Y, from the last block row up.
	for bi := len(invs) - 1; bi >= 0; bi-- {
		k := bi * block32
		b := min(block32, n-k)
		xi := x[k*out : (k+b)*out]
		if m := n - k - b; m > 0 {
			// The column panel L[k+b:, k:k+b] (m×b), transposed in the product.
			for i := 0; i < m; i++ {
				copy(panel[i*b:(i+1)*b], l[(k+b+i)*n+k:(k+b+i)*n+k+b])
			}
			bl.Sgemm(blas.Trans, blas.NoTrans, b, out, m, -1, panel, b, x[(k+b)*out:], out, 1, xi, out)
		}
		t := tmp[:b*out]
		bl.Sgemm(blas.Trans, blas.NoTrans, b, out, b, 1, invs[bi], b, xi, out, 0, t, out)
		copy(xi, t)
	}
}

// cholesky64 overwrites the lower triangle of the b×b matrix d with its
// Cholesky factor; false on a pivot that is not positive.
func cholesky64(d []float64, b int) bool {
	for j := 0; j < b; j++ {
		s := d[j*b+j]
		for k := 0; k < j; k++ {
			s -= d[j*b+k] * d[j*b+k]
		}
		if !(s > 0) {
			return false
		}
		s = math.Sqrt(s)
		d[j*b+j] = s
		for i := j + 1; i < b; i++ {
			v := d[i*b+j]
			for k := 0; k < j; k++ {
				v -= d[i*b+k] * d[j*b+k]
			}
			d[i*b+j] = v / s
		}
	}
	return true
}

// invertLower64 returns the inverse of the lower-triangular b×b matrix d
// (its lower triangle), lower-triangular, row-major.
func invertLower64(d []float64, b int) []float64 {
	inv := make([]float64, b*b)
	for j := 0; j < b; j++ {
		inv[j*b+j] = 1 / d[j*b+j]
		for i := j + 1; i < b; i++ {
			var s float64
			for k := j; k < i; k++ {
				s += d[i*b+k] * inv[k*b+j]
			}
			inv[i*b+j] = -s / d[i*b+i]
		}
	}
	return inv
}
