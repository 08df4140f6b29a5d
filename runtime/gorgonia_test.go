package runtime

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/tensor"
)

// TestGorgoniaBLAS checks the runtime's Sgemm behind gonum's BLAS interface
// against gonum's own, for every transpose combination, and through
// gorgonia's tensor.MatMul.
func TestGorgoniaBLAS(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ours, ref := BLAS(2), gonum.Implementation{}
	m, n, k := 37, 29, 71
	for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
		for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			lda, ldb := k+1, n+2
			if tA == blas.Trans {
				lda = m + 1
			}
			if tB == blas.Trans {
				ldb = k + 2
			}
			a, b := randF32(r, 100*lda), randF32(r, 100*ldb)
			c1 := randF32(r, m*(n+3))
			c2 := append([]float32{}, c1...)
			ours.Sgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0.5, c1, n+3)
			ref.Sgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0.5, c2, n+3)
			for i := range c1 {
				if math.Abs(float64(c1[i]-c2[i])) > 1e-4*(1+math.Abs(float64(c2[i]))) {
					t.Fatalf("tA=%v tB=%v: C[%d] = %v, gonum %v", tA, tB, i, c1[i], c2[i])
				}
			}
		}
	}

	// Through gorgonia: tensor.MatMul on float32 Dense tensors.
	defer tensor.Use(tensor.WhichBLAS())
	UseWithGorgonia()
	x, _ := NewFloat32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	y, _ := NewFloat32([]int{3, 2}, []float32{1, 0, 0, 1, 1, 1})
	p, err := tensor.MatMul(x.Dense(), y.Dense())
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromDense(p.(*tensor.Dense))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{4, 5, 10, 11}
	for i, v := range got.Float32Data() {
		if v != want[i] {
			t.Fatalf("tensor.MatMul = %v, want %v", got.Float32Data(), want)
		}
	}
}

func TestDenseConversion(t *testing.T) {
	x, _ := NewInt64([]int{2, 2}, []int64{1, 2, 3, 4})
	d := x.Dense()
	if got := d.Shape(); len(got) != 2 || got[0] != 2 {
		t.Fatalf("Dense shape %v", got)
	}
	d.Data().([]int64)[0] = 9 // shared, not copied
	if x.Int64Data()[0] != 9 {
		t.Errorf("Dense does not share data")
	}
	back, err := FromDense(d)
	if err != nil || back.Int64Data()[3] != 4 {
		t.Fatalf("FromDense = %v, %v", back, err)
	}
	s := ScalarFloat32(2.5).Dense()
	sc, err := FromDense(s)
	if err != nil || sc.Rank() != 0 || sc.Float32Data()[0] != 2.5 {
		t.Errorf("scalar round trip = %v, %v", sc, err)
	}
	// A transposed view is materialized.
	v := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	if err := v.T(); err != nil {
		t.Fatal(err)
	}
	tv, err := FromDense(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := tv.Float32Data(); got[1] != 4 || tv.Dim(0) != 3 {
		t.Errorf("transposed view = %v %v, want [1 4 2 5 3 6]", tv.Shape(), got)
	}
}
