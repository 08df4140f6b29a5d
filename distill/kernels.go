package distill

import (
	"math"

	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/runtime"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// float is the element type of the kernels: float32 for training, float64
// for the gradient checks.
type float interface{ ~float32 | ~float64 }

// The kernels below work on rows of a row-major [rows, n] matrix and follow
// the runtime's order of float32 operations (statistics summed in float64).
// Backward kernels add into their gradient outputs.

// rmsNormFwd: y = g·(x·(1/sqrt(mean(x²)+eps))), as torch exports RMSNorm.
func rmsNormFwd[F float](x, g, y []F, n int, eps F) {
	for r := 0; r+n <= len(x); r += n {
		xr := x[r : r+n]
		var s float64
		for _, v := range xr {
			s += float64(v) * float64(v)
		}
		inv := 1 / F(math.Sqrt(float64(F(s/float64(n))+eps)))
		for i, v := range xr {
			y[r+i] = g[i] * (v * inv)
		}
	}
}

// rmsNormBwd: with r = 1/sqrt(mean(x²)+eps) and u = dy·g,
// dx = r·u − x·r³·mean(u·x), dg = Σ_rows dy·x·r.
func rmsNormBwd[F float](x, g, dy, dx, dg []F, n int, eps F) {
	for r := 0; r+n <= len(x); r += n {
		xr, dyr := x[r:r+n], dy[r:r+n]
		var s float64
		for _, v := range xr {
			s += float64(v) * float64(v)
		}
		inv := float64(1 / F(math.Sqrt(float64(F(s/float64(n))+eps))))
		var ux float64
		for i, v := range xr {
			ux += float64(dyr[i]) * float64(g[i]) * float64(v)
		}
		c := inv * inv * inv * ux / float64(n)
		for i, v := range xr {
			dx[r+i] += F(inv*float64(dyr[i])*float64(g[i]) - float64(v)*c)
			dg[i] += F(float64(dyr[i]) * float64(v) * inv)
		}
	}
}

// layerNormFwd: y = (x−μ)/sqrt(var+eps)·g + b, statistics in float64
// (two-pass variance), as the runtime's LayerNormalization.
func layerNormFwd[F float](x, g, b, y []F, n int, eps F) {
	for r := 0; r+n <= len(x); r += n {
		mu, rstd := meanRstd(x[r:r+n], eps)
		for i, v := range x[r : r+n] {
			y[r+i] = F((float64(v)-mu)*rstd)*g[i] + b[i]
		}
	}
}

func meanRstd[F float](x []F, eps F) (mu, rstd float64) {
	mu, vr := stats.MeanVar(x)
	return mu, 1 / math.Sqrt(vr+float64(eps))
}

// layerNormBwd: with x̂ = (x−μ)·rstd and u = dy·g,
// dx = rstd·(u − mean(u) − x̂·mean(u·x̂)), dg = Σ dy·x̂, db = Σ dy.
func layerNormBwd[F float](x, g, dy, dx, dg, db []F, n int, eps F) {
	for r := 0; r+n <= len(x); r += n {
		xr, dyr := x[r:r+n], dy[r:r+n]
		mu, rstd := meanRstd(xr, eps)
		var mu1, mu2 float64
		for i, v := range xr {
			u := float64(dyr[i]) * float64(g[i])
			mu1 += u
			mu2 += u * (float64(v) - mu) * rstd
		}
		mu1 /= float64(n)
		mu2 /= float64(n)
		for i, v := range xr {
			xh := (float64(v) - mu) * rstd
			u := float64(dyr[i]) * float64(g[i])
			dx[r+i] += F(rstd * (u - mu1 - xh*mu2))
			dg[i] += F(float64(dyr[i]) * xh)
			db[i] += dyr[i]
		}
	}
}

func sigmoid[F float](v F) F { return F(1 / (1 + math.Exp(-float64(v)))) }

// swiGLUFwd: y = gate·σ(gate)·up.
func swiGLUFwd[F float](gate, up, y []F) {
	for i, g := range gate {
		y[i] = g * sigmoid(g) * up[i]
	}
}

// swiGLUBwd: dgate = dy·up·σ·(1 + gate·(1−σ)), dup = dy·gate·σ.
func swiGLUBwd[F float](gate, up, dy, dgate, dup []F) {
	for i, g := range gate {
		s := sigmoid(g)
		dgate[i] += dy[i] * up[i] * s * (1 + g*(1-s))
		dup[i] += dy[i] * g * s
	}
}

// GELU, tanh form, with the export's float32 constants.
const (
	geluC = 0.7978845834732056   // float32(sqrt(2/π))
	geluA = 0.044714998453855515 // float32(0.044715)
)

// geluFwd: y = 0.5·x·(1 + tanh(c·(x + a·x³))), in the export's order.
func geluFwd[F float](x, y []F) {
	for i, v := range x {
		p := F(math.Pow(float64(v), 3))
		t := F(math.Tanh(float64((v + p*F(geluA)) * F(geluC))))
		y[i] = v * 0.5 * (t + 1)
	}
}

// geluBwd: dx = dy·(0.5·(1+t) + 0.5·x·(1−t²)·c·(1 + 3a·x²)).
func geluBwd[F float](x, dy, dx []F) {
	for i, v := range x {
		xv := float64(v)
		t := math.Tanh(geluC * (xv + geluA*xv*xv*xv))
		dx[i] += dy[i] * F(0.5*(1+t)+0.5*xv*(1-t*t)*geluC*(1+3*geluA*xv*xv))
	}
}

// biasFwd: y = x + b per row; biasBwd: dx = dy, db = Σ_rows dy.
func biasFwd[F float](x, b, y []F) {
	n := len(b)
	for r := 0; r+n <= len(x); r += n {
		for i := range b {
			y[r+i] = x[r+i] + b[i]
		}
	}
}

func biasBwd[F float](dy, dx, db []F) {
	n := len(db)
	for r := 0; r+n <= len(dy); r += n {
		for i := range db {
			dx[r+i] += dy[r+i]
			db[i] += dy[r+i]
		}
	}
}

// sgemm is the runtime's float32 kernel (AVX2/AVX-512 assembly, bitwise
// deterministic for any thread count); float64 goes through gonum.
var sgemm = runtime.BLAS(0)

// gemm computes C = op(A)·op(B) + beta·C, row-major with leading dimensions.
func gemm[F float](tA, tB bool, m, n, k int, a []F, lda int, b []F, ldb int, beta F, c []F, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	switch av := any(a).(type) {
	case []float32:
		sgemm.Sgemm(ta, tb, m, n, k, 1, av, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		gonum.Implementation{}.Dgemm(ta, tb, m, n, k, 1, av, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}
