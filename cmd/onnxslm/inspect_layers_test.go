package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testenv"
)

type layersJSON struct {
	NumLayers int `json:"num_layers"`
	Layers    []struct {
		Index  int    `json:"index"`
		Input  string `json:"input"`
		Output string `json:"output"`
		Nodes  int    `json:"nodes"`
		Params []struct {
			Kind string `json:"kind"`
		} `json:"params"`
	} `json:"layers"`
	LayersError string `json:"layers_error"`
	Pruned      *struct {
		Windows  [][2]int `json:"windows"`
		KeptFrom []int    `json:"kept_from"`
	} `json:"pruned"`
}

// TestInspectLayers: inspect --json finds the decoder layers of the shared
// models with the boundary values PyTorch identified numerically.
func TestInspectLayers(t *testing.T) {
	dir := filepath.Join(testenv.SharedDir(t), "testmodels")
	for _, name := range reference.Models {
		truth, err := reference.LoadTruth(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		got := inspectLayers(t, filepath.Join(dir, name+".onnx"))
		if got.NumLayers != truth.Config.Layers || len(got.Layers) != truth.Config.Layers {
			t.Fatalf("%s: num_layers %d (%d listed), want %d (%s)", name, got.NumLayers, len(got.Layers), truth.Config.Layers, got.LayersError)
		}
		bounds := truth.Boundaries()
		for i, l := range got.Layers {
			if l.Index != i {
				t.Errorf("%s: layer %d has index %d", name, i, l.Index)
			}
			if !contains(bounds[i], l.Input) || !contains(bounds[i+1], l.Output) {
				t.Errorf("%s layer %d: %s → %s, want one of %v → one of %v", name, i, l.Input, l.Output, bounds[i], bounds[i+1])
			}
			if l.Nodes == 0 || len(l.Params) == 0 {
				t.Errorf("%s layer %d: %d nodes, %d params", name, i, l.Nodes, len(l.Params))
			}
		}
	}
}

func TestInspectNotDecoder(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(t), "testdata", "models", "neg_mlp.onnx")
	got := inspectLayers(t, path)
	if got.NumLayers != 0 || got.LayersError == "" {
		t.Errorf("got %d layers, error %q; want none and a reason", got.NumLayers, got.LayersError)
	}
}

// TestInspectShowsWhatWasMerged prunes the built-in model and reads back the
// windows from the output's metadata.
func TestInspectShowsWhatWasMerged(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.onnx")
	if code, _, stderr := runCLI(t, "prune", "-q", "--layers", "6", "builtin:llama8", out); code != 0 {
		t.Fatalf("prune: exit %d: %s", code, stderr)
	}
	got := inspectLayers(t, out)
	if got.NumLayers != 6 || got.Pruned == nil || len(got.Pruned.KeptFrom) != 6 {
		t.Fatalf("got %d layers, pruned %+v; want 6 layers with kept_from of 6", got.NumLayers, got.Pruned)
	}
	merged := 0
	for _, w := range got.Pruned.Windows {
		merged += w[1] - w[0]
	}
	if merged != 2 {
		t.Errorf("windows %v merge away %d layers, want 2", got.Pruned.Windows, merged)
	}
	_, table, _ := runCLI(t, "inspect", out)
	if !strings.Contains(table, "pruned by onnxslm") || !strings.Contains(table, "decoder layers  6") {
		t.Errorf("table lacks the pruning summary or the layer count:\n%s", table)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// inspectLayers runs `onnxslm inspect --json` on the model at path and
// decodes its layers, failing t unless it exits 0.
func inspectLayers(t *testing.T, path string) layersJSON {
	t.Helper()
	code, stdout, stderr := runCLI(t, "inspect", "--json", path)
	if code != 0 {
		t.Fatalf("inspect %s: exit %d: %s", path, code, stderr)
	}
	var got layersJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	return got
}
