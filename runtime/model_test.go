package runtime_test

import (
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
)

func loadSession(t testing.TB, name string, opts runtime.Options) *runtime.Session {
	t.Helper()
	m, err := onnx.Load(testenv.TestModel(t, name))
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.New(m.Proto, opts)
	if err != nil {
		t.Fatalf("runtime.New(%s): %v", name, err)
	}
	return s
}

// calibRows returns rows [0, n) of the calibration set as an int64 [n, T]
// tensor.
func calibRows(t testing.TB, n int) *runtime.Tensor {
	t.Helper()
	set, err := tokens.Read(testenv.TestFile(t, "tokens/calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	T := set.SeqLen()
	ids := make([]int64, 0, n*T)
	for _, r := range set.Rows[:n] {
		ids = append(ids, r...)
	}
	x, err := runtime.NewInt64([]int{n, T}, ids)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func readNpy(t *testing.T, rel string) *npy.Array {
	t.Helper()
	a, err := npy.Read(testenv.TestFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// finalNormName finds the value feeding the LM head: the non-initializer
// input of the MatMul (or Gemm) that produces the logits.
func finalNormName(t *testing.T, s *runtime.Session) string {
	t.Helper()
	g := s.Model().GetGraph()
	inits := map[string]bool{}
	for _, x := range g.GetInitializer() {
		inits[x.GetName()] = true
	}
	logits := s.Outputs()[0].Name
	for _, n := range g.GetNode() {
		if len(n.GetOutput()) > 0 && n.GetOutput()[0] == logits && (n.GetOpType() == "MatMul" || n.GetOpType() == "Gemm") {
			for _, in := range n.GetInput() {
				if !inits[in] {
					return in
				}
			}
		}
	}
	t.Fatalf("no LM head MatMul produces %q", logits)
	return ""
}

const tol = 1e-4

func TestReferenceModels(t *testing.T) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			s := loadSession(t, name, runtime.Options{})
			hidden, _ := testenv.Streams(t, name)
			fnorm := finalNormName(t, s)
			fetch := append(append([]string{}, hidden...), fnorm, "logits")
			feeds := map[string]*runtime.Tensor{"input_ids": calibRows(t, 2)}
			// Run twice: the first run evaluates everything and caches the
			// shape-only values, the second runs the tensor math only.
			for run := range 2 {
				out, err := s.Run(feeds, fetch)
				if err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
				want := readNpy(t, name+".hidden.npy")
				wd, _ := want.Float32s()
				per := wd[:len(wd)/len(hidden)]
				worst := 0.0
				for i, h := range hidden {
					got := out[h].Float32Data()
					if len(got) != len(per) {
						t.Fatalf("run %d: %s has %d values (shape %v), want %d", run, h, len(got), out[h].Shape(), len(per))
					}
					e := stats.RelMax(got, wd[i*len(per):(i+1)*len(per)])
					if e > tol {
						t.Errorf("run %d: hidden %d (%s): relative error %.3g, want <= %g", run, i, h, e, tol)
					}
					worst = math.Max(worst, e)
				}
				if run == 1 {
					t.Logf("hidden states (%d boundaries): worst relative error %.2g", len(hidden), worst)
				}
				for _, c := range []struct{ value, file string }{{fnorm, ".final_norm.npy"}, {"logits", ".logits.npy"}} {
					w, _ := readNpy(t, name+c.file).Float32s()
					got := out[c.value].Float32Data()
					if len(got) != len(w) {
						t.Fatalf("run %d: %s has %d values, want %d", run, c.value, len(got), len(w))
					}
					e := stats.RelMax(got, w)
					if e > tol {
						t.Errorf("run %d: %s (%s): relative error %.3g, want <= %g", run, c.file, c.value, e, tol)
					}
					if run == 1 {
						t.Logf("%s: relative error %.2g", c.file, e)
					}
				}
			}
		})
	}
}

// TestPartialRun feeds the hidden state entering layer k (taken from a full
// run) together with input_ids (the masks and positions derive from its shape)
// and checks that the logits equal the full run's, for every k.
func TestPartialRun(t *testing.T) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			s := loadSession(t, name, runtime.Options{})
			hidden, _ := testenv.Streams(t, name)
			ids := calibRows(t, 2)
			full, err := s.Run(map[string]*runtime.Tensor{"input_ids": ids}, append(append([]string{}, hidden...), "logits"))
			if err != nil {
				t.Fatal(err)
			}
			want := full["logits"].Float32Data()
			for k, h := range hidden {
				feeds := map[string]*runtime.Tensor{"input_ids": ids, h: full[h]}
				for run := range 2 {
					out, err := s.Run(feeds, []string{"logits"})
					if err != nil {
						t.Fatalf("from layer %d (%s), run %d: %v", k, h, run, err)
					}
					got := out["logits"].Float32Data()
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("from layer %d (%s), run %d: logits[%d] = %v, want %v (full run)", k, h, run, i, got[i], want[i])
						}
					}
				}
			}
		})
	}
}
