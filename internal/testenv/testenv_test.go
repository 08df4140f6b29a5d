package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot() = %q: no go.mod there: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv", "testenv.go")); err != nil {
		t.Fatalf("RepoRoot() = %q is not this repository: %v", root, err)
	}
}

func TestSharedModels(t *testing.T) {
	dir := SharedDir(t)
	if got, want := filepath.Base(dir), "shared"; got != want {
		t.Errorf("SharedDir base = %q, want %q", got, want)
	}
	for _, name := range []string{"llama8", "gpt2_6"} {
		p := TestModel(t, name)
		if got, want := filepath.Base(p), name+".onnx"; got != want {
			t.Errorf("TestModel(%q) = %q, want base %q", name, p, want)
		}
	}
	if p := TestFile(t, "tokens/calib_train_16x128.npy"); filepath.Base(p) != "calib_train_16x128.npy" {
		t.Errorf("TestFile = %q", p)
	}
}

// fakeTB records Skip and Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skip(args ...any)               { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

// TestUnavailableSkipsOrFails: the one policy of the judges and the shared
// models: skip with the reason, fail under CI=true.
func TestUnavailableSkipsOrFails(t *testing.T) {
	const reason = "onnxruntime-node not installed: run .ci/install-judges.sh"
	for _, ci := range []string{"", "false", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		Unavailable(f, reason)
		if ci == "true" {
			if f.skipped != "" || !strings.Contains(f.failed, reason) {
				t.Errorf("CI=%q: skipped %q, failed %q, want a failure", ci, f.skipped, f.failed)
			}
		} else if f.failed != "" || f.skipped != reason {
			t.Errorf("CI=%q: skipped %q, failed %q, want a skip", ci, f.skipped, f.failed)
		}
	}
}

// TestAblationOptIn: the measurements run only with ONNXSLM_ABLATION set,
// and skip without it even under CI=true (they are not part of the suite).
func TestAblationOptIn(t *testing.T) {
	for _, tc := range []struct {
		ablation, ci string
		skip         bool
	}{
		{"", "", true},
		{"", "true", true},
		{"1", "", false},
		{"1", "true", false},
	} {
		t.Setenv("ONNXSLM_ABLATION", tc.ablation)
		t.Setenv("CI", tc.ci)
		f := &fakeTB{TB: t}
		Ablation(f)
		if skipped := f.skipped != ""; skipped != tc.skip || f.failed != "" {
			t.Errorf("ONNXSLM_ABLATION=%q CI=%q: skipped %q, failed %q, want skip %v", tc.ablation, tc.ci, f.skipped, f.failed, tc.skip)
		}
	}
}
