package rewrite_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"google.golang.org/protobuf/proto"
)

// widthConfigs are the layouts the width pass must keep valid: SwiGLU with
// [in, out] weights, [out, in] weights read through Transpose with tied
// embeddings and Identity-deduplicated norms, float16 weights read through
// Cast, GQA with a KV cache, GPT-2 with biases (Gemm), with and without a KV
// cache.
var widthConfigs = map[string]modelgen.Config{
	"llama":      {Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 4, FFN: 24, TransposedWeights: true, Seed: 1},
	"llama_alt":  {Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 4, FFN: 24, TiedEmbeddings: true, DedupIdentity: true, Opset: 13, Seed: 2},
	"llama_fp16": {Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 4, FFN: 24, TransposedWeights: true, Float16: true, Seed: 3},
	"llama_kv":   {Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 4, KVHeads: 2, FFN: 24, KVCache: true, AttentionMask: true, PositionIDs: true, TransposedWeights: true, Seed: 4},
	"gpt2":       {Arch: modelgen.GPT2, Layers: 3, Hidden: 16, Heads: 4, FFN: 64, TiedEmbeddings: true, TransposedWeights: true, Seed: 5},
	"gpt2_kv":    {Arch: modelgen.GPT2, Layers: 3, Hidden: 16, Heads: 4, FFN: 64, KVCache: true, AttentionMask: true, MaxPos: 32, Seed: 6},
}

// keepAllBut returns the channels of [0, F) not ≡ 1 mod 3.
func keepAllBut(F int) []int {
	var keep []int
	for j := 0; j < F; j++ {
		if j%3 != 1 {
			keep = append(keep, j)
		}
	}
	return keep
}

// zeroDownRows returns a copy of m whose layer l's down weight is zero in
// the rows (input features) not in keep: the model width pruning without
// compensation must compute.
func zeroDownRows(t *testing.T, m *pb.ModelProto, l *discover.Layer, keep []int) *pb.ModelProto {
	t.Helper()
	_, _, down, err := rewrite.MLPProjections(l)
	if err != nil {
		t.Fatal(err)
	}
	return zeroInputRows(t, m, l, down, keep)
}

// zeroInputRows returns a copy of m whose layer l's projection proj has a
// zero weight in the input features not in keep.
func zeroInputRows(t *testing.T, m *pb.ModelProto, l *discover.Layer, proj *discover.Projection, keep []int) *pb.ModelProto {
	t.Helper()
	p := l.Params[proj.Matrix()]
	kept := map[int]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	c := proto.Clone(m).(*pb.ModelProto)
	for i, init := range c.Graph.Initializer {
		if init.GetName() != p.Name {
			continue
		}
		x, err := onnx.DecodeTensor(init)
		if err != nil {
			t.Fatal(err)
		}
		cols := int(p.Dims[1])
		zero := func(idx int) bool {
			r, col := idx/cols, idx%cols
			if p.Transposed {
				return !kept[col]
			}
			return !kept[r]
		}
		switch d := x.Data.(type) {
		case []float32:
			for idx := range d {
				if zero(idx) {
					d[idx] = 0
				}
			}
		case []uint16:
			for idx := range d {
				if zero(idx) {
					d[idx] = 0
				}
			}
		default:
			t.Fatalf("weight of type %T", x.Data)
		}
		nt, err := onnx.EncodeTensor(p.Name, x)
		if err != nil {
			t.Fatal(err)
		}
		c.Graph.Initializer[i] = nt
		return c
	}
	t.Fatalf("weight %q is not an initializer", p.Name)
	return nil
}

// runGo runs m on rows with empty pasts and returns the fetched values.
func runGo(t *testing.T, m *pb.ModelProto, rows [][]int64, fetch []string) map[string]*runtime.Tensor {
	t.Helper()
	sess, err := runtime.New(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return runner(t, sess, fetch)(lm.Feeds(sess, rows))
}

// runner returns a function that runs sess on feeds as lm.Feeds and
// lm.FeedsAfter return them and gives the fetched values (every output for a
// nil fetch); an error from either fails t.
func runner(t *testing.T, sess *runtime.Session, fetch []string) func(map[string]*runtime.Tensor, error) map[string]*runtime.Tensor {
	return func(feeds map[string]*runtime.Tensor, err error) map[string]*runtime.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.Run(feeds, fetch)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func randomRows(n, T, vocab int, seed uint64) [][]int64 {
	r := rand.New(rand.NewPCG(seed, 7))
	rows := make([][]int64, n)
	for i := range rows {
		for j := 0; j < T; j++ {
			rows[i] = append(rows[i], int64(r.IntN(vocab)))
		}
	}
	return rows
}

// TestWidthEqualsZeroedChannels: removing MLP channels (no compensation)
// computes what the original computes with those channels' down rows set to
// zero, in every layout; the parameter count falls by the channels' share;
// every layer gets one new width, and the result is rediscovered with it.
func TestWidthEqualsZeroedChannels(t *testing.T) {
	for name, c := range widthConfigs {
		t.Run(name, func(t *testing.T) {
			m, s := testmodel.Generated(t, c)
			F := mlpWidthOf(t, &s.Layers[0])
			keep := keepAllBut(F)
			ref := m
			var plan rewrite.WidthPlan
			for li := range s.Layers {
				plan.MLP = append(plan.MLP, rewrite.MLPChannels{Layer: li, Keep: keep})
				ref = zeroDownRows(t, ref, &s.Layers[li], keep)
			}
			res, err := rewrite.Width(m, s, plan, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			per, err := rewrite.MLPChannelParams(&s.Layers[0])
			if err != nil {
				t.Fatal(err)
			}
			before, _ := onnx.Parameters(m)
			after, _ := onnx.Parameters(res.Model)
			if want := before - int64(len(s.Layers))*per*int64(F-len(keep)); after != want {
				t.Errorf("parameters %d → %d, want %d", before, after, want)
			}
			s2, err := discover.Find(res.Model)
			if err != nil {
				t.Fatalf("width-pruned model: %v", err)
			}
			for i, l := range s2.Layers {
				if got, want := mlpWidthOf(t, &l), len(keep); got != want {
					t.Errorf("layer %d: MLP width %d, want %d", i, got, want)
				}
			}
			sameLogits(t, res.Model, ref, s.Logits)
		})
	}
}

// sameLogits checks that m gives the logits of the zeroed model ref on
// random rows (empty pasts).
func sameLogits(t *testing.T, m, ref *pb.ModelProto, logits string) {
	t.Helper()
	rows := randomRows(2, 7, 256, 1)
	got := runGo(t, m, rows, []string{logits})[logits].Float32Data()
	want := runGo(t, ref, rows, []string{logits})[logits].Float32Data()
	if len(got) != len(want) {
		t.Fatalf("%d logits, want %d", len(got), len(want))
	}
	if d := stats.MaxAbsDiff(got, want); d > 1e-4 {
		t.Errorf("logits differ from the zeroed model's by %g", d)
	}
}

func mlpWidthOf(t *testing.T, l *discover.Layer) int {
	t.Helper()
	_, _, down, err := rewrite.MLPProjections(l)
	if err != nil {
		t.Fatal(err)
	}
	return int(down.In)
}

// downWeight is a layer's MLP down projection as stored: F channels in, out
// out, [F, out] or, transposed, [out, F].
type downWeight struct {
	w          []float32
	transposed bool
	F, out     int
}

func downWeightOf(t *testing.T, m *pb.ModelProto, l *discover.Layer) downWeight {
	t.Helper()
	_, _, down, err := rewrite.MLPProjections(l)
	if err != nil {
		t.Fatal(err)
	}
	p := l.Params[down.Matrix()]
	return downWeight{w: testmodel.Floats(t, m, p.Name), transposed: p.Transposed, F: int(down.In), out: int(down.Out)}
}

// at is the weight from channel j to output o.
func (d downWeight) at(j, o int) float32 {
	if d.transposed {
		return d.w[o*d.F+j]
	}
	return d.w[j*d.out+o]
}

// removedShift is the removed channels' mean contribution to each output,
// Σ_{j not kept} mean_j·W[j, o].
func (d downWeight) removedShift(keep []int, mean []float32) []float64 {
	kept := map[int]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	shift := make([]float64, d.out)
	for j := 0; j < d.F; j++ {
		if kept[j] {
			continue
		}
		for o := range shift {
			shift[o] += float64(mean[j]) * float64(d.at(j, o))
		}
	}
	return shift
}

// TestWidthCompensation: with channel means given, the stream leaving the
// pruned layer differs from the zeroed model's by exactly the removed
// channels' mean contribution, Σ mean_j·W_down[j,:], for a down projection
// with a bias (GPT-2) and one without (Llama: the pass adds one).
func TestWidthCompensation(t *testing.T) {
	for _, name := range []string{"llama", "llama_alt", "gpt2"} {
		t.Run(name, func(t *testing.T) {
			m, s := testmodel.Generated(t, widthConfigs[name])
			const li = 1
			l := &s.Layers[li]
			F := mlpWidthOf(t, l)
			keep := keepAllBut(F)
			r := rand.New(rand.NewPCG(3, 4))
			mean := make([]float32, F)
			for j := range mean {
				mean[j] = float32(r.NormFloat64())
			}
			res, err := rewrite.Width(m, s, rewrite.WidthPlan{MLP: []rewrite.MLPChannels{{Layer: li, Keep: keep, Mean: mean}}}, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			if ch := res.Changes[0]; !ch.Compensated {
				t.Errorf("change %+v: not compensated", ch)
			}
			ref := zeroDownRows(t, m, l, keep)
			// The expected shift, from the original down weight.
			dw := downWeightOf(t, m, l)
			out := dw.out
			shift := dw.removedShift(keep, mean)
			rows := randomRows(2, 5, 256, 2)
			got := runGo(t, res.Model, rows, []string{l.Output})[l.Output].Float32Data()
			want := runGo(t, ref, rows, []string{l.Output})[l.Output].Float32Data()
			var maxErr, maxShift float64
			for i := range got {
				d := float64(got[i] - want[i])
				maxErr = math.Max(maxErr, math.Abs(d-shift[i%out]))
				maxShift = math.Max(maxShift, math.Abs(shift[i%out]))
			}
			if maxShift < 1e-3 {
				t.Fatalf("test is too weak: largest shift %g", maxShift)
			}
			if maxErr > 1e-4 {
				t.Errorf("stream shift differs from the removed channels' mean contribution by %g (largest shift %g)", maxErr, maxShift)
			}
		})
	}
}

// TestWidthNewDownWeight: a new down weight for the kept channels (here the
// original rows) with an offset computes what the mean compensation does
// with that offset, in both weight layouts.
func TestWidthNewDownWeight(t *testing.T) {
	for _, name := range []string{"llama", "llama_alt", "gpt2"} {
		t.Run(name, func(t *testing.T) {
			m, s := testmodel.Generated(t, widthConfigs[name])
			l := &s.Layers[1]
			F := mlpWidthOf(t, l)
			keep := keepAllBut(F)
			dw := downWeightOf(t, m, l)
			var rows []float32
			for _, j := range keep {
				for o := 0; o < dw.out; o++ {
					rows = append(rows, dw.at(j, o))
				}
			}
			mean := make([]float32, F)
			for j := range mean {
				mean[j] = float32(j%5) - 2
			}
			offset := make([]float32, dw.out)
			for o, x := range dw.removedShift(keep, mean) {
				offset[o] = float32(x)
			}
			a, err := rewrite.Width(m, s, rewrite.WidthPlan{MLP: []rewrite.MLPChannels{{Layer: 1, Keep: keep, Mean: mean}}}, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			b, err := rewrite.Width(m, s, rewrite.WidthPlan{MLP: []rewrite.MLPChannels{{Layer: 1, Keep: keep, Down: rows, Offset: offset}}}, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			if !b.Changes[0].Refit || !b.Changes[0].Compensated {
				t.Errorf("change %+v: want refit and compensated", b.Changes[0])
			}
			in := randomRows(2, 5, 256, 3)
			got := runGo(t, b.Model, in, []string{s.Logits})[s.Logits].Float32Data()
			want := runGo(t, a.Model, in, []string{s.Logits})[s.Logits].Float32Data()
			if d := stats.MaxAbsDiff(got, want); d > 1e-4 {
				t.Errorf("logits differ by %g", d)
			}
		})
	}
}

// TestWidthRefuses: plans the pass cannot carry out are errors, not broken
// models.
func TestWidthRefuses(t *testing.T) {
	m, s := testmodel.Generated(t, widthConfigs["llama"])
	F := mlpWidthOf(t, &s.Layers[0])
	for name, plan := range map[string]rewrite.WidthPlan{
		"no channel":   {MLP: []rewrite.MLPChannels{{Layer: 0}}},
		"unsorted":     {MLP: []rewrite.MLPChannels{{Layer: 0, Keep: []int{3, 1}}}},
		"out of range": {MLP: []rewrite.MLPChannels{{Layer: 0, Keep: []int{F}}}},
		"no layer":     {MLP: []rewrite.MLPChannels{{Layer: 9, Keep: []int{1}}}},
		"twice":        {MLP: []rewrite.MLPChannels{{Layer: 0, Keep: []int{1}}, {Layer: 0, Keep: []int{2}}}},
		"short means":  {MLP: []rewrite.MLPChannels{{Layer: 0, Keep: []int{1}, Mean: []float32{1}}}},
		"short down":   {MLP: []rewrite.MLPChannels{{Layer: 0, Keep: []int{1}, Down: []float32{1}}}},
		"short offset": {MLP: []rewrite.MLPChannels{{Layer: 0, Keep: []int{1}, Offset: []float32{1}}}},
	} {
		if _, err := rewrite.Width(m, s, plan, rewrite.Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
