package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// runCLI runs Main with args and returns the exit status, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &stdio{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// failingCall is a command line that must fail with exit status code, an
// error that contains want and nothing on stdout.
type failingCall struct {
	name string
	args []string
	code int
	want string
}

// check runs the call and reports where it does not fail as it must; it
// returns stderr for further checks.
func (c failingCall) check(t *testing.T) (stderr string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, c.args...)
	if code != c.code || !strings.Contains(stderr, c.want) {
		t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.name, code, stderr, c.code, c.want)
	}
	if stdout != "" {
		t.Errorf("%s: stdout %q, want nothing", c.name, stdout)
	}
	return stderr
}

func builtinModel(t *testing.T) *onnx.Model {
	t.Helper()
	m, err := loadModelArg("builtin:llama8")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// decodeOne decodes stdout as exactly one JSON object.
func decodeOne(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON value")
	}
	return obj
}

func TestInspectJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "inspect", "builtin:llama8", "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	obj := decodeOne(t, stdout)
	for _, k := range []string{"ir_version", "opset_import", "producer_name", "producer_version", "inputs", "outputs",
		"op_counts", "num_nodes", "num_initializers", "parameters", "parameter_bytes", "external_data_files", "metadata"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("JSON lacks key %q", k)
		}
	}
	// The figures must match what the model holds, counted here independently.
	m := builtinModel(t).Proto
	var params, pbytes float64
	for _, init := range m.Graph.Initializer {
		if init.GetDataType() == int32(pb.TensorProto_FLOAT) {
			n := 1.0
			for _, d := range init.Dims {
				n *= float64(d)
			}
			params += n
			pbytes += 4 * n
		}
	}
	ops := map[string]float64{}
	for _, n := range m.Graph.Node {
		ops[n.GetOpType()]++
	}
	checks := []struct {
		key  string
		got  any
		want any
	}{
		{"ir_version", obj["ir_version"], float64(m.GetIrVersion())},
		{"producer_name", obj["producer_name"], m.GetProducerName()},
		{"producer_version", obj["producer_version"], m.GetProducerVersion()},
		{"num_nodes", obj["num_nodes"], float64(len(m.Graph.Node))},
		{"num_initializers", obj["num_initializers"], float64(len(m.Graph.Initializer))},
		{"parameters", obj["parameters"], params},
		{"parameter_bytes", obj["parameter_bytes"], pbytes},
		{"opset version", obj["opset_import"].([]any)[0].(map[string]any)["version"], float64(m.OpsetImport[0].GetVersion())},
		{"external_data_files", len(obj["external_data_files"].([]any)), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.key, c.got, c.want)
		}
	}
	gotOps := obj["op_counts"].(map[string]any)
	if len(gotOps) != len(ops) {
		t.Errorf("op_counts has %d ops, want %d", len(gotOps), len(ops))
	}
	for op, n := range ops {
		if gotOps[op] != n {
			t.Errorf("op_counts[%s] = %v, want %v", op, gotOps[op], n)
		}
	}
	// Inputs and outputs with dtype and shape, symbolic dims by name.
	in := m.Graph.Input[0]
	gotIn := obj["inputs"].([]any)[0].(map[string]any)
	if gotIn["name"] != in.GetName() || gotIn["dtype"] != "int64" {
		t.Errorf("inputs[0] = %v, want name %q dtype int64", gotIn, in.GetName())
	}
	for i, d := range in.Type.GetTensorType().Shape.Dim {
		var want any = d.GetDimParam()
		if d.GetDimParam() == "" {
			want = float64(d.GetDimValue())
		}
		if got := gotIn["shape"].([]any)[i]; got != want {
			t.Errorf("inputs[0].shape[%d] = %v, want %v", i, got, want)
		}
	}
	out := obj["outputs"].([]any)[0].(map[string]any)
	if out["dtype"] != "float32" || len(out["shape"].([]any)) != 3 {
		t.Errorf("outputs[0] = %v, want float32 of rank 3", out)
	}
}

func TestInspectTable(t *testing.T) {
	models := []string{"builtin:llama8"}
	for _, name := range []string{"llama8", "gpt2_6"} {
		models = append(models, testenv.TestModel(t, name))
	}
	for _, model := range models {
		code, stdout, stderr := runCLI(t, "inspect", model)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", model, code, stderr)
		}
		m, err := loadModelArg(model)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ir_version", "parameters", "inputs", "outputs", "ops",
			m.Proto.GetProducerName(), m.Proto.Graph.Input[0].GetName(), m.Proto.Graph.Output[0].GetName(), "MatMul"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: table lacks %q:\n%s", model, want, stdout)
			}
		}
		if strings.HasPrefix(strings.TrimSpace(stdout), "{") {
			t.Errorf("%s: table output looks like JSON", model)
		}
	}
}

// A model saved with external data lists its data file, and inspect (which
// does not read the data) reports the rest as for the same model inline:
// parameters, layers and all.
func TestInspectExternal(t *testing.T) {
	dir := t.TempDir()
	p, inline := filepath.Join(dir, "m.onnx"), filepath.Join(dir, "inline.onnx")
	if err := onnx.Save(builtinModel(t).Proto, p, onnx.SaveOptions{External: onnx.ExternalAlways}); err != nil {
		t.Fatal(err)
	}
	if err := onnx.Save(builtinModel(t).Proto, inline, onnx.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI(t, "inspect", "--json", p)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	got := decodeOne(t, stdout)
	files := got["external_data_files"].([]any)
	if len(files) != 1 || files[0] != "m.onnx.data" {
		t.Errorf("external_data_files = %v, want [m.onnx.data]", files)
	}
	code, stdout, _ = runCLI(t, "inspect", "--json", inline)
	if code != 0 {
		t.Fatalf("inline: exit %d", code)
	}
	want := decodeOne(t, stdout)
	for _, k := range []string{"model", "external_data_files"} {
		delete(got, k)
		delete(want, k)
	}
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w || got["num_layers"] != float64(8) {
		t.Errorf("inspect of the external-data model differs from the inline one's:\n%s\nwant\n%s", g, w)
	}
	if code, stdout, _ := runCLI(t, "inspect", p); code != 0 || !strings.Contains(stdout, "m.onnx.data") {
		t.Errorf("table: exit %d, lacks the data file:\n%s", code, stdout)
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.onnx")
	os.WriteFile(text, []byte("hello, not a model"), 0o644)
	cases := []failingCall{
		{"no model", []string{"inspect"}, 2, "onnxslm inspect: inspect takes one MODEL"},
		{"two models", []string{"inspect", "a", "b"}, 2, "inspect takes one MODEL"},
		{"missing file", []string{"inspect", filepath.Join(dir, "none.onnx")}, 1,
			"onnxslm inspect: load " + filepath.Join(dir, "none.onnx") + ": no such file or directory"},
		{"not ONNX", []string{"inspect", "--json", text}, 1, "onnxslm inspect: load " + text + ": not an ONNX model"},
		{"unknown builtin", []string{"inspect", "builtin:nope"}, 1, `no built-in model "builtin:nope"`},
		{"unknown flag", []string{"inspect", "--yaml", "builtin:llama8"}, 2, "unknown flag: --yaml"},
	}
	for _, c := range cases {
		stderr := c.check(t)
		if c.code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: error is not one line: %q", c.name, stderr)
		}
	}
}
