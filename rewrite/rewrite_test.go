package rewrite_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/internal/golden"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/slm"
	"google.golang.org/protobuf/proto"

	"gonum.org/v1/gonum/blas"
)

// readers returns, for each slot of layer li of s, the name of the tensor that the
// slot's first use reads in the rewritten model r (through copied Transposes).
func readers(t *testing.T, r *pb.ModelProto, orig *pb.ModelProto, s *discover.Stack, li int) []string {
	t.Helper()
	g, err := graph.FromModel(r)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		byName[n.Name] = n
	}
	var names []string
	for _, p := range s.Layers[li].Params {
		u := p.Uses[0]
		n := byName[orig.Graph.Node[u.Node].GetName()]
		if n == nil {
			t.Fatalf("node %q is gone", orig.Graph.Node[u.Node].GetName())
		}
		v := n.Inputs[u.Input]
		for v.Producer != nil && (v.Producer.Op == "Transpose" || v.Producer.Op == "Identity" || v.Producer.Op == "Cast") {
			v = v.Producer.Inputs[0]
		}
		names = append(names, v.Name)
	}
	return names
}

// TestRules checks what each merge rule gives every slot of the merged layer.
func TestRules(t *testing.T) {
	for _, arch := range []string{modelgen.GPT2, modelgen.Llama} {
		m, s := testmodel.Generated(t, modelgen.Config{Arch: arch, Layers: 4, Hidden: 16, Heads: 2})
		const low, high = 0, 2
		win := []rewrite.Window{{Window: slm.Window{Low: low, High: high}}}
		for _, rule := range rewrite.Rules {
			t.Run(arch+"/"+string(rule), func(t *testing.T) {
				res, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rule, Windows: win}, rewrite.Options{Check: true})
				if err != nil {
					t.Fatal(err)
				}
				got := readers(t, res.Model, m, s, low)
				for k, p := range s.Layers[low].Params {
					name := func(i int) string { return s.Layers[i].Params[k].Name }
					data := func(i int) []float32 { return testmodel.Floats(t, m, name(i)) }
					var want []float32 // nil: the tensor is layer low's, unchanged
					wantName := name(low)
					switch {
					case !p.Kind.IsProjection() || rule == rewrite.Drop:
					case rule == rewrite.Code && p.Kind == discover.ProjWeight:
						wantName = name(high)
					case rule == rewrite.Code:
					case rule == rewrite.Paper:
						want = make([]float32, len(data(low)))
						for j := range want {
							x := float64(data(low)[j])
							for i := low + 1; i <= high; i++ {
								x += float64(data(i)[j]) - float64(data(low)[j])
							}
							want[j] = float32(x)
						}
					case rule == rewrite.Mean:
						want = make([]float32, len(data(low)))
						for j := range want {
							var x float64
							for i := low; i <= high; i++ {
								x += float64(data(i)[j])
							}
							want[j] = float32(x / float64(high-low+1))
						}
					}
					if want == nil {
						if got[k] != wantName {
							t.Errorf("slot %d (%s) reads %q, want %q", k, p.Role, got[k], wantName)
						}
						continue
					}
					if got[k] == name(low) || !strings.HasSuffix(got[k], fmt.Sprintf(".merged_%d_%d", low, high)) {
						t.Errorf("slot %d (%s) reads %q, want a new merged tensor", k, p.Role, got[k])
						continue
					}
					if d := relMax(testmodel.Floats(t, res.Model, got[k]), want); d > 1e-5 {
						t.Errorf("slot %d (%s): merged values off by %g", k, p.Role, d)
					}
				}
				if res.LayersAfter != 2 || fmt.Sprint(res.KeptFrom) != "[0 3]" {
					t.Errorf("layers after %d kept %v, want 2 [0 3]", res.LayersAfter, res.KeptFrom)
				}
			})
		}
	}
}

// relMax is max |a − b| / max |b| (stats.RelMax), +Inf when the lengths differ.
func relMax(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	return stats.RelMax(a, b)
}

// project computes y = x·W for W stored [in, out], or x·Wᵀ for [out, in].
func project(x, w []float32, dims []int64, transposed bool) []float32 {
	r, c := int(dims[0]), int(dims[1])
	if !transposed {
		y := make([]float32, c)
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				y[j] += x[i] * w[i*c+j]
			}
		}
		return y
	}
	y := make([]float32, r)
	for o := 0; o < r; o++ {
		for i := 0; i < c; i++ {
			y[o] += x[i] * w[o*c+i]
		}
	}
	return y
}

// TestRepairFoldsALinearMap: a repair map M folded into a projection makes it
// compute y·M (+ c) for any input, for both weight layouts, with gonum's BLAS
// and the runtime's.
func TestRepairFoldsALinearMap(t *testing.T) {
	layouts := map[bool]bool{} // discover.Param.Transposed values seen
	for _, tc := range []struct {
		arch       string
		withBias   bool
		transposed bool // modelgen's TransposedWeights
		blas       blas.Float32
	}{
		{modelgen.GPT2, true, false, nil},
		{modelgen.Llama, false, false, nil},
		{modelgen.Llama, false, true, nil},
		{modelgen.Llama, false, true, runtime.BLAS(2)},
		{modelgen.GPT2, true, false, runtime.BLAS(2)},
	} {
		t.Run(fmt.Sprintf("%s/transposed=%v/blas=%T", tc.arch, tc.transposed, tc.blas), func(t *testing.T) {
			m, s := testmodel.Generated(t, modelgen.Config{Arch: tc.arch, Layers: 3, Hidden: 16, Heads: 2, TransposedWeights: tc.transposed})
			l := s.Layers[1]
			slot := -1
			for k, p := range l.Params {
				if p.Kind == discover.ProjWeight {
					slot = k // the layer's last projection: the MLP's output
				}
			}
			p := l.Params[slot]
			out := int(p.Dims[1])
			in := int(p.Dims[0])
			if p.Transposed {
				out, in = in, out
			}
			r := rand.New(rand.NewPCG(3, 4))
			mat := make([]float32, out*out)
			for i := range mat {
				mat[i] = float32(r.NormFloat64())
			}
			var c []float32
			if tc.withBias {
				c = make([]float32, out)
				for i := range c {
					c[i] = float32(r.NormFloat64())
				}
			}
			win := rewrite.Window{Window: slm.Window{Low: 1, High: 2}, Repair: &rewrite.Repair{Slot: slot, Matrix: mat, Bias: c}}
			plain, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}}, rewrite.Options{Check: true})
			if err != nil {
				t.Fatal(err)
			}
			layouts[p.Transposed] = true
			fixed, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{win}}, rewrite.Options{Check: true, BLAS: tc.blas})
			if err != nil {
				t.Fatal(err)
			}
			wp := testmodel.Floats(t, plain.Model, readers(t, plain.Model, m, s, 1)[slot])
			wf := testmodel.Floats(t, fixed.Model, readers(t, fixed.Model, m, s, 1)[slot])
			var bp, bf []float32
			if tc.withBias {
				bias := slot + 1 // the bias slot follows its weight
				if l.Params[bias].Kind != discover.ProjBias {
					t.Fatalf("slot %d is %s, want the projection's bias", bias, l.Params[bias].Kind)
				}
				bp = testmodel.Floats(t, plain.Model, readers(t, plain.Model, m, s, 1)[bias])
				bf = testmodel.Floats(t, fixed.Model, readers(t, fixed.Model, m, s, 1)[bias])
			}
			x := make([]float32, in)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			y := project(x, wp, p.Dims, p.Transposed)
			for j := range bp {
				y[j] += bp[j]
			}
			want := make([]float32, out)
			for j := range want {
				for k := range y {
					want[j] += y[k] * mat[k*out+j]
				}
				if c != nil {
					want[j] += c[j]
				}
			}
			got := project(x, wf, p.Dims, p.Transposed)
			for j := range bf {
				got[j] += bf[j]
			}
			if d := stats.MaxAbsDiff(got, want); d > 1e-3 {
				t.Errorf("repaired projection off by %g", d)
			}
		})
	}
	if !layouts[true] || !layouts[false] {
		t.Errorf("weight layouts tested: %v, want both [in, out] and [out, in]", layouts)
	}
	m, s := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 2})
	for _, tc := range []struct {
		name   string
		repair rewrite.Repair
		want   string
	}{
		{"norm slot", rewrite.Repair{Slot: 0, Matrix: make([]float32, 256)}, "not a projection weight"},
		{"wrong size", rewrite.Repair{Slot: 1, Matrix: make([]float32, 7)}, "16×16 matrix"},
		{"offset without bias", rewrite.Repair{Slot: 1, Matrix: make([]float32, 256), Bias: make([]float32, 16)}, "no bias"},
	} {
		_, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 0, High: 1}, Repair: &tc.repair}}}, rewrite.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Merge = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	m, s := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 5, Hidden: 16, Heads: 2})
	other, _ := testmodel.Generated(t, modelgen.Config{Arch: modelgen.GPT2, Layers: 2, Hidden: 16, Heads: 2})
	w := func(lo, hi int) rewrite.Window { return rewrite.Window{Window: slm.Window{Low: lo, High: hi}} }
	tests := []struct {
		name string
		m    *pb.ModelProto
		plan rewrite.Plan
		want string
	}{
		{"overlap", m, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{w(1, 3), w(3, 4)}}, "overlap"},
		{"out of range", m, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{w(3, 5)}}, "0 <= low <= high < 5"},
		{"low above high", m, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{w(3, 2)}}, "0 <= low <= high"},
		{"removed and merged", m, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{w(1, 2)}, Remove: []int{2}}, "both removed and in window"},
		{"remove unknown layer", m, rewrite.Plan{Remove: []int{7}}, "remove layer 7"},
		{"everything", m, rewrite.Plan{Rule: rewrite.Drop, Windows: []rewrite.Window{w(0, 4)}, Remove: nil}, ""},
		{"all removed", m, rewrite.Plan{Remove: []int{0, 1, 2, 3, 4}}, "removes all 5 layers"},
		{"unknown rule", m, rewrite.Plan{Rule: "avg", Windows: []rewrite.Window{w(0, 1)}}, `merge rule "avg"`},
		{"no rule", m, rewrite.Plan{Windows: []rewrite.Window{w(0, 1)}}, "no merge rule"},
		{"another model's stack", other, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{w(0, 1)}}, "another model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rewrite.Merge(tc.m, s, tc.plan, rewrite.Options{Check: true})
			if tc.want == "" {
				if err != nil {
					t.Errorf("Merge = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Merge = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	m, s := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 16, Heads: 2})
	m = proto.Clone(m).(*pb.ModelProto)
	m.MetadataProps = append(m.MetadataProps,
		&pb.StringStringEntryProto{Key: proto.String("author"), Value: proto.String("someone")},
		&pb.StringStringEntryProto{Key: proto.String("onnxslm.method"), Value: proto.String("old")})
	th := 0.9
	res, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}, {Window: slm.Window{Low: 3, High: 3}, Rule: rewrite.Mean}}},
		rewrite.Options{Check: true, Meta: rewrite.Meta{Version: "v0.1.0", Method: "slm", Threshold: &th, Extra: map[string]string{"similarity": "0.93"}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range res.Model.MetadataProps {
		got = append(got, kv.GetKey()+"="+kv.GetValue())
	}
	want := []string{"author=someone", "onnxslm.version=v0.1.0", "onnxslm.method=slm", "onnxslm.merge=paper", "onnxslm.threshold=0.9",
		"onnxslm.windows=[[1,2],[3,3]]", `onnxslm.window_rules=["paper","mean"]`, "onnxslm.layers_before=4", "onnxslm.layers_after=3",
		"onnxslm.kept_from=[0,1,3]", "onnxslm.similarity=0.93"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("metadata:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	res, err = rewrite.RemoveLayers(m, s, []int{2, 0}, rewrite.Options{Meta: rewrite.Meta{Method: "shortgpt"}})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{}
	for _, kv := range res.Model.MetadataProps {
		meta[kv.GetKey()] = kv.GetValue()
	}
	if meta["onnxslm.removed"] != "[0,2]" || meta["onnxslm.kept_from"] != "[1,3]" || meta["onnxslm.method"] != "shortgpt" {
		t.Errorf("metadata after removing layers 0 and 2: %v", meta)
	}
}

// TestDumpAfterPass: the debug dump after a named pass shows its work.
func TestDumpAfterPass(t *testing.T) {
	m, s := testmodel.Generated(t, modelgen.Config{Arch: modelgen.GPT2, Layers: 3, Hidden: 16, Heads: 2})
	var buf bytes.Buffer
	var timings []graph.PassTiming
	_, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}},
		rewrite.Options{Check: true, DumpAfter: "fuse", DumpTo: &buf, Timings: &timings})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "# after pass fuse\n") || !strings.Contains(out, "transformer.h.1.attn.c_attn.weight.merged_1_2") ||
		!strings.Contains(out, "/transformer/h.2/") {
		t.Errorf("dump after fuse does not show the merged tensors and the layers not yet dropped:\n%.400s", out)
	}
	if len(timings) != len(rewrite.PassNames()) {
		t.Errorf("%d timings for passes %v", len(timings), rewrite.PassNames())
	}
}

// TestGolden writes the rewritten graph of small models as text and compares it
// with testdata/*.golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		cfg  modelgen.Config
		plan rewrite.Plan
	}{
		{"llama3_kv_paper_1-2.golden", modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 8, Heads: 2, KVHeads: 1, FFN: 8, Vocab: 16, MaxPos: 8, KVCache: true, AttentionMask: true},
			rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}}},
		{"gpt2_3_code_0-1.golden", modelgen.Config{Arch: modelgen.GPT2, Layers: 3, Hidden: 8, Heads: 2, Vocab: 16, MaxPos: 8},
			rewrite.Plan{Rule: rewrite.Code, Windows: []rewrite.Window{{Window: slm.Window{Low: 0, High: 1}}}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m, s := testmodel.Generated(t, tc.cfg)
			res, err := rewrite.Merge(m, s, tc.plan, rewrite.Options{Check: true, Meta: rewrite.Meta{Version: "golden", Method: "slm"}})
			if err != nil {
				t.Fatal(err)
			}
			g, err := graph.FromModel(res.Model)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := g.Dump(&b); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.file), b.String())
		})
	}
}

// TestMergeIsFast: the SLM search calls Merge for every candidate.
func BenchmarkMerge(b *testing.B) {
	mp, err := onnx.Load(testenv.TestModel(b, "llama8"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := discover.Find(mp.Proto)
	if err != nil {
		b.Fatal(err)
	}
	for _, rule := range rewrite.Rules {
		b.Run(string(rule), func(b *testing.B) {
			plan := rewrite.Plan{Rule: rule, Windows: []rewrite.Window{{Window: slm.Window{Low: 2, High: 4}}, {Window: slm.Window{Low: 5, High: 6}}}}
			for b.Loop() {
				if _, err := rewrite.Merge(mp.Proto, s, plan, rewrite.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFind(b *testing.B) {
	mp, err := onnx.Load(testenv.TestModel(b, "llama8"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := discover.Find(mp.Proto); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSharedTransposeIsCopied: when a weight's Transpose node is read by another
// kept layer too (weights shared across layers), the merged layer gets a copy of
// the node and the other layer keeps reading the original.
func TestSharedTransposeIsCopied(t *testing.T) {
	m0, _ := testmodel.Generated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 16, Heads: 2})
	m := proto.Clone(m0).(*pb.ModelProto)
	var q1 string
	for _, n := range m.Graph.Node {
		if n.GetName() == "/model/layers.1/self_attn/q_proj/MatMul" {
			q1 = n.Input[1]
		}
	}
	for _, n := range m.Graph.Node {
		if n.GetName() == "/model/layers.3/self_attn/q_proj/MatMul" {
			n.Input[1] = q1 // layer 3 reads layer 1's transposed q weight
		}
	}
	s, err := discover.Find(m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rewrite.Merge(m, s, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}}, rewrite.Options{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := graph.FromModel(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	weightOf := func(node string) string {
		for _, n := range g.Nodes {
			if n.Name == node {
				tr := n.Inputs[1].Producer
				if tr == nil || tr.Op != "Transpose" {
					t.Fatalf("%s does not read a Transpose", node)
				}
				return tr.Inputs[0].Name
			}
		}
		t.Fatalf("no node %s", node)
		return ""
	}
	if got, want := weightOf("/model/layers.3/self_attn/q_proj/MatMul"), "model.layers.1.self_attn.q_proj.weight"; got != want {
		t.Errorf("layer 3 reads %q, want %q", got, want)
	}
	if got, want := weightOf("/model/layers.1/self_attn/q_proj/MatMul"), "model.layers.1.self_attn.q_proj.weight.merged_1_2"; got != want {
		t.Errorf("merged layer reads %q, want %q", got, want)
	}
}
