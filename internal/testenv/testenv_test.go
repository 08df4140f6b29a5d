package testenv

import (
	"os"
	"path/filepath"
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
