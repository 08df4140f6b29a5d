package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCPUProfile: --cpuprofile writes a pprof file; a path that cannot be
// created is an error that names the flag, with no output model.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	prof, out := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "out.onnx")
	if code, _, stderr := runCLI(t, "prune", "-q", "--method", "shortgpt", "builtin:llama8", out, "--cpuprofile", prof); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("profile: %v (size %v), want a non-empty file", err, fi)
	}
	out2 := filepath.Join(dir, "out2.onnx")
	code, _, stderr := runCLI(t, "prune", "-q", "--method", "shortgpt", "builtin:llama8", out2, "--cpuprofile", filepath.Join(dir, "no", "such", "cpu.pprof"))
	if code != 1 || !strings.Contains(stderr, "--cpuprofile") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming --cpuprofile", code, stderr)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Errorf("an output model was written after the profile failed")
	}
}
