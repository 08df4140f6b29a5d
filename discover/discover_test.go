package discover_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

func load(t *testing.T, name string) *pb.ModelProto {
	t.Helper()
	m, err := onnx.Load(testenv.TestModel(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return m.Proto
}

// finalNormValue returns the value NAME.truth.json records for the final-normed
// hidden state.
func finalNormValue(tr *reference.Truth) string {
	for _, b := range tr.BoundaryValues {
		if b.Kind == "final_norm" && len(b.Matches) > 0 {
			return b.Matches[0].Value
		}
	}
	return ""
}

// TestSharedModelsMatchTruth: the layers found in the shared models have the
// boundary values found numerically in PyTorch (NAME.truth.json).
func TestSharedModelsMatchTruth(t *testing.T) {
	for _, name := range reference.Models {
		t.Run(name, func(t *testing.T) {
			tr, err := reference.LoadTruth(testenv.TestModelsDir(t), name)
			if err != nil {
				t.Fatal(err)
			}
			m := load(t, name)
			s := testmodel.Find(t, m)
			if got, want := s.NumLayers(), tr.Config.Layers; got != want {
				t.Fatalf("layers = %d, want %d", got, want)
			}
			bounds := tr.Boundaries()
			if len(s.Hidden) != len(bounds) {
				t.Fatalf("%d stream values, want %d", len(s.Hidden), len(bounds))
			}
			for i, h := range s.Hidden {
				if !slices.Contains(bounds[i], h) {
					t.Errorf("h_%d = %q, want one of %v", i, h, bounds[i])
				}
			}
			for i, l := range s.Layers {
				if l.Input != s.Hidden[i] || l.Output != s.Hidden[i+1] {
					t.Errorf("layer %d: %q -> %q, want %q -> %q", i, l.Input, l.Output, s.Hidden[i], s.Hidden[i+1])
				}
			}
			if got, want := s.FinalNorm, finalNormValue(tr); got != want {
				t.Errorf("final norm = %q, want %q", got, want)
			}
			if s.Logits != "logits" || s.Tokens != "input_ids" || s.Period != 2 {
				t.Errorf("logits %q tokens %q period %d, want logits input_ids 2", s.Logits, s.Tokens, s.Period)
			}
			if s.TiedEmbeddings != tr.Config.Tied {
				t.Errorf("tied embeddings = %v, want %v", s.TiedEmbeddings, tr.Config.Tied)
			}
			// The parameters of the layers add up to the model's, with the embeddings,
			// the final norm and the LM head.
			var total int64
			for _, l := range s.Layers {
				total += l.NumParams()
			}
			var all int64
			for _, x := range m.Graph.Initializer {
				if x.GetDataType() == int32(pb.TensorProto_FLOAT) && graph.NumElements(x.Dims) > 1 {
					all += graph.NumElements(x.Dims)
				}
			}
			if total <= 0 || total >= all {
				t.Errorf("layer parameters %d, model's float tensors %d", total, all)
			}
			checkSlotsAligned(t, m, s)
		})
	}
}

// checkSlotsAligned: slot k has the same kind, shape, dtype, layout and role
// in every layer, and (names being hints) the names of the nodes reading the
// tensors say the same module.
func checkSlotsAligned(t *testing.T, m *pb.ModelProto, s *discover.Stack) {
	t.Helper()
	checkSlots(t, m, s, func(n string) string { return n })
}

// checkSlots is checkSlotsAligned with the reading nodes' names, their layer
// number made 0, passed through same before they are compared.
func checkSlots(t *testing.T, m *pb.ModelProto, s *discover.Stack, same func(string) string) {
	t.Helper()
	name := func(l discover.Layer, p discover.Param) string {
		n := m.Graph.Node[p.Uses[0].Node].GetName()
		return same(strings.Replace(n, fmt.Sprintf(".%d/", l.Index), ".0/", 1))
	}
	for _, l := range s.Layers {
		if len(l.Params) != len(s.Layers[0].Params) {
			t.Fatalf("layer %d has %d slots, layer 0 %d", l.Index, len(l.Params), len(s.Layers[0].Params))
		}
		for k, p := range l.Params {
			p0 := s.Layers[0].Params[k]
			if p.Slot != k || p.Kind != p0.Kind || p.Role != p0.Role || fmt.Sprint(p.Dims) != fmt.Sprint(p0.Dims) ||
				p.DType != p0.DType || p.Transposed != p0.Transposed {
				t.Errorf("layer %d slot %d = %+v, layer 0's = %+v", l.Index, k, p, p0)
			}
			if got, want := name(l, p), name(s.Layers[0], p0); got != want {
				t.Errorf("layer %d slot %d (%s) is read by %q; layer 0's by %q", l.Index, k, p.Role, got, want)
			}
		}
	}
}

// TestSameStackAfterRenamingAndShuffling renames every node, value and initializer
// of the shared models to meaningless names and reorders the nodes: the stack
// found is the same, mapped back through the renaming.
func TestSameStackAfterRenamingAndShuffling(t *testing.T) {
	for _, name := range reference.Models {
		for _, seed := range []uint64{0, 11} {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				sameStackAfterRenaming(t, load(t, name), seed)
			})
		}
	}
}

// sameStackAfterRenaming renames every node, value and initializer of m to
// meaningless names and, for a non-zero seed, reorders the nodes: the stack
// found must be m's, mapped through the renaming.
func sameStackAfterRenaming(t *testing.T, m *pb.ModelProto, seed uint64) {
	t.Helper()
	want := testmodel.Find(t, m)
	g, err := graph.FromModel(m)
	if err != nil {
		t.Fatal(err)
	}
	ren, err := g.RenameAll(graph.RenameOptions{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if seed != 0 {
		if err := g.Shuffle(seed); err != nil {
			t.Fatal(err)
		}
	}
	anon := g.Model()
	got := testmodel.Find(t, anon)
	v := func(old string) string { return ren.Values[old] }
	if got.NumLayers() != want.NumLayers() || got.Period != want.Period {
		t.Fatalf("%d layers period %d, want %d period %d", got.NumLayers(), got.Period, want.NumLayers(), want.Period)
	}
	for i := range want.Hidden {
		if got.Hidden[i] != v(want.Hidden[i]) {
			t.Errorf("h_%d = %q, want %q (was %q)", i, got.Hidden[i], v(want.Hidden[i]), want.Hidden[i])
		}
	}
	if len(got.Branch) != len(want.Branch) {
		t.Errorf("%d fused branches, want %d", len(got.Branch), len(want.Branch))
	}
	for i := range want.Branch {
		if i < len(got.Branch) && got.Branch[i] != v(want.Branch[i]) {
			t.Errorf("branch %d = %q, want %q (was %q)", i, got.Branch[i], v(want.Branch[i]), want.Branch[i])
		}
	}
	if got.FinalNorm != v(want.FinalNorm) || got.Logits != v(want.Logits) || got.LMHeadWeight != v(want.LMHeadWeight) {
		t.Errorf("final norm %q logits %q head %q, want %q %q %q", got.FinalNorm, got.Logits, got.LMHeadWeight,
			v(want.FinalNorm), v(want.Logits), v(want.LMHeadWeight))
	}
	nodeName := func(m *pb.ModelProto, idx []int, mapping map[string]string) []string {
		var names []string
		for _, i := range idx {
			n := m.Graph.Node[i].GetName()
			if mapping != nil {
				n = mapping[n]
			}
			names = append(names, n)
		}
		slices.Sort(names)
		return names
	}
	for i, wl := range want.Layers {
		gl := got.Layers[i]
		if !slices.Equal(nodeName(anon, gl.Nodes, nil), nodeName(m, wl.Nodes, ren.Nodes)) {
			t.Errorf("layer %d: the nodes differ", i)
		}
		for k, wp := range wl.Params {
			gp := gl.Params[k]
			if gp.Name != v(wp.Name) || gp.Kind != wp.Kind || gp.Role != wp.Role {
				t.Errorf("layer %d slot %d: %s %s %q, want %s %s %q (was %q)", i, k, gp.Role, gp.Kind, gp.Name, wp.Role, wp.Kind, v(wp.Name), wp.Name)
			}
		}
		if len(gl.Projections) != len(wl.Projections) || len(gl.Norms) != len(wl.Norms) {
			t.Fatalf("layer %d: %d projections %d norms, want %d and %d", i, len(gl.Projections), len(gl.Norms), len(wl.Projections), len(wl.Norms))
		}
		for k, wp := range wl.Projections {
			gp := gl.Projections[k]
			if gp.Role != wp.Role || gp.Matrix() != wp.Matrix() || gp.Bias != wp.Bias || gp.Output != v(wp.Output) || gp.Residual != v(wp.Residual) ||
				gp.Storage != wp.Storage || len(gp.Weights) != len(wp.Weights) || gp.Bits != wp.Bits || gp.BlockSize != wp.BlockSize ||
				anon.Graph.Node[gp.Node].GetName() != ren.Nodes[m.Graph.Node[wp.Node].GetName()] {
				t.Errorf("layer %d projection %d: %+v, want %+v", i, k, gp, wp)
			}
		}
		for k, name := range wl.Past {
			if k >= len(gl.Past) || gl.Past[k] != v(name) {
				t.Errorf("layer %d past %v, want %v", i, gl.Past, wl.Past)
			}
		}
		for k, name := range wl.Present {
			if k >= len(gl.Present) || gl.Present[k] != v(name) {
				t.Errorf("layer %d present %v, want %v", i, gl.Present, wl.Present)
			}
		}
		for k, wn := range wl.Norms {
			gn := gl.Norms[k]
			if gn.Scale != wn.Scale || gn.Shift != wn.Shift || anon.Graph.Node[gn.Node].GetName() != ren.Nodes[m.Graph.Node[wn.Node].GetName()] {
				t.Errorf("layer %d norm %d: %+v, want %+v", i, k, gn, wn)
			}
		}
	}
	if !slices.Equal(nodeName(anon, got.SharedNodes, nil), nodeName(m, want.SharedNodes, ren.Nodes)) {
		t.Errorf("the shared nodes differ")
	}
}

// TestModelgenVariants runs discovery over the export styles modelgen imitates.
func TestModelgenVariants(t *testing.T) {
	base := modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 32, Heads: 4, FFN: 48}
	with := func(f func(*modelgen.Config)) modelgen.Config { c := base; f(&c); return c }
	tests := []struct {
		name       string
		cfg        modelgen.Config
		slots      string // kinds of layer 0's slots in order
		transposed bool   // projections stored [out, in]
		tied       bool
		kv         int // per-layer inputs and outputs
	}{
		{"llama", base, "nw pw pw pw pw nw pw pw pw", true, false, 0},
		{"llama gqa kv mask", with(func(c *modelgen.Config) { c.KVHeads = 2; c.KVCache = true; c.AttentionMask = true }),
			"nw pw pw pw pw nw pw pw pw", true, false, 2},
		{"llama folded weights tied dedup positions", with(func(c *modelgen.Config) {
			c.TransposedWeights, c.TiedEmbeddings, c.DedupIdentity = true, true, true
			c.KVCache, c.PositionIDs, c.AttentionMask = true, true, true
		}), "nw pw pw pw pw nw pw pw pw", false, true, 2},
		{"llama float16 opset 13", with(func(c *modelgen.Config) { c.Float16, c.Opset = true, 13 }), "nw pw pw pw pw nw pw pw pw", true, false, 0},
		{"gpt2", modelgen.Config{Arch: modelgen.GPT2, Layers: 3, Hidden: 32, Heads: 4},
			"nw nb pw pb pw pb nw nb pw pb pw pb", false, false, 0},
		{"gpt2 kv dedup tied", modelgen.Config{Arch: modelgen.GPT2, Layers: 3, Hidden: 32, Heads: 4, KVCache: true, AttentionMask: true, DedupIdentity: true, TiedEmbeddings: true},
			"nw nb pw pb pw pb nw nb pw pb pw pb", false, true, 2},
	}
	short := map[discover.ParamKind]string{discover.NormWeight: "nw", discover.NormBias: "nb", discover.ProjWeight: "pw", discover.ProjBias: "pb", discover.Other: "o"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := modelgen.Build(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := testmodel.Find(t, m)
			if s.NumLayers() != tc.cfg.Layers || s.Period != 2 {
				t.Fatalf("%d layers period %d, want %d period 2", s.NumLayers(), s.Period, tc.cfg.Layers)
			}
			var kinds []string
			for _, p := range s.Layers[0].Params {
				kinds = append(kinds, short[p.Kind])
				if p.Kind == discover.ProjWeight && p.Transposed != tc.transposed {
					t.Errorf("slot %d (%s) transposed = %v, want %v", p.Slot, p.Role, p.Transposed, tc.transposed)
				}
			}
			if got := strings.Join(kinds, " "); got != tc.slots {
				t.Errorf("slots = %q, want %q", got, tc.slots)
			}
			if s.TiedEmbeddings != tc.tied {
				t.Errorf("tied = %v, want %v", s.TiedEmbeddings, tc.tied)
			}
			for _, l := range s.Layers {
				if len(l.Past) != tc.kv || len(l.Present) != tc.kv {
					t.Errorf("layer %d: past %v present %v, want %d each", l.Index, l.Past, l.Present, tc.kv)
				}
				for j, p := range l.Past {
					// Present[j] is computed from Past[j]: the names agree (a hint the test may use).
					suffix := p[strings.LastIndex(p, "."):]
					if !strings.Contains(p, fmt.Sprintf(".%d.", l.Index)) || !strings.HasSuffix(l.Present[j], fmt.Sprintf("%d%s", l.Index, suffix)) {
						t.Errorf("layer %d: past %q paired with present %q", l.Index, p, l.Present[j])
					}
				}
			}
			if tc.cfg.DedupIdentity {
				norm := s.Layers[0].Params[0].Name
				for _, l := range s.Layers[1:] {
					if l.Params[0].Name != norm || len(l.Params[0].Uses[0].Via) == 0 {
						t.Errorf("layer %d: deduplicated norm weight %q via %v, want %q through an Identity", l.Index, l.Params[0].Name, l.Params[0].Uses[0].Via, norm)
					}
				}
			}
			checkSlotsAligned(t, m, s)
		})
	}
}

// TestRefusesWhatIsNotADecoderStack: the message says what is wrong, and which
// layer differs.
func TestRefusesWhatIsNotADecoderStack(t *testing.T) {
	llama := modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 32, Heads: 4}
	gpt2 := modelgen.Config{Arch: modelgen.GPT2, Layers: 4, Hidden: 32, Heads: 4}
	odd := func(c modelgen.Config, layer int, kind string) modelgen.Config {
		c.Odd = modelgen.Odd{Layer: layer, Kind: kind}
		return c
	}
	tests := []struct {
		name  string
		m     func(t *testing.T) *pb.ModelProto
		layer int
		want  []string
	}{
		{"encoder-decoder", gen(modelgen.Config{Arch: modelgen.EncDec, Layers: 2, Hidden: 32, Heads: 4}), 0,
			[]string{"cross-attention", "decoder-only"}},
		{"no residual stream", gen(modelgen.Config{Arch: modelgen.MLP, Layers: 3, Hidden: 32, Heads: 4}), -1,
			[]string{"no residual stream"}},
		{"llama layer with q/k/v biases", gen(odd(llama, 2, modelgen.OddBias)), 2,
			[]string{"layer 2 differs from the other layers", "10 Add (others 7)", "extra 3× proj_bias"}},
		{"llama layer with a wider MLP", gen(odd(llama, 1, modelgen.OddFFN)), 1,
			[]string{"layer 1 differs", "[96,32]", "[64,32]"}},
		{"gpt2 layer without MLP biases", gen(odd(gpt2, 3, modelgen.OddBias)), 3,
			[]string{"layer 3 differs", "missing", "proj_bias"}},
		{"vision-like: no token ids", func(t *testing.T) *pb.ModelProto { return noEmbedding(t) }, -1,
			[]string{"no token embedding"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := discover.Find(tc.m(t))
			var nd *discover.NotDecoderError
			if !errors.As(err, &nd) {
				t.Fatalf("Find = %v, want a NotDecoderError", err)
			}
			if nd.Layer != tc.layer {
				t.Errorf("error names layer %d, want %d (%v)", nd.Layer, tc.layer, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func gen(c modelgen.Config) func(t *testing.T) *pb.ModelProto {
	return func(t *testing.T) *pb.ModelProto {
		m, err := modelgen.Build(c)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

// TestBrokenGraphsDoNotPanic: Find on models with a node cut out returns an error
// or a stack, never panics.
func TestBrokenGraphsDoNotPanic(t *testing.T) {
	for _, c := range []modelgen.Config{
		{Arch: modelgen.Llama, Layers: 2, Hidden: 16, Heads: 2, KVCache: true, AttentionMask: true},
		{Arch: modelgen.GPT2, Layers: 2, Hidden: 16, Heads: 2},
	} {
		m, err := modelgen.Build(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Graph.Node {
			cut := proto.Clone(m).(*pb.ModelProto)
			cut.Graph.Node = slices.Delete(cut.Graph.Node, i, i+1)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s without node %d (%s): panic %v", c.Arch, i, m.Graph.Node[i].GetName(), r)
					}
				}()
				discover.Find(cut)
			}()
		}
	}
}
