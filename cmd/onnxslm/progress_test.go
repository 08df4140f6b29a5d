package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx"
)

// TestVerboseProgress: stderr is not a terminal in tests, so progress shows
// only with -v, as one line per finished step; -q silences everything.
func TestVerboseProgress(t *testing.T) {
	// Calibration runs layer-major: one step per layer of llama8, plus the
	// embedding and the final norm.
	step := regexp.MustCompile(`(?m)^calibration: 10/10 in [0-9.]+m?s$`)
	for _, tc := range []struct {
		name    string
		flags   []string
		steps   bool // the per-step lines
		summary bool // the closing summary
	}{
		{"default", nil, false, true},
		{"verbose", []string{"-v"}, true, true},
		{"quiet wins", []string{"-v", "-q"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.onnx")
			args := append([]string{"prune", "--method", "shortgpt", "builtin:llama8", out}, tc.flags...)
			code, _, stderr := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := step.MatchString(stderr); got != tc.steps {
				t.Errorf("calibration step line shown = %v, want %v; stderr:\n%s", got, tc.steps, stderr)
			}
			if got := strings.Contains(stderr, "save "+out+": done in"); got != tc.steps {
				t.Errorf("save step line shown = %v, want %v; stderr:\n%s", got, tc.steps, stderr)
			}
			if got := strings.Contains(stderr, "onnxslm: builtin:llama8: 8 → 6 layers"); got != tc.summary {
				t.Errorf("summary shown = %v, want %v; stderr:\n%s", got, tc.summary, stderr)
			}
		})
	}
}

// TestPruneSummarySaysWhenScreened: on a model with more candidate windows
// than the default method measures, the summary says how many it searched.
func TestPruneSummarySaysWhenScreened(t *testing.T) {
	m, err := modelgen.Build(modelgen.Config{Arch: modelgen.Llama, Layers: 12, Hidden: 16, Heads: 2, FFN: 24, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "deep.onnx")
	if err := onnx.Save(m, in, onnx.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "prune", "--layers", "8", in, filepath.Join(dir, "out.onnx"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`searched (2\d|30) of the 38 candidate windows`).MatchString(stderr) {
		t.Errorf("summary does not say the windows were screened:\n%s", stderr)
	}
}
