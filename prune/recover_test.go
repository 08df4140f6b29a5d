package prune

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
)

func TestRecoverSpans(t *testing.T) {
	for _, c := range []struct {
		name string
		L    int
		kept []int
		want []recoverSpan
	}{
		{"nothing removed", 4, []int{0, 1, 2, 3}, nil},
		{"merged windows", 8, []int{0, 2, 4, 5, 6, 7}, []recoverSpan{{0, 0, 1}, {1, 2, 3}}},
		{"gap at the top", 6, []int{0, 1, 2, 3}, []recoverSpan{{3, 3, 5}}},
		{"gap at the bottom", 6, []int{2, 3, 4, 5}, []recoverSpan{{0, 0, 2}}},
		{"one layer left", 3, []int{1}, []recoverSpan{{0, 0, 2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := recoverSpans(c.L, c.kept); !reflect.DeepEqual(got, c.want) {
				t.Errorf("recoverSpans(%d, %v) = %v, want %v", c.L, c.kept, got, c.want)
			}
		})
	}
}

func TestRecoverOptionChecks(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string // option named first in the error; "" for none
	}{
		{Options{Recover: true, RecoverSteps: 10, RecoverLR: 1e-3}, ""},
		{Options{Recover: true, RecoverSteps: -1}, "RecoverSteps"},
		{Options{Recover: true, RecoverBudget: -1}, "RecoverBudget"},
		{Options{Recover: true, RecoverLR: math.NaN()}, "RecoverLR"},
		{Options{RecoverSteps: 5}, "RecoverSteps"},
		{Options{RecoverLR: 1e-3}, "RecoverLR"},
	} {
		err := c.o.Check()
		var got string
		if oe, ok := err.(*OptionError); ok {
			got = oe.Options[0].Name
		} else if err != nil {
			t.Errorf("%+v: %v is not an *OptionError", c.o, err)
		}
		if got != c.want {
			t.Errorf("Check(%+v) = %v, want an error naming %q", c.o, err, c.want)
		}
	}
}

// TestRecoverSharedModels prunes the shared models with recovery (a few
// steps) by several methods, and checks that the report's held-out losses
// do not get worse, that every trained layer is new initializers while the
// input model stays untouched, and that onnxruntime computes the Go
// runtime's logits from the written model.
func TestRecoverSharedModels(t *testing.T) {
	ort := judge.ORT(t)
	set, err := tokens.Read(testenv.TestFile(t, "tokens/calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ids := judge.CalibRows(t, 2)
	for _, c := range []struct {
		model  string
		method Method
		merge  rewrite.Rule
		layers int
	}{
		{"llama8", Auto, "", 6},
		{"gpt2_6", SLM, rewrite.Code, 4},
		{"llama8", ShortGPT, "", 6},
	} {
		t.Run(c.model+"/"+string(c.method), func(t *testing.T) {
			m, err := onnx.Load(testenv.TestModel(t, c.model))
			if err != nil {
				t.Fatal(err)
			}
			before, err := proto.MarshalOptions{Deterministic: true}.Marshal(m.Proto)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Run(context.Background(), m.Proto, Options{Method: c.method, Merge: c.merge, Layers: c.layers,
				Calibration: set.Rows, Recover: true, RecoverSteps: 12, RecoverLR: 1e-3})
			if err != nil {
				t.Fatal(err)
			}
			after, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m.Proto)
			if !bytes.Equal(before, after) {
				t.Error("Run changed the input model")
			}
			rc := out.Report.Recover
			if rc == nil || len(rc.Windows) == 0 {
				t.Fatalf("no recovered layers reported: %+v", rc)
			}
			t.Logf("layer: %s", rc.Layer)
			written := 0
			for _, w := range rc.Windows {
				t.Logf("layer %d (%d..%d): fit %.4f → %.4f, held-out %.4f → %.4f, %d steps (best %d)", w.Layer, w.From[0], w.From[1],
					w.FitBefore, w.FitAfter, *w.HeldBefore, *w.HeldAfter, w.Steps, w.BestStep)
				if *w.HeldAfter > *w.HeldBefore {
					t.Errorf("layer %d: held-out loss %.4f → %.4f", w.Layer, *w.HeldBefore, *w.HeldAfter)
				}
				if w.BestStep > 0 {
					written++
				}
			}
			st, err := discover.Find(out.Model)
			if err != nil {
				t.Fatal(err)
			}
			recovered := map[int]bool{}
			for j, l := range st.Layers {
				for _, p := range l.Params {
					if strings.Contains(p.Name, ".recovered") {
						recovered[j] = true
					}
				}
			}
			if len(recovered) != written {
				t.Errorf("%d layers read .recovered tensors, %d were trained", len(recovered), written)
			}
			for _, w := range rc.Windows {
				if w.BestStep > 0 && !recovered[w.Layer] {
					t.Errorf("layer %d was trained but reads none of the new tensors", w.Layer)
				}
			}

			path := filepath.Join(t.TempDir(), c.model+".onnx")
			if err := onnx.Save(out.Model, path, onnx.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			sess, err := runtime.New(out.Model, runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			feeds, err := lm.Feeds(sess, set.Rows[:2])
			if err != nil {
				t.Fatal(err)
			}
			goOut, err := sess.Run(feeds, []string{st.Logits})
			if err != nil {
				t.Fatal(err)
			}
			ortOut, err := ort.Run(path, map[string]*npy.Array{st.Tokens: ids}, []string{st.Logits})
			if err != nil {
				t.Fatal(err)
			}
			want, err := ortOut[st.Logits].Float32s()
			if err != nil {
				t.Fatal(err)
			}
			got := goOut[st.Logits].Float32Data()
			if len(got) != len(want) {
				t.Fatalf("Go runtime gave %d logits, onnxruntime %d", len(got), len(want))
			}
			diff, top := stats.MaxAbsDiff(got, want), stats.MaxAbs(want)
			t.Logf("Go runtime vs onnxruntime: largest difference %.2g of max |logit| %.3g", diff, top)
			if diff > 1e-4*top {
				t.Errorf("Go runtime and onnxruntime differ by %.2g (max |logit| %.3g)", diff, top)
			}
		})
	}
}

// TestRecoverVariants prunes the generated models (Llama, GPT-2, KV cache
// with GQA, float16 weights read through Casts, [out, in] weights read
// through Transposes with Identity-deduplicated norms) with recovery, and
// checks that the written layer is the trained one: fed the original stream
// entering its span, the Go runtime's output of the written model has the
// held-out loss the report gives. New tensors keep the dtype of those they
// replace.
func TestRecoverVariants(t *testing.T) {
	rows := randomRows(8, 24, 7)
	for _, name := range []string{"tiny_llama", "tiny_gpt2", "tiny_llama_kv", "tiny_llama_fp16", "tiny_llama_alt"} {
		t.Run(name, func(t *testing.T) {
			m, err := onnx.Load(filepath.Join("..", "testdata", "models", name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := Run(context.Background(), m.Proto, Options{Calibration: rows, Recover: true, RecoverSteps: 15, RecoverLR: 1e-3})
			if err != nil {
				t.Fatal(err)
			}
			rc := out.Report.Recover
			if rc == nil || len(rc.Windows) == 0 {
				t.Fatalf("nothing recovered: %+v", rc)
			}
			t.Logf("%s", rc.Layer)
			st, err := discover.Find(m.Proto)
			if err != nil {
				t.Fatal(err)
			}
			newSt, err := discover.Find(out.Model)
			if err != nil {
				t.Fatal(err)
			}
			// The original model's stream at every boundary.
			orig, err := runtime.New(m.Proto, runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			feeds, err := lm.Feeds(orig, rows)
			if err != nil {
				t.Fatal(err)
			}
			hs, err := orig.Run(feeds, st.Hidden)
			if err != nil {
				t.Fatal(err)
			}
			sess, err := runtime.New(out.Model, runtime.Options{})
			if err != nil {
				t.Fatal(err)
			}
			dtypes := map[string]string{}
			for _, l := range newSt.Layers {
				for _, p := range l.Params {
					dtypes[p.Role] = p.DType
				}
			}
			for _, w := range rc.Windows {
				if w.BestStep == 0 {
					t.Errorf("layer %d: 15 steps did not improve the held-out rows (%.4f)", w.Layer, *w.HeldBefore)
					continue
				}
				for _, p := range newSt.Layers[w.Layer].Params {
					if strings.Contains(p.Name, ".recovered") && p.DType != st.Layers[0].Params[p.Slot].DType {
						t.Errorf("%s stored as %s, the model's as %s", p.Name, p.DType, st.Layers[0].Params[p.Slot].DType)
					}
				}
				in, want := hs[st.Hidden[w.From[0]]], hs[st.Hidden[w.From[1]+1]]
				f := map[string]*runtime.Tensor{}
				for k, v := range feeds {
					if sess.HasValue(k) {
						f[k] = v
					}
				}
				f[newSt.Hidden[w.Layer]] = in
				res, err := sess.Run(f, []string{newSt.Hidden[w.Layer+1]})
				if err != nil {
					t.Fatal(err)
				}
				// Held-out rows are the last quarter.
				x, y, got := in.Float32Data(), want.Float32Data(), res[newSt.Hidden[w.Layer+1]].Float32Data()
				per := len(x) / len(rows)
				var num, den float64
				for i := rc.FitRows * per; i < len(x); i++ {
					num += sq(float64(got[i]) - float64(y[i]))
					den += sq(float64(x[i]) - float64(y[i]))
				}
				loss := num / den
				tol := 1e-4
				if strings.Contains(name, "fp16") {
					tol = 5e-2 // the trained weights are rounded to float16
				}
				if math.Abs(loss-*w.HeldAfter) > tol**w.HeldAfter {
					t.Errorf("layer %d: the written model's held-out loss is %.6f, the report's %.6f", w.Layer, loss, *w.HeldAfter)
				}
			}
		})
	}
}

func sq(x float64) float64 { return x * x }

// TestProbeArchRefuses: a layer whose output no candidate reproduces (here
// the true output scaled by 1.5) is refused, and recovery then skips with
// the reason instead of training a layer it cannot compute.
func TestProbeArchRefuses(t *testing.T) {
	m, st := testmodel.Stack(t, filepath.Join("..", "testdata", "models", "tiny_llama.onnx"))
	lw, err := readLayer(newTensorTable(m.Proto), &st.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	sess, err := runtime.New(m.Proto, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows := randomRows(1, 16, 3)
	feeds, err := lm.Feeds(sess, rows)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := sess.Run(feeds, st.Hidden[:2])
	if err != nil {
		t.Fatal(err)
	}
	x, y := hs[st.Hidden[0]].Float32Data(), hs[st.Hidden[1]].Float32Data()
	a, err := probeArch(lw, x, y, 16, 1e-3)
	if err != nil || a.HeadDim != 8 || a.Heads != 4 || a.Eps != 1e-6 || a.Theta != 10000 {
		t.Fatalf("true output: got %+v, %v; want 4 heads of 8, eps 1e-6, base 10000", a, err)
	}
	bad := make([]float32, len(y))
	for i, v := range y {
		bad[i] = 1.5 * v
	}
	if _, err := probeArch(lw, x, bad, 16, 1e-3); err == nil || !strings.Contains(err.Error(), "closest") {
		t.Errorf("scaled output: got %v, want a refusal naming the closest error", err)
	}
}

func TestDefaultRecoverSteps(t *testing.T) {
	for _, c := range []struct {
		params int64
		want   int
	}{{213_000, 200}, {10_000_000, 200}, {20_000_000, 100}, {51_000_000, 39}, {500_000_000, 20}, {0, 200}} {
		if got := defaultRecoverSteps(c.params); got != c.want {
			t.Errorf("defaultRecoverSteps(%d) = %d, want %d", c.params, got, c.want)
		}
	}
}
