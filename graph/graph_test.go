package graph_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/internal/golden"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// node is a compact node spec for hand-built test graphs: "out1,out2 = Op(in1,in2)".
func model(t testing.TB, inputs, outputs []string, inits map[string][]float32, nodes ...string) *pb.ModelProto {
	t.Helper()
	gp := &pb.GraphProto{Name: proto.String("test")}
	for _, in := range inputs {
		gp.Input = append(gp.Input, onnx.TensorInfo(in, pb.TensorProto_FLOAT, "n"))
	}
	for _, out := range outputs {
		gp.Output = append(gp.Output, onnx.TensorInfo(out, pb.TensorProto_FLOAT, "n"))
	}
	names := make([]string, 0, len(inits))
	for name := range inits {
		names = append(names, name)
	}
	sortStrings(names)
	for _, name := range names {
		gp.Initializer = append(gp.Initializer, onnx.NewFloat32(name, []int64{int64(len(inits[name]))}, inits[name]))
	}
	re := regexp.MustCompile(`^\s*([^=]*?)\s*=\s*(\w+)\((.*)\)\s*$`)
	for i, spec := range nodes {
		m := re.FindStringSubmatch(spec)
		if m == nil {
			t.Fatalf("bad node spec %q", spec)
		}
		np := &pb.NodeProto{Name: proto.String(fmt.Sprintf("n%d_%s", i, m[2])), OpType: proto.String(m[2])}
		np.Output = splitList(m[1])
		np.Input = splitList(m[3])
		gp.Node = append(gp.Node, np)
	}
	return &pb.ModelProto{IrVersion: proto.Int64(8), Graph: gp,
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}}
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func build(t testing.TB, m *pb.ModelProto) *graph.Graph {
	t.Helper()
	g, err := graph.FromModel(m)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func smallLlama(t testing.TB, kv bool) *pb.ModelProto {
	t.Helper()
	m, err := modelgen.Build(modelgen.Config{Arch: modelgen.Llama, Layers: 3, Hidden: 16, Heads: 2, KVHeads: 1, KVCache: kv, AttentionMask: kv, Vocab: 32, MaxPos: 16})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dynamoLlama is a torch dynamo export, whose nodes carry metadata_props
// (unknown fields to the ONNX 1.12 bindings).
func dynamoLlama(t testing.TB) *pb.ModelProto {
	t.Helper()
	m, err := modelgen.BuildDynamo(modelgen.DynamoConfig{Layers: 2, Hidden: 16, Heads: 2, Vocab: 32})
	if err != nil {
		t.Fatal(err)
	}
	if len(modelgen.NodeMeta(m.Graph.Node[0])) == 0 {
		t.Fatal("the dynamo model's nodes have no metadata_props")
	}
	return m
}

func TestModelRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *pb.ModelProto
	}{
		{"llama", smallLlama(t, false)},
		{"llama-kv", smallLlama(t, true)},
		{"dynamo (node metadata_props)", dynamoLlama(t)},
		{"hand-built", model(t, []string{"x"}, []string{"y"}, map[string][]float32{"w": {1, 2}}, "a = Mul(x, w)", "y = Relu(a)")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := proto.MarshalOptions{Deterministic: true}.Marshal(tc.m)
			g := build(t, tc.m)
			if err := g.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			out := g.Model()
			if !proto.Equal(out, tc.m) {
				t.Errorf("Model() of an unchanged graph differs from the source model")
			}
			after, _ := proto.MarshalOptions{Deterministic: true}.Marshal(tc.m)
			if !bytes.Equal(before, after) {
				t.Errorf("FromModel/Model modified the source model")
			}
		})
	}
}

func TestTopoOrderIsStableAndDeterministic(t *testing.T) {
	m := smallLlama(t, true)
	g := build(t, m)
	order, err := g.TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range order {
		if n != g.Nodes[i] {
			t.Fatalf("TopoOrder of a sorted graph moved node %d (%s) to another place", n.Index, n)
		}
	}
	for _, seed := range []uint64{1, 2, 3} {
		a, b := build(t, m), build(t, m)
		if err := a.Shuffle(seed); err != nil {
			t.Fatal(err)
		}
		if err := b.Shuffle(seed); err != nil {
			t.Fatal(err)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("seed %d: shuffled graph invalid: %v", seed, err)
		}
		checkTopological(t, a)
		for i := range a.Nodes {
			if a.Nodes[i].Index != b.Nodes[i].Index {
				t.Fatalf("seed %d: two shuffles differ at %d: got node %d want %d", seed, i, a.Nodes[i].Index, b.Nodes[i].Index)
			}
		}
	}
}

func checkTopological(t *testing.T, g *graph.Graph) {
	t.Helper()
	seen := map[*graph.Node]bool{}
	for _, n := range g.Nodes {
		for _, v := range n.Inputs {
			if v != nil && v.Producer != nil && !seen[v.Producer] {
				t.Fatalf("node %s reads %q before its producer %s", n, v.Name, v.Producer)
			}
		}
		seen[n] = true
	}
}

func TestValidateReportsTypedBoundedErrors(t *testing.T) {
	many := []string{"y = Identity(x)"}
	var outs []string
	for i := 0; i < 12; i++ {
		many = append(many, fmt.Sprintf("o%d = Add(x, missing%d)", i, i))
		outs = append(outs, fmt.Sprintf("o%d", i))
	}
	tests := []struct {
		name    string
		m       *pb.ModelProto
		check   func(error) bool
		mention string
	}{
		{"undefined input", model(t, []string{"x"}, []string{"y"}, nil, "y = Add(x, nowhere)"),
			func(err error) bool { var e *graph.UndefinedError; return errors.As(err, &e) }, `"nowhere"`},
		{"cycle", model(t, []string{"x"}, []string{"c"}, nil, "a = Add(x, c)", "b = Relu(a)", "c = Relu(b)"),
			func(err error) bool { var e *graph.CycleError; return errors.As(err, &e) }, "cycle"},
		{"output not produced", model(t, []string{"x"}, []string{"y", "z"}, nil, "y = Relu(x)"),
			func(err error) bool { var e *graph.OutputError; return errors.As(err, &e) }, `z`},
		{"many undefined, bounded message", model(t, []string{"x"}, outs, nil, many...),
			func(err error) bool {
				var e *graph.UndefinedError
				return errors.As(err, &e) && e.N == 12 && len(e.Names) == 5
			}, "and 7 more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := build(t, tc.m).Validate()
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			if !tc.check(err) {
				t.Errorf("Validate = %v (%T), not the expected typed error", err, err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestFromModelRefusesDuplicateDefinitions(t *testing.T) {
	m := model(t, []string{"x"}, []string{"y"}, nil, "y = Relu(x)", "y = Abs(x)")
	_, err := graph.FromModel(m)
	var e *graph.DuplicateError
	if !errors.As(err, &e) || e.Names[0] != "y" {
		t.Errorf("FromModel = %v, want a DuplicateError naming y", err)
	}
}

func TestRemoveDead(t *testing.T) {
	m := model(t, []string{"x"}, []string{"y"}, map[string][]float32{"w": {1}, "unused": {2}},
		"a = Mul(x, w)", "y = Relu(a)", "d1 = Neg(x)", "d2 = Mul(d1, unused)")
	g := build(t, m)
	st := g.RemoveDead()
	if st.Nodes != 2 || st.Initializers != 1 {
		t.Errorf("RemoveDead = %+v, want 2 nodes and 1 initializer", st)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if g.Has("d1") || g.Has("unused") || !g.Has("w") {
		t.Errorf("after RemoveDead: d1 %v unused %v w %v, want false false true", g.Has("d1"), g.Has("unused"), g.Has("w"))
	}
}

func TestExtract(t *testing.T) {
	m := model(t, []string{"x", "z"}, []string{"y", "q"}, map[string][]float32{"w": {1}},
		"a = Mul(x, w)", "b = Relu(a)", "c = Add(b, z)", "y = Neg(c)", "q = Abs(a)")
	g := build(t, m)
	sub, err := g.Extract([]string{"b"}, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	var ops, ins []string
	for _, n := range sub.Nodes {
		ops = append(ops, n.Op)
	}
	for _, v := range sub.Inputs {
		ins = append(ins, v.Name)
	}
	if got, want := strings.Join(ops, " "), "Add Neg"; got != want {
		t.Errorf("extracted ops = %q, want %q", got, want)
	}
	if got, want := strings.Join(ins, " "), "b z"; got != want {
		t.Errorf("extracted inputs = %q, want %q", got, want)
	}
	if len(g.Nodes) != 5 {
		t.Errorf("Extract changed the source graph: %d nodes, want 5", len(g.Nodes))
	}
	if _, err := g.Extract([]string{"nope"}, []string{"y"}); err == nil {
		t.Errorf("Extract from an unknown value: got nil error")
	}
}

func TestRenameAll(t *testing.T) {
	m := smallLlama(t, true)
	for _, keepIO := range []bool{false, true} {
		g := build(t, m)
		ren, err := g.RenameAll(graph.RenameOptions{KeepIO: keepIO, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("renamed graph invalid: %v", err)
		}
		out := g.Model()
		meaningless := regexp.MustCompile(`^[vwn][0-9]+_*$`)
		check := func(kind, name string, io bool) {
			if keepIO && io {
				return
			}
			if !meaningless.MatchString(name) {
				t.Errorf("keepIO=%v: %s name %q kept meaning", keepIO, kind, name)
			}
		}
		for _, n := range out.Graph.Node {
			check("node", n.GetName(), false)
			for _, o := range n.Output {
				check("value", o, g.Value(o).IsOutput())
			}
		}
		for _, x := range out.Graph.Initializer {
			check("initializer", x.GetName(), false)
		}
		for _, x := range out.Graph.Input {
			check("input", x.GetName(), true)
		}
		if got, want := len(ren.Values), g.NumValues(); keepIO == false && got != want {
			t.Errorf("renaming maps %d values, graph has %d", got, want)
		}
		if keepIO && out.Graph.Input[0].GetName() != "input_ids" {
			t.Errorf("KeepIO: first input renamed to %q", out.Graph.Input[0].GetName())
		}
		if !keepIO {
			if _, err := graph.FromModel(out); err != nil {
				t.Errorf("renamed model does not load: %v", err)
			}
		}
	}
}

func TestPipelineChecksEveryPass(t *testing.T) {
	m := model(t, []string{"x"}, []string{"y"}, nil, "a = Relu(x)", "y = Neg(a)")
	g := build(t, m)
	var dump bytes.Buffer
	ok := graph.Pass{Name: "noop", Fn: func(*graph.Graph) error { return nil }}
	breaker := graph.Pass{Name: "break", Fn: func(g *graph.Graph) error {
		dead := map[*graph.Node]bool{g.Nodes[0]: true}
		g.RemoveNodes(dead) // y's input is now undefined
		return nil
	}}
	never := graph.Pass{Name: "never", Fn: func(*graph.Graph) error { t.Error("a pass after the broken one ran"); return nil }}
	err := graph.Run(g, []graph.Pass{ok, breaker, never}, graph.PassConfig{Check: true, DumpAfter: "noop", DumpTo: &dump})
	var pe *graph.PassError
	if !errors.As(err, &pe) || pe.Pass != "break" || !pe.Invalid {
		t.Fatalf("Run = %v, want an invalid-graph PassError from pass break", err)
	}
	var ue *graph.UndefinedError
	if !errors.As(err, &ue) {
		t.Errorf("Run = %v, want it to wrap an UndefinedError", err)
	}
	if !strings.HasPrefix(dump.String(), "# after pass noop\n") || !strings.Contains(dump.String(), "Relu(x)") {
		t.Errorf("dump after noop = %q", dump.String())
	}
	if err := graph.CheckOrder([]graph.Pass{ok, breaker}, []graph.Constraint{{Before: "break", After: "noop"}}); err == nil {
		t.Errorf("CheckOrder accepted a violated constraint")
	}
	if err := graph.CheckOrder([]graph.Pass{ok, ok}, nil); err == nil {
		t.Errorf("CheckOrder accepted a duplicate pass")
	}
}

func TestEditingKeepsLinksConsistent(t *testing.T) {
	m := model(t, []string{"x"}, []string{"y"}, map[string][]float32{"w": {1, 2}},
		"a = Mul(x, w)", "b = Relu(a)", "y = Neg(b)")
	g := build(t, m)
	// Skip the Relu: y reads a directly, then clone Mul and remove the dead Relu.
	g.ReplaceUses(g.Value("b"), g.Value("a"))
	c, err := g.CloneNode(g.Value("a").Producer, "mul2", []string{"a2"})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := g.AddInitializer(onnx.NewFloat32("w2", []int64{2}, []float32{3, 4}))
	if err != nil {
		t.Fatal(err)
	}
	g.SetInput(c, 1, w2)
	g.SetInput(g.Value("y").Producer, 0, c.Outputs[0])
	g.RemoveDead()
	if err := g.Sort(); err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("edited graph invalid: %v", err)
	}
	var b strings.Builder
	if err := g.Dump(&b); err != nil {
		t.Fatal(err)
	}
	want := `graph "test"
in   x float32[n]
init w2 float32[2]{3,4}
node mul2: a2 = Mul(x, w2)
node n2_Neg: y = Neg(a2)
out  y float32[n]
`
	if b.String() != want {
		t.Errorf("dump:\n%s\nwant:\n%s", b.String(), want)
	}
	if err := g.Rename(g.Value("a2"), "x"); err == nil {
		t.Errorf("Rename to a taken name: got nil error")
	}
}

// TestDumpGolden dumps a small Llama-style model (see testdata/llama3.golden).
func TestDumpGolden(t *testing.T) {
	g := build(t, smallLlama(t, true))
	var b strings.Builder
	if err := g.Dump(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "llama3.golden"), b.String())
}

// TestValueInfoFollowsValues: value_info of removed values goes, that of renamed
// values is renamed (in a copy: the source model keeps its own).
func TestValueInfoFollowsValues(t *testing.T) {
	m := model(t, []string{"x"}, []string{"y"}, nil, "a = Relu(x)", "b = Neg(x)", "y = Abs(a)")
	m.Graph.ValueInfo = []*pb.ValueInfoProto{onnx.TensorInfo("a", pb.TensorProto_FLOAT, 3), onnx.TensorInfo("b", pb.TensorProto_FLOAT, 3)}
	g := build(t, m)
	g.RemoveDead()
	if err := g.Rename(g.Value("a"), "a2"); err != nil {
		t.Fatal(err)
	}
	out := g.Model()
	var names []string
	for _, vi := range out.Graph.ValueInfo {
		names = append(names, vi.GetName())
	}
	if strings.Join(names, ",") != "a2" {
		t.Errorf("value_info %v, want [a2]", names)
	}
	if m.Graph.ValueInfo[0].GetName() != "a" {
		t.Errorf("the source model's value_info was renamed")
	}
}
