package similarity

import (
	"fmt"
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
)

// featureHSIC computes the unbiased linear HSIC of X (n×dx) and Y (n×dy) in
// feature space, without Gram matrices: an independent check of the Gram
// path. With K = XXᵀ, L = YYᵀ (features centered first, which the estimator
// ignores), s_i = |x_i|², t_i = |y_i|², Sx = sum_i x_i:
//
//	tr(K~L~)  = |XᵀY|_F² - sum_i s_i t_i
//	1ᵀK~1     = |Sx|² - sum_i s_i
//	(K~1)_i   = <x_i, Sx> - s_i
//	1ᵀK~L~1   = sum_i (K~1)_i (L~1)_i
func featureHSIC(x, y []float64, n, dx, dy int) float64 {
	xty := make([]float64, dx*dy)
	s, t := make([]float64, n), make([]float64, n)
	sx, sy := make([]float64, dx), make([]float64, dy)
	for i := 0; i < n; i++ {
		xi, yi := x[i*dx:(i+1)*dx], y[i*dy:(i+1)*dy]
		for a, va := range xi {
			s[i] += va * va
			sx[a] += va
			for b, vb := range yi {
				xty[a*dy+b] += va * vb
			}
		}
		for b, vb := range yi {
			t[i] += vb * vb
			sy[b] += vb
		}
	}
	var tr, ks, ls, kl float64
	for _, v := range xty {
		tr += v * v
	}
	var sxx, syy float64
	for _, v := range sx {
		sxx += v * v
	}
	for _, v := range sy {
		syy += v * v
	}
	for i := 0; i < n; i++ {
		tr -= s[i] * t[i]
		ks += s[i]
		ls += t[i]
		var kx, ly float64
		for a := 0; a < dx; a++ {
			kx += x[i*dx+a] * sx[a]
		}
		for b := 0; b < dy; b++ {
			ly += y[i*dy+b] * sy[b]
		}
		kl += (kx - s[i]) * (ly - t[i])
	}
	ksum, lsum := sxx-ks, syy-ls
	nf := float64(n)
	return (tr + ksum*lsum/((nf-1)*(nf-2)) - 2/(nf-2)*kl) / (nf * (nf - 3))
}

func centeredF64(x []float32, n, d int) []float64 {
	return centered(x, n, d, nil)
}

// hiddenLayers reads NAME.hidden.npy ([L+1, rows, T, d]) and returns, for each
// calibration row, the outputs of layers 1..L as T×d matrices.
func hiddenLayers(t *testing.T, name string) (rows [][][]float32, T, d int) {
	t.Helper()
	a, err := npy.Read(testenv.TestFile(t, name+".hidden.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 4 {
		t.Fatalf("%s.hidden.npy: shape %v, want [L+1, rows, T, d]", name, a.Shape)
	}
	f, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	L1, R, T, d := a.Shape[0], a.Shape[1], a.Shape[2], a.Shape[3]
	rows = make([][][]float32, R)
	for r := 0; r < R; r++ {
		for l := 1; l < L1; l++ {
			off := ((l*R + r) * T) * d
			rows[r] = append(rows[r], f[off:off+T*d])
		}
	}
	return rows, T, d
}

func readMatrix(t *testing.T, path string) [][]float64 {
	t.Helper()
	a, err := npy.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Float64s()
	if err != nil || len(a.Shape) != 2 || a.Shape[0] != a.Shape[1] {
		t.Fatalf("%s: %v %v, want a square float matrix", path, a.Shape, err)
	}
	n := a.Shape[0]
	out := make([][]float64, n)
	for i := range out {
		out[i] = v[i*n : (i+1)*n]
	}
	return out
}

// TestCKAOnReferenceHiddenStates computes the linear CKA matrix over the
// hidden states of calibration rows 0-1 (one minibatch per row, token
// positions as samples) and checks it against the feature-space computation
// above. With 2 of the 16 calibration rows it cannot equal NAME.cka.npy; it
// differs from it by sampling alone (measured: at most 0.058 on llama8, 0.038 on
// gpt2_6); the 16-row comparison is in the judge and runtime tests.
func TestCKAOnReferenceHiddenStates(t *testing.T) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			rows, T, d := hiddenLayers(t, name)
			L := len(rows[0])
			m, err := NewCKAMatrix(L, LinearKernel)
			if err != nil {
				t.Fatal(err)
			}
			for _, layers := range rows {
				if err := m.Add(T, layers); err != nil {
					t.Fatal(err)
				}
			}
			got := m.Matrix()
			// Independent: feature-space HSIC, averaged over the rows.
			sum := make([][]float64, L)
			for a := range sum {
				sum[a] = make([]float64, L)
			}
			for _, layers := range rows {
				c := make([][]float64, L)
				for l := range c {
					c[l] = centeredF64(layers[l], T, d)
				}
				for a := 0; a < L; a++ {
					for b := 0; b < L; b++ {
						sum[a][b] += featureHSIC(c[a], c[b], T, d, d)
					}
				}
			}
			ref := readMatrix(t, testenv.TestFile(t, name+".cka.npy"))
			var maxIndep, maxRef float64
			for a := 0; a < L; a++ {
				for b := 0; b < L; b++ {
					want := sum[a][b] / math.Sqrt(sum[a][a]*sum[b][b])
					maxIndep = math.Max(maxIndep, math.Abs(got[a][b]-want))
					maxRef = math.Max(maxRef, math.Abs(got[a][b]-ref[a][b]))
				}
			}
			t.Logf("%s: rows 0-1: max |CKA - feature-space CKA| = %.3g, max |CKA(2 rows) - cka.npy(16 rows)| = %.3g", name, maxIndep, maxRef)
			if maxIndep > 1e-10 {
				t.Errorf("max |Gram CKA - feature-space CKA| = %g, want <= 1e-10", maxIndep)
			}
			if maxRef > 0.1 {
				t.Errorf("max |CKA over rows 0-1 - %s.cka.npy| = %g, want <= 0.1\n%s", name, maxRef, format(got))
			}
		})
	}
}

func format(m [][]float64) string {
	s := ""
	for _, r := range m {
		s += fmt.Sprintf("%.6f\n", r)
	}
	return s
}
