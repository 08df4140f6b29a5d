package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPruneDefaultOnBuiltin(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.onnx")
	rep := filepath.Join(dir, "report.json")
	// The main job, as the README runs it: no flags but a report.
	code, stdout, stderr := runCLI(t, "builtin:llama8", out, "--report", rep)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout should stay empty without --json, got %q", stdout)
	}
	if !strings.Contains(stderr, "8 → 6 layers") {
		t.Errorf("summary on stderr lacks the layer counts:\n%s", stderr)
	}
	var r map[string]any
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"layers_before", "layers_after", "windows", "similarity", "trace", "parameters_before", "parameters_after", "method", "merge", "threshold", "wall_seconds"} {
		if _, ok := r[key]; !ok {
			t.Errorf("report lacks %q", key)
		}
	}
	if r["layers_before"].(float64) != 8 || r["layers_after"].(float64) != 6 {
		t.Errorf("report: %v → %v layers, want 8 → 6", r["layers_before"], r["layers_after"])
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("no output model: %v", err)
	}
}

func TestPruneJSONOnStdout(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.onnx")
	code, stdout, stderr := runCLI(t, "prune", "-q", "--json", "--method", "shortgpt", "--layers", "7", "builtin:llama8", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("-q should silence stderr, got %q", stderr)
	}
	r := decodeOne(t, stdout)
	if r["layers_after"].(float64) != 7 || r["method"] != "shortgpt" {
		t.Errorf("got %v layers by %v, want 7 by shortgpt", r["layers_after"], r["method"])
	}
}

func TestPruneUsageAndErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.onnx")
	tests := []failingCall{
		{"no arguments", []string{"prune"}, 2, "takes IN.onnx and OUT.onnx"},
		{"threshold and layers", []string{"prune", "--threshold", "0.9", "--layers", "6", "builtin:llama8", out}, 2, "--threshold 0.9 with --layers 6"},
		{"bad threshold", []string{"prune", "--threshold", "1.5", "builtin:llama8", out}, 2, "--threshold"},
		{"bad ratio", []string{"prune", "--prune-ratio", "1", "builtin:llama8", out}, 2, "--prune-ratio"},
		{"bad merge", []string{"prune", "--merge", "average", "builtin:llama8", out}, 2, "--merge"},
		{"bad method", []string{"prune", "--method", "magic", "builtin:llama8", out}, 2, "--method"},
		{"unknown flag", []string{"prune", "--frobnicate", "builtin:llama8", out}, 2, "frobnicate"},
		{"missing model", []string{"prune", filepath.Join(dir, "nope.onnx"), out}, 1, "nope.onnx"},
		{"too many layers", []string{"prune", "--layers", "9", "builtin:llama8", out}, 2, "--layers 9: the model has only 8 layers"},
		{"missing calib", []string{"prune", "--calib", filepath.Join(dir, "nope.npy"), "builtin:llama8", out}, 1, "nope.npy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t)
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("an output file exists after a failure")
			}
		})
	}
}

func TestPruneRefusesToOverwriteInput(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.onnx")
	b, err := os.ReadFile(filepath.Join(testdataModels(t), "tiny_llama.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.onnx")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{in, link} {
		code, _, stderr := runCLI(t, "prune", "-q", in, out)
		if code != 1 || !strings.Contains(stderr, "refusing to overwrite") {
			t.Errorf("OUT %s: exit %d, %q; want exit 1 refusing to overwrite", out, code, stderr)
		}
	}
	after, err := os.ReadFile(in)
	if err != nil || string(after) != string(b) {
		t.Errorf("the input changed")
	}
}

func testdataModels(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..", "testdata", "models")
}

// TestPruneCalibText calibrates from raw text: byte-level ids for the vocab-256
// built-in model, cut into --calib-rows sequences of --calib-seq-len.
func TestPruneCalibText(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "calib.txt")
	var b strings.Builder
	for b.Len() < 8*64 {
		b.WriteString("func (s *Server) Serve(l net.Listener) error {\n\tdefer l.Close()\n\treturn nil\n}\n")
	}
	if err := os.WriteFile(text, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	code, stdout, stderr := runCLI(t, "prune", "-q", "--json", "--method", "shortgpt", "--layers", "7",
		"--calib-text", text, "--calib-seq-len", "64", "--calib-rows", "4", "builtin:llama8", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := decodeOne(t, stdout)
	cal := r["calibration"].(map[string]any)
	if cal["sequences"].(float64) != 4 || cal["seq_len"].(float64) != 64 {
		t.Errorf("calibration %v, want 4 sequences of 64", cal)
	}
	// A model whose vocabulary is not bytes needs a tokenizer.
	code, _, stderr = runCLI(t, "prune", "-q", "--calib-text", text, "--tokenizer", filepath.Join(dir, "missing.json"), "builtin:llama8", filepath.Join(dir, "o2.onnx"))
	if code != 1 || !strings.Contains(stderr, "missing.json") {
		t.Errorf("missing tokenizer: exit %d, %q; want exit 1 naming the file", code, stderr)
	}
}
