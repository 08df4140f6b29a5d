package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestVerboseProgress: stderr is not a terminal in tests, so progress shows
// only with -v, as one line per finished step; -q silences everything.
func TestVerboseProgress(t *testing.T) {
	step := regexp.MustCompile(`(?m)^calibration: 2/2 in [0-9.]+m?s$`)
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
