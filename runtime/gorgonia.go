package runtime

import (
	"fmt"
	goruntime "runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/tensor"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// gorgoniaBLAS is gonum's BLAS with Sgemm replaced by the runtime's blocked
// float32 kernel (AVX2/FMA assembly where available).
type gorgoniaBLAS struct {
	gonum.Implementation
	threads int
}

// BLAS returns a BLAS implementation for gorgonia.org/tensor (tensor.Use)
// whose Sgemm, the routine behind float32 tensor.MatMul, is the runtime's
// kernel running on up to threads goroutines (0: all cores); every other
// routine is gonum's.
func BLAS(threads int) tensor.BLAS {
	if threads <= 0 {
		threads = goruntime.GOMAXPROCS(0)
	}
	return gorgoniaBLAS{threads: threads}
}

// UseWithGorgonia makes gorgonia.org/tensor compute float32 matrix products
// with the runtime's kernel instead of gonum's pure-Go Sgemm (about 8× faster
// on AVX2 machines). It changes a process-wide setting of gorgonia.
func UseWithGorgonia() { tensor.Use(BLAS(0)) }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, as
// gonum's blas.Float32 specifies (and panics, as gonum does, on bad
// arguments).
func (g gorgoniaBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	rowsA, colsA := m, k
	if tA != blas.NoTrans {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if tB != blas.NoTrans {
		rowsB, colsB = n, k
	}
	switch {
	case m < 0 || n < 0 || k < 0:
		panic("blas: bad shape")
	case lda < max(1, colsA):
		panic("blas: bad lda")
	case ldb < max(1, colsB):
		panic("blas: bad ldb")
	case ldc < max(1, n):
		panic("blas: bad ldc")
	case m > 0 && n > 0 && (rowsA > 0 && len(a) < lda*(rowsA-1)+colsA || rowsB > 0 && len(b) < ldb*(rowsB-1)+colsB || len(c) < ldc*(m-1)+n):
		panic("blas: bad shape")
	}
	av := kernels.MatView{Data: a, RS: lda, CS: 1}
	if tA != blas.NoTrans {
		av = kernels.MatView{Data: a, RS: 1, CS: lda}
	}
	bv := kernels.MatView{Data: b, RS: ldb, CS: 1}
	if tB != blas.NoTrans {
		bv = kernels.MatView{Data: b, RS: 1, CS: ldb}
	}
	kernels.Sgemm(g.threads, m, n, k, alpha, av, bv, beta, c, ldc)
}

// Dense returns t as a gorgonia tensor sharing t's data (float32, float64,
// int64, int32, int8, uint8 or bool). A scalar becomes a Dense of shape ().
func (t *Tensor) Dense() *tensor.Dense {
	if t.Rank() == 0 {
		v, _ := t.at(0)
		return tensor.New(tensor.FromScalar(v))
	}
	return tensor.New(tensor.WithShape(t.Shape()...), tensor.WithBacking(t.data))
}

// FromDense returns a gorgonia tensor as a runtime Tensor, sharing its data
// when it is contiguous and row-major (a view or a transposed tensor is
// copied).
func FromDense(d *tensor.Dense) (*Tensor, error) {
	if d == nil {
		return nil, fmt.Errorf("runtime: nil Dense")
	}
	if d.IsScalar() {
		data, ok := sliceOf(d.Data())
		if !ok {
			return nil, fmt.Errorf("runtime: Dense of %v is not supported", d.Dtype())
		}
		return FromSlice(nil, data)
	}
	if !d.DataOrder().IsRowMajor() {
		return nil, fmt.Errorf("runtime: Dense is column-major; transpose it to row-major first")
	}
	if d.IsMaterializable() { // a view, or transposed in place
		d = d.Materialize().(*tensor.Dense)
	}
	return FromSlice(d.Shape().Clone(), d.Data())
}
