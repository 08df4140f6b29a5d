package merged_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

var base = modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 32, Heads: 4, KVHeads: 2, Seed: 5,
	KVCache: true, AttentionMask: true, Opset: 17}

func build(t *testing.T, c modelgen.Config, mergedLayout bool) *pb.ModelProto {
	t.Helper()
	var m *pb.ModelProto
	var err error
	if mergedLayout {
		m, err = modelgen.BuildOptimumMerged(c)
	} else {
		m, err = modelgen.Build(c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func names(vis []*pb.ValueInfoProto) string {
	var s []string
	for _, v := range vis {
		s = append(s, v.GetName())
	}
	return strings.Join(s, " ")
}

// TestSplitJoin: Split gives the two exports back (their interfaces, all
// their weights), and Join of the halves (names kept) the merged model's
// outer graph again.
func TestSplitJoin(t *testing.T) {
	m := build(t, base, true)
	if !merged.Is(m) {
		t.Fatal("Is: false on a merged decoder")
	}
	if merged.Is(build(t, base, false)) {
		t.Fatal("Is: true on a plain decoder")
	}
	p, err := merged.Split(m)
	if err != nil {
		t.Fatal(err)
	}
	noPast := base
	noPast.NoPastInputs = true
	for _, h := range []struct {
		name string
		got  *pb.ModelProto
		c    modelgen.Config
	}{{"no past", p.NoPast, noPast}, {"with past", p.WithPast, base}} {
		want := build(t, h.c, false)
		if a, b := names(h.got.Graph.Input), names(want.Graph.Input); a != b {
			t.Errorf("%s: inputs %s, the export's %s", h.name, a, b)
		}
		if a, b := names(h.got.Graph.Output), names(want.Graph.Output); a != b {
			t.Errorf("%s: outputs %s, the export's %s", h.name, a, b)
		}
		if a, b := len(h.got.Graph.Initializer), len(want.Graph.Initializer); a != b {
			t.Errorf("%s: %d initializers, the export %d", h.name, a, b)
		}
		if a, b := len(h.got.Graph.Node), len(want.Graph.Node); a != b {
			t.Errorf("%s: %d nodes, the export %d", h.name, a, b)
		}
	}
	j, err := merged.Join(p.NoPast, p.WithPast, merged.JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := names(j.Graph.Input), names(m.Graph.Input); a != b {
		t.Errorf("joined again: inputs %s, want %s", a, b)
	}
	if !proto.Equal(j.Graph.Input[1], m.Graph.Input[1]) {
		t.Errorf("joined again without RenameMaskAxis: attention_mask %v, want it kept: %v", j.Graph.Input[1], m.Graph.Input[1])
	}
	var got, want []string
	for _, w := range j.Graph.Initializer {
		got = append(got, w.GetName())
	}
	for _, w := range m.Graph.Initializer {
		want = append(want, w.GetName())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("joined again: outer initializers %v, want %v", got, want)
	}
}

// TestRuntimeMerged: the Go runtime runs the merged model's two branches
// (lm's feeds: use_cache_branch false without past, true with one) and gives
// the plain twin's outputs.
func TestRuntimeMerged(t *testing.T) {
	ms, err := runtime.New(build(t, base, true), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := runtime.New(build(t, base, false), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]int64{{1, 5, 9, 200, 7, 3}, {4, 4, 8, 100, 2, 0}}
	run := func(s *runtime.Session, f map[string]*runtime.Tensor) map[string]*runtime.Tensor {
		t.Helper()
		out, err := s.Run(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	compare := func(what string, got, want map[string]*runtime.Tensor) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d outputs, twin %d", what, len(got), len(want))
		}
		for name, w := range want {
			g := got[name]
			if fmt.Sprint(g.Shape()) != fmt.Sprint(w.Shape()) {
				t.Fatalf("%s: %s shape %v, twin %v", what, name, g.Shape(), w.Shape())
			}
			for i, v := range w.Float32Data() {
				if d := math.Abs(float64(g.Float32Data()[i] - v)); d > 1e-6 {
					t.Fatalf("%s: %s[%d] = %g, twin %g", what, name, i, g.Float32Data()[i], v)
				}
			}
		}
	}
	f, err := lm.Feeds(ms, rows)
	if err != nil {
		t.Fatal(err)
	}
	if c := f[merged.CondInput]; c == nil || c.Data().([]bool)[0] {
		t.Fatalf("lm.Feeds: use_cache_branch %v, want [false]", c)
	}
	tf, err := lm.Feeds(ts, rows)
	if err != nil {
		t.Fatal(err)
	}
	compare("no past", run(ms, f), run(ts, tf))

	first := [][]int64{rows[0][:4], rows[1][:4]}
	tf, err = lm.Feeds(ts, first)
	if err != nil {
		t.Fatal(err)
	}
	past := run(ts, tf)
	kv := map[string]*runtime.Tensor{}
	for name, v := range past {
		kv[strings.Replace(name, "present", "past_key_values", 1)] = v
	}
	last := [][]int64{rows[0][4:], rows[1][4:]}
	f, err = lm.FeedsAfter(ms, last, 4, kv)
	if err != nil {
		t.Fatal(err)
	}
	if !f[merged.CondInput].Data().([]bool)[0] {
		t.Fatal("lm.FeedsAfter: use_cache_branch false, want true")
	}
	tf, err = lm.FeedsAfter(ts, last, 4, kv)
	if err != nil {
		t.Fatal(err)
	}
	compare("with past", run(ms, f), run(ts, tf))
}

func TestSplitRefuses(t *testing.T) {
	m := build(t, base, true)
	edit := func(f func(m *pb.ModelProto)) *pb.ModelProto {
		c := proto.Clone(m).(*pb.ModelProto)
		f(c)
		return c
	}
	cases := []struct {
		name, want string
		m          *pb.ModelProto
	}{
		{"plain", "has 1", build(t, base, false)},
		{"two nodes", "2 nodes", edit(func(m *pb.ModelProto) { m.Graph.Node = append(m.Graph.Node, m.Graph.Node[0]) })},
		{"other cond", "the If reads", edit(func(m *pb.ModelProto) { m.Graph.Node[0].Input[0] = "attention_mask" })},
		{"no cond input", "no graph input", edit(func(m *pb.ModelProto) { m.Graph.Input = m.Graph.Input[:len(m.Graph.Input)-1] })},
		{"missing branch", "has no then_branch", edit(func(m *pb.ModelProto) { m.Graph.Node[0].Attribute = m.Graph.Node[0].Attribute[:1] })},
		{"undefined weight", "does not define", edit(func(m *pb.ModelProto) { m.Graph.Initializer = m.Graph.Initializer[1:] })},
	}
	for _, c := range cases {
		_, err := merged.Split(c.m)
		if c.name == "plain" {
			if err == nil || !strings.Contains(err.Error(), "nodes, want one If") {
				t.Errorf("%s: error %v, want the node count", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestJoinRefuses(t *testing.T) {
	p, err := merged.Split(build(t, base, true))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(m *pb.ModelProto, f func(m *pb.ModelProto)) *pb.ModelProto {
		c := proto.Clone(m).(*pb.ModelProto)
		f(c)
		return c
	}
	cases := []struct {
		name, want    string
		noPast, wPast *pb.ModelProto
	}{
		{"opsets", "opset is 17", p.NoPast, edit(p.WithPast, func(m *pb.ModelProto) { m.OpsetImport[0].Version = proto.Int64(18) })},
		{"output count", "has 7 outputs", p.NoPast, edit(p.WithPast, func(m *pb.ModelProto) { m.Graph.Output = m.Graph.Output[1:] })},
		{"output order", "cannot match output", p.NoPast, edit(p.WithPast, func(m *pb.ModelProto) {
			m.Graph.Output[1], m.Graph.Output[2] = m.Graph.Output[2], m.Graph.Output[1]
		})},
		{"mask axis", "named sequence_length", edit(p.NoPast, func(m *pb.ModelProto) {
			m.Graph.Input[1].GetType().GetTensorType().GetShape().GetDim()[1].Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: "seq"}
		}), p.WithPast},
		{"one name, two tensors", "different data", p.NoPast, edit(p.WithPast, func(m *pb.ModelProto) {
			w := m.Graph.Initializer[0]
			w.RawData = append([]byte(nil), w.RawData...)
			w.RawData[0] ^= 1
		})},
	}
	for _, c := range cases {
		_, err := merged.Join(c.noPast, c.wPast, merged.JoinOptions{RenameMaskAxis: c.name == "mask axis"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// TestTinyPairRuns: the fuzz seed runs (both branches), so that the fuzzer
// starts from a model the runtime executes.
func TestTinyPairRuns(t *testing.T) {
	m, err := merged.Join(joinArgs(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.New(m, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := runtime.FromSlice([]int{1, 2}, []int64{1, 3})
	for _, c := range []bool{false, true} {
		cond, _ := runtime.FromSlice([]int{1}, []bool{c})
		past, _ := runtime.FromSlice([]int{1, 1, 2}, []float32{9, 9})
		out, err := s.Run(map[string]*runtime.Tensor{"input_ids": ids, "attention_mask": ids, "past_key_values.0.key": past, merged.CondInput: cond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := 2 // no past: the present is the new rows
		if c {
			want = 3
		}
		if got := out["present.0.key"].Shape(); got[1] != want {
			t.Errorf("use_cache_branch %v: present %v, want %d rows", c, got, want)
		}
	}
}
