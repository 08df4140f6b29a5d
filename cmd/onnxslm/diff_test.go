package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/golden"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/slm"
)

// diffFixtures writes into dir: a.onnx, a small generated Llama of 4 layers;
// b.onnx, a with layers 1..2 merged (paper rule, onnxslm metadata); c.onnx, a
// with its interface, opsets, header and metadata edited.
func diffFixtures(t *testing.T, dir string) {
	t.Helper()
	a, err := modelgen.Build(modelgen.Config{Arch: modelgen.Llama, Layers: 4, Hidden: 16, Heads: 2, FFN: 24, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	st, err := discover.Find(a)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rewrite.Merge(a, st, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}}},
		rewrite.Options{Meta: rewrite.Meta{Version: "test", Method: "slm"}})
	if err != nil {
		t.Fatal(err)
	}
	c := proto.Clone(a).(*pb.ModelProto)
	c.ProducerVersion = proto.String("2.0")
	c.OpsetImport[0].Version = proto.Int64(c.OpsetImport[0].GetVersion() + 1)
	c.MetadataProps = append(c.MetadataProps, &pb.StringStringEntryProto{Key: proto.String("note"), Value: proto.String("edited by hand")})
	out := c.Graph.Output[0].Type.GetTensorType()
	out.ElemType = proto.Int32(int32(pb.TensorProto_FLOAT16))
	c.Graph.Input = append(c.Graph.Input, proto.Clone(c.Graph.Input[0]).(*pb.ValueInfoProto))
	c.Graph.Input[len(c.Graph.Input)-1].Name = proto.String("token_type_ids")
	for name, m := range map[string]*pb.ModelProto{"a.onnx": a, "b.onnx": res.Model, "c.onnx": c} {
		testmodel.Write(t, filepath.Join(dir, name), m)
	}
}

// TestDiffGolden compares the text output with testdata/diff_*.golden (run
// with -update to rewrite them after a deliberate change).
func TestDiffGolden(t *testing.T) {
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	diffFixtures(t, work)
	t.Chdir(work) // the diff names the models as given: a.onnx, b.onnx
	for _, c := range []struct{ name, a, b string }{
		{"diff_merged.golden", "a.onnx", "b.onnx"},
		{"diff_edited.golden", "a.onnx", "c.onnx"},
		{"diff_same.golden", "a.onnx", "a.onnx"},
	} {
		code, stdout, stderr := runCLI(t, "diff", c.a, c.b)
		if code != 0 || stderr != "" {
			t.Fatalf("%s %s: exit %d, stderr %q; want 0 and nothing", c.a, c.b, code, stderr)
		}
		golden.Check(t, filepath.Join(dir, c.name), stdout)
	}
}

// TestDiffSharedPruned diffs the shared llama8 against a copy with two
// windows merged, as JSON: exactly the removed layers, the kept layers'
// origins, and the merged tensors.
func TestDiffSharedPruned(t *testing.T) {
	in := testenv.TestModel(t, "llama8")
	m, st := testmodel.Stack(t, in)
	res, err := rewrite.Merge(m.Proto, st, rewrite.Plan{Rule: rewrite.Paper, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}, {Window: slm.Window{Low: 4, High: 6}}}},
		rewrite.Options{Meta: rewrite.Meta{Version: "test", Method: "slm"}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "pruned.onnx")
	if err := onnx.Save(res.Model, out, onnx.SaveOptions{External: onnx.ExternalAlways}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "diff", in, out, "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	obj := decodeOne(t, stdout)
	for _, k := range []string{"a", "b", "identical", "header", "opsets", "inputs", "outputs", "nodes", "initializers", "metadata", "decoder"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("JSON lacks key %q", k)
		}
	}
	if obj["identical"] != false {
		t.Errorf("identical = %v, want false", obj["identical"])
	}
	dec := obj["decoder"].(map[string]any)
	if got, want := diffInts(dec["removed_layers"]), []int{2, 5, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("removed_layers = %v, want %v", got, want)
	}
	if got := diffInts(dec["kept_from"]); !reflect.DeepEqual(got, res.KeptFrom) {
		t.Errorf("kept_from = %v, want %v", got, res.KeptFrom)
	}
	var added []string
	for _, x := range obj["initializers"].(map[string]any)["added"].([]any) {
		added = append(added, x.(map[string]any)["name"].(string))
	}
	if !reflect.DeepEqual(added, res.NewInitializers) {
		t.Errorf("added initializers = %v, want %v", added, res.NewInitializers)
	}
	files := obj["b"].(map[string]any)["files"].([]any)
	if len(files) != 2 {
		t.Errorf("B's files = %v, want the model and its external data", files)
	}

	// The text form says the same for people.
	code, stdout, _ = runCLI(t, "diff", in, out, "-q")
	if code != 0 {
		t.Fatalf("text: exit %d", code)
	}
	for _, want := range []string{"decoder layers  8 → 5", "removed layers  2, 5, 6", "layer 1 ← layers 1..2", "layer 3 ← layers 4..6", "+ onnxslm.kept_from"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, stdout)
		}
	}
}

func diffInts(v any) []int {
	var out []int
	for _, x := range v.([]any) {
		out = append(out, int(x.(float64)))
	}
	return out
}

func TestDiffSelfAndErrors(t *testing.T) {
	code, stdout, stderr := runCLI(t, "diff", "builtin:llama8", "builtin:llama8")
	if code != 0 || stdout != "no differences\n" || stderr != "" {
		t.Errorf("model against itself: exit %d, stdout %q, stderr %q; want 0, \"no differences\\n\", nothing", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "diff", "builtin:llama8", "builtin:llama8", "--json")
	if code != 0 || decodeOne(t, stdout)["identical"] != true {
		t.Errorf("--json against itself: exit %d, identical = %v; want 0, true", code, decodeOne(t, stdout)["identical"])
	}
	for _, args := range [][]string{{"diff"}, {"diff", "a.onnx"}, {"diff", "a", "b", "c"}, {"diff", "a", "b", "--limit", "-1"}} {
		if code, _, stderr := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.onnx")
	if code, _, stderr := runCLI(t, "diff", "builtin:llama8", missing); code != 1 || !strings.Contains(stderr, "missing.onnx") {
		t.Errorf("missing model: exit %d, stderr %q; want 1 naming the file", code, stderr)
	}
}
