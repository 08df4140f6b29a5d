package distill

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onnxslm/onnxslm/internal/rusage"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
)

var measure = flag.Bool("distill.measure", false, "run the measurements of docs/design/recovery.md")

// mergePaper is the paper's merge of a window's layers:
// θ_low + Σ_{i>low}(θ_i − θ_low), tensor by tensor.
func mergePaper(ls []*Layer) *Layer {
	m := ls[0].Clone()
	for _, l := range ls[1:] {
		for j, p := range m.Params() {
			q, b := *l.Params()[j].Data, *ls[0].Params()[j].Data
			for i := range *p.Data {
				(*p.Data)[i] += q[i] - b[i]
			}
		}
	}
	return m
}

// calibBoundaries runs llama8 on all 16 calibration rows and returns the
// stream at every boundary, per row.
func calibBoundaries(t *testing.T, g *graphIndex, name string, m *onnx.Model) [][][]float32 {
	hidden, _ := testenv.Streams(t, name)
	set, err := tokens.Read(testenv.TestFile(t, "tokens/calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.New(m.Proto, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := make([][][]float32, len(hidden))
	for _, row := range set.Rows {
		in, err := runtime.NewInt64([]int{1, len(row)}, row)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Run(map[string]*runtime.Tensor{"input_ids": in}, hidden)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hidden {
			res[i] = append(res[i], out[h].Float32Data())
		}
	}
	return res
}

// measuring skips t unless -distill.measure is given.
func measuring(t *testing.T) {
	t.Helper()
	if !*measure {
		t.Skip("a measurement: -distill.measure")
	}
}

// llama8Measured skips t unless -distill.measure is given; then it returns
// llama8, its graph index, the streams between its layers on the
// calibration rows, and its layers.
func llama8Measured(t *testing.T) (*onnx.Model, *graphIndex, [][][]float32, []*Layer) {
	t.Helper()
	measuring(t)
	m, g := sharedModel(t, "llama8")
	return m, g, calibBoundaries(t, g, "llama8", m), llama8Layers(g)
}

// TestMeasureLlama8Windows merges windows of llama8 with the paper's rule
// and distills each fused layer toward its window on 12 calibration rows,
// 4 held out (go test ./distill -run Measure -distill.measure -v).
func TestMeasureLlama8Windows(t *testing.T) {
	_, _, hs, layers := llama8Measured(t)
	for _, w := range [][2]int{{4, 6}, {5, 7}, {2, 4}, {1, 2}} {
		for _, lr := range []float64{3e-4, 1e-3} {
			fused, c0 := mergePaper(layers[w[0]:w[1]+1]), rusage.CPU()
			fit := Rows{X: hs[w[0]][:12], Y: hs[w[1]+1][:12], T: 128}
			held := Rows{X: hs[w[0]][12:], Y: hs[w[1]+1][12:], T: 128}
			_, rep, err := Train(context.Background(), fused, fit, held, Options{Steps: 300, Batch: 4, LR: lr, Patience: 5})
			if err != nil {
				t.Fatal(err)
			}
			cpu := rusage.CPU() - c0
			t.Logf("window %d..%d lr %g: fit %.4f → %.4f, held-out %.4f → %.4f, %d steps (best %d, %s), %v wall, %v CPU, %.1f steps per CPU-second",
				w[0], w[1], lr, rep.FitBefore, rep.FitAfter, rep.HeldBefore, rep.HeldAfter, rep.Steps, rep.BestStep, rep.Stop,
				rep.Elapsed.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(rep.Steps)/cpu.Seconds())
			if !(rep.HeldAfter < rep.HeldBefore) {
				t.Errorf("window %d..%d: held-out loss did not improve", w[0], w[1])
			}
		}
	}
}

// TestMeasure1BStep times training steps of a layer of the 1.26 B model's
// shape (d 2048, 32 heads, FFN 5632) on rows of 512 tokens.
func TestMeasure1BStep(t *testing.T) {
	measuring(t)
	l := randomLayer(Llama, 2048, 32, 32, 5632, 1)
	l.QBias = nil
	rot := RotaryTables(64, 512, 10000)
	l.Rotary = &rot
	rng := rand.New(rand.NewPCG(1, 1))
	var fit Rows
	fit.T = 512
	for i := 0; i < 2; i++ {
		fit.X = append(fit.X, convert[float32](randn(rng, 512*2048, 0, 1)))
		fit.Y = append(fit.Y, convert[float32](randn(rng, 512*2048, 0, 1)))
	}
	start, c0 := time.Now(), rusage.CPU()
	if _, err := Forward(l, fit.X[0], 512); err != nil {
		t.Fatal(err)
	}
	fwd, fwdCPU := time.Since(start), rusage.CPU()-c0
	cpu0, last := rusage.CPU(), time.Duration(0)
	_, rep, err := Train(context.Background(), l, fit, Rows{}, Options{Steps: 4, Batch: 1, Progress: func(p Progress) {
		c := rusage.CPU()
		t.Logf("step %d: %v wall, %v CPU", p.Step, (p.Elapsed - last).Round(time.Millisecond), (c - cpu0).Round(time.Millisecond))
		cpu0, last = c, p.Elapsed
	}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("1B-class layer, 512 tokens: Forward %v wall, %v CPU; %d steps of 1 row in %v (incl. graph build and 2 loss evaluations of 2 rows)\n",
		fwd.Round(time.Millisecond), fwdCPU.Round(time.Millisecond), rep.Steps, rep.Elapsed.Round(time.Millisecond))
}

// TestMeasureLlama8Perplexity: perplexity on eval_go of llama8 with one
// window merged by the paper's rule, before and after distilling the fused
// layer. The merged model is emulated without graph surgery: the fused
// weights go into layer low, and layers low+1..high get zero o and down
// projections, which makes them the identity (x + 0 + 0).
func TestMeasureLlama8Perplexity(t *testing.T) {
	m, g, hs, layers := llama8Measured(t)
	eval, err := tokens.Read(testenv.TestFile(t, "tokens/eval_go_64x256.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ppl := func(model *pb.ModelProto) float64 {
		s, err := runtime.New(model, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := lm.Perplexity(context.Background(), s, eval.Rows, lm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Perplexity
	}
	withWindow := func(model *pb.ModelProto, fused *Layer, low, high int) *pb.ModelProto {
		out := writeLayer(t, model, fused, llama8Names(g, low), "")
		for i := low + 1; i <= high; i++ {
			id := layers[i].Clone()
			clear(id.O)
			clear(id.Down)
			out = writeLayer(t, out, id, llama8Names(g, i), "")
		}
		return out
	}
	t.Logf("original: eval_go perplexity %.4f", ppl(m.Proto))
	// Each window is distilled on its own boundaries of the original model.
	for _, ws := range [][][2]int{{{4, 6}}, {{5, 7}}, {{2, 4}}, {{1, 2}}, {{1, 2}, {4, 6}}, {{2, 4}, {6, 7}}} {
		merged, distilled := m.Proto, m.Proto
		for _, w := range ws {
			fused := mergePaper(layers[w[0] : w[1]+1])
			fit := Rows{X: hs[w[0]][:12], Y: hs[w[1]+1][:12], T: 128}
			held := Rows{X: hs[w[0]][12:], Y: hs[w[1]+1][12:], T: 128}
			trained, rep, err := Train(context.Background(), fused, fit, held, Options{Steps: 300, Batch: 4, LR: 1e-3, Patience: 5})
			if err != nil {
				t.Fatal(err)
			}
			merged, distilled = withWindow(merged, fused, w[0], w[1]), withWindow(distilled, trained, w[0], w[1])
			t.Logf("window %d..%d: held-out loss %.3f → %.3f", w[0], w[1], rep.HeldBefore, rep.HeldAfter)
		}
		t.Logf("windows %v: eval_go perplexity merged %.4f → distilled %.4f", ws, ppl(merged), ppl(distilled))
	}
}
