package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
)

// TestInspectGenAI: inspect --json finds the layers of the genai-builder
// models, their packed and quantized projections and the fused residual
// branches.
func TestInspectGenAI(t *testing.T) {
	for _, p := range []string{modelgen.GenAIFP32, modelgen.GenAIFP16, modelgen.GenAIInt4, modelgen.GenAIInt8} {
		t.Run(p, func(t *testing.T) {
			dir := t.TempDir()
			if err := modelgen.WriteGenAI(dir, modelgen.GenAIConfig{Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, Seed: 3, Precision: p}); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCLI(t, "inspect", "--json", filepath.Join(dir, "model.onnx"))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var got struct {
				NumLayers int `json:"num_layers"`
				Layers    []struct {
					InputBranch  string `json:"input_branch"`
					OutputBranch string `json:"output_branch"`
					Past         []string
					Projections  []struct {
						Role, Storage string
						Bits          int
						Weights       map[string]int
					} `json:"projections"`
				} `json:"layers"`
				LayersError string `json:"layers_error"`
			}
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatal(err)
			}
			if got.NumLayers != 3 || len(got.Layers) != 3 {
				t.Fatalf("%d layers (%s)", got.NumLayers, got.LayersError)
			}
			for i, l := range got.Layers {
				if (i == 0) != (l.InputBranch == "") || l.OutputBranch == "" || len(l.Past) != 2 || len(l.Projections) != 5 {
					t.Errorf("layer %d: branches %q %q, past %v, %d projections", i, l.InputBranch, l.OutputBranch, l.Past, len(l.Projections))
					continue
				}
				qkv := l.Projections[0]
				want := map[string]string{modelgen.GenAIInt4: "nbits", modelgen.GenAIInt8: "nbits"}[p]
				if want == "" {
					want = "dense"
				}
				if qkv.Role != "qkv" || qkv.Storage != want || (want == "nbits") != (len(qkv.Weights) == 2 && qkv.Bits > 0) {
					t.Errorf("layer %d: first projection %+v", i, qkv)
				}
			}
		})
	}
}

// TestWriteGenAIConfig: the config beside the input is written beside the
// output with the new depth and file name, never over the input's own.
func TestWriteGenAIConfig(t *testing.T) {
	in := t.TempDir()
	if err := modelgen.WriteGenAI(in, modelgen.GenAIConfig{Layers: 4, Hidden: 32, Heads: 2, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(in, "model.onnx")
	out := filepath.Join(t.TempDir(), "small.onnx")
	path, err := writeGenAIConfig(model, out, 4, []int{0, 1, 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Model struct {
			Decoder struct {
				Filename        string `json:"filename"`
				NumHiddenLayers int    `json:"num_hidden_layers"`
			} `json:"decoder"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if d := cfg.Model.Decoder; d.NumHiddenLayers != 3 || d.Filename != "small.onnx" || filepath.Dir(path) != filepath.Dir(out) {
		t.Errorf("%s: %+v", path, d)
	}
	if _, err := writeGenAIConfig(model, filepath.Join(in, "small.onnx"), 4, []int{0}, false); err == nil || !strings.Contains(err.Error(), "input's folder") {
		t.Errorf("output beside the input: err = %v", err)
	}
	if _, err := writeGenAIConfig(model, out, 4, []int{0}, true); err == nil {
		t.Error("--keep-kv-numbers: a config was written")
	}
	if p, err := writeGenAIConfig(filepath.Join(t.TempDir(), "m.onnx"), out, 4, []int{0}, false); p != "" || err != nil {
		t.Errorf("no config beside the input: %q, %v", p, err)
	}
}
