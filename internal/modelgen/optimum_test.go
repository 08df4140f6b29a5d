package modelgen

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

var optimumBase = Config{Arch: Llama, Layers: 3, Hidden: 32, Heads: 4, KVHeads: 2, Seed: 5,
	KVCache: true, AttentionMask: true, Opset: 17}

// TestOptimumMergedLayout checks the merged model against merge_decoders:
// one If on use_cache_branch, the weights in the outer graph once, the
// scalars in the branches, the interface.
func TestOptimumMergedLayout(t *testing.T) {
	for _, c := range []Config{optimumBase, func() Config { c := optimumBase; c.TransposedWeights = true; return c }()} {
		t.Run(fmt.Sprintf("transposed=%v", c.TransposedWeights), func(t *testing.T) {
			m, err := BuildOptimumMerged(c)
			if err != nil {
				t.Fatal(err)
			}
			twin := mustBuild(t, c)
			g := m.GetGraph()
			if m.GetIrVersion() != 9 || m.GetProducerName() != "optimum-onnx" || g.GetName() != "merged" {
				t.Errorf("ir %d producer %q graph %q, want 9, optimum-onnx, merged", m.GetIrVersion(), m.GetProducerName(), g.GetName())
			}
			if len(g.Node) != 1 || g.Node[0].GetOpType() != "If" || g.Node[0].GetName() != "optimum::if" || strings.Join(g.Node[0].Input, ",") != "use_cache_branch" {
				t.Fatalf("nodes %v, want one If optimum::if on use_cache_branch", g.Node)
			}
			var ins []string
			for _, vi := range g.Input {
				ins = append(ins, vi.GetName())
			}
			var want []string
			for _, vi := range twin.GetGraph().GetInput() {
				want = append(want, vi.GetName())
			}
			want = append(want, "use_cache_branch")
			if strings.Join(ins, " ") != strings.Join(want, " ") {
				t.Errorf("inputs %v, want %v", ins, want)
			}
			cond := g.Input[len(g.Input)-1].GetType().GetTensorType()
			if cond.GetElemType() != int32(pb.TensorProto_BOOL) || len(cond.GetShape().GetDim()) != 1 || cond.GetShape().GetDim()[0].GetDimValue() != 1 {
				t.Errorf("use_cache_branch %v, want BOOL [1]", cond)
			}
			if d := g.Input[1].GetType().GetTensorType().GetShape().GetDim()[1].GetDimParam(); g.Input[1].GetName() != "attention_mask" || d != "attention_mask_sequence_length" {
				t.Errorf("attention_mask axis 1 %q, want attention_mask_sequence_length", d)
			}
			// Every weight of the twin (rank ≥ 2, or a float vector) once,
			// under NAME_merged_0; no branch keeps one.
			weights := 0
			for _, w := range twin.GetGraph().GetInitializer() {
				if len(w.GetDims()) > 1 || len(w.GetDims()) == 1 && w.GetDataType() == int32(pb.TensorProto_FLOAT) {
					weights++
				}
			}
			if len(g.Initializer) != weights {
				t.Errorf("%d outer initializers, want the twin's %d weights", len(g.Initializer), weights)
			}
			for _, w := range g.Initializer {
				if !strings.HasSuffix(w.GetName(), "_merged_0") {
					t.Errorf("outer initializer %q, want NAME_merged_0", w.GetName())
				}
			}
			names := map[string]string{}
			for _, a := range g.Node[0].Attribute {
				b := a.GetG()
				names[a.GetName()] = b.GetName()
				if len(b.GetInput()) != 0 {
					t.Errorf("%s declares inputs", a.GetName())
				}
				for _, w := range b.GetInitializer() {
					if len(w.GetDims()) > 1 || len(w.GetDims()) == 1 && w.GetDataType() != int32(pb.TensorProto_INT64) && w.GetDataType() != int32(pb.TensorProto_INT32) {
						t.Errorf("%s keeps initializer %q %v", a.GetName(), w.GetName(), w.GetDims())
					}
				}
				if len(b.GetOutput()) != len(g.GetOutput()) {
					t.Errorf("%s: %d outputs, want %d", a.GetName(), len(b.GetOutput()), len(g.GetOutput()))
				}
			}
			if names["then_branch"] != "with_past" || names["else_branch"] != "no_past" {
				t.Errorf("branches %v, want then with_past, else no_past", names)
			}
			// The installed checker (Debian's onnx 1.12) reads IR ≤ 8; nothing
			// in the model needs IR 9, which merge_decoders writes.
			m8 := proto.Clone(m).(*pb.ModelProto)
			m8.IrVersion = proto.Int64(8)
			judge.Checker(t).Valid(t, saveModel(t, m8))
		})
	}
	bad := optimumBase
	bad.KVCache = false
	if _, err := BuildOptimumMerged(bad); err == nil {
		t.Error("a merged decoder without a KV cache: want an error")
	}
}

// TestJudgeOptimumMerged: onnxruntime runs the merged model's two branches
// and gives the plain twin's logits and presents: use_cache_branch false
// with an empty past (optimum's first step), true with the twin's presents
// of the first tokens as past.
func TestJudgeOptimumMerged(t *testing.T) {
	ort := judge.ORT(t)
	for _, c := range []Config{optimumBase, func() Config { c := optimumBase; c.TransposedWeights, c.Opset = true, 14; return c }()} {
		t.Run(fmt.Sprintf("opset%d", c.Opset), func(t *testing.T) {
			c = c.defaults()
			mpath := saveModel(t, mustBuildWith(t, BuildOptimumMerged, c))
			tpath := saveModel(t, mustBuild(t, c))
			const B, T, k = 2, 9, 3
			in := sample(c, 11, B, T, 2)
			check := func(what string, f map[string]*npy.Array, useCache bool) {
				t.Helper()
				want, err := ort.Run(tpath, f, nil)
				if err != nil {
					t.Fatal(err)
				}
				f["use_cache_branch"] = mustNPY(t, []int{1}, []bool{useCache})
				got, err := ort.Run(mpath, f, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s: %d outputs, the twin %d", what, len(got), len(want))
				}
				for name, w := range want {
					if !equalShapes(got[name].Shape, w.Shape) {
						t.Fatalf("%s: %s shape %v, the twin's %v", what, name, got[name].Shape, w.Shape)
					}
					d := stats.RelMax(float32s(t, got[name]), float32s(t, w))
					if name == "logits" {
						t.Logf("%s: max |merged − twin| / max |twin| = %.3g (logits %v)", what, d, w.Shape)
					}
					if d > 1e-5 {
						t.Errorf("%s: %s: max |merged − twin| / max |twin| = %.3g, want ≤ 1e-5", what, name, d)
					}
				}
			}
			check("no past", feeds(t, c, in, 0, nil), false)
			first := refInput{ids: columns(in.ids, 0, T-k), mask: columns(in.mask, 0, T-k)}
			past, err := ort.Run(tpath, feeds(t, c, first, 0, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			last := refInput{ids: columns(in.ids, T-k, T), mask: in.mask}
			check("with past", feeds(t, c, last, T-k, past), true)
		})
	}
}

func mustNPY(t *testing.T, shape []int, data any) *npy.Array {
	t.Helper()
	a, err := npy.New(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func equalShapes(a, b []int) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}
