package similarity_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testsession"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/similarity"
	"github.com/onnxslm/onnxslm/tokens"
)

// TestCKAMatrixWithGoRuntime is the product's path: the Go runtime taps every
// layer's output on each of the 16 calibration sequences, one minibatch per
// sequence, and the linear CKA matrix must equal NAME.cka.npy within 1e-4.
func TestCKAMatrixWithGoRuntime(t *testing.T) {
	testenv.Long(t, "runs both shared models on 16 sequences in the Go runtime")
	calib, err := tokens.Read(testenv.TestFile(t, "tokens/calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			s := testsession.Shared(t, name)
			hidden, _ := testenv.Streams(t, name)
			fetch := hidden[1:] // the stream leaving each layer
			acc, err := similarity.NewCKAMatrix(len(fetch), similarity.LinearKernel)
			if err != nil {
				t.Fatal(err)
			}
			// One batch of all sequences; each sequence is one minibatch.
			N, T := calib.Len(), calib.SeqLen()
			ids := make([]int64, 0, N*T)
			for _, row := range calib.Rows {
				ids = append(ids, row...)
			}
			x, err := runtime.NewInt64([]int{N, T}, ids)
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Run(map[string]*runtime.Tensor{"input_ids": x}, fetch)
			if err != nil {
				t.Fatal(err)
			}
			for r := 0; r < N; r++ {
				mb := make([][]float32, len(fetch))
				for l, v := range fetch {
					f := out[v].Float32Data()
					if len(f)%(N*T) != 0 || len(f) == 0 {
						t.Fatalf("%s: %v %v, want float32 [%d, %d, d]", v, out[v].DType(), out[v].Shape(), N, T)
					}
					d := len(f) / (N * T)
					mb[l] = f[r*T*d : (r+1)*T*d]
				}
				if err := acc.Add(T, mb); err != nil {
					t.Fatal(err)
				}
			}
			ref, err := npy.Read(testenv.TestFile(t, name+".cka.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ref.Float64s()
			got := acc.Matrix()
			L := len(fetch)
			if fmt.Sprint(ref.Shape) != fmt.Sprint([]int{L, L}) {
				t.Fatalf("%s.cka.npy shape %v, want [%d %d]", name, ref.Shape, L, L)
			}
			var maxDiff float64
			for a := 0; a < L; a++ {
				for b := 0; b < L; b++ {
					maxDiff = math.Max(maxDiff, math.Abs(got[a][b]-want[a*L+b]))
				}
			}
			t.Logf("%s: 16 rows in the Go runtime: max |CKA - cka.npy| = %.3g", name, maxDiff)
			if maxDiff > 1e-4 {
				t.Errorf("max |CKA - %s.cka.npy| = %g, want <= 1e-4\ngot %.6f\nwant %.6f", name, maxDiff, got, want)
			}
		})
	}
}
