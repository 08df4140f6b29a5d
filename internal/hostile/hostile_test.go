package hostile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
)

// TestCatalogueUpToDate: testdata/hostile/README.md is what the generator writes.
func TestCatalogueUpToDate(t *testing.T) {
	cases, err := All()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(testenv.RepoRoot(t), "testdata", "hostile", "README.md")
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(Catalogue(cases)) {
		t.Errorf("%s is out of date: run go generate ./internal/hostile", p)
	}
}

// TestCases: names are unique and file-name safe, every case writes its
// input, says what a message must name, and the base it mutates is valid.
func TestCases(t *testing.T) {
	base, err := Base()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "base.onnx")
	if err := writeModel(p, base); err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.Load(p); err != nil {
		t.Fatalf("the base model does not load: %v", err)
	}
	before, err := marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ModelCases(base)
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, TokenCases()...)
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.Name] || c.Name == "" || filepath.Base(c.Name) != c.Name {
			t.Errorf("case name %q is empty, repeated or not a plain file name", c.Name)
		}
		seen[c.Name] = true
		if c.Doc == "" || len(c.Names) == 0 {
			t.Errorf("%s: no doc or no names", c.Name)
		}
	}
	paths, err := Write(dir, cases)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if _, err := os.Lstat(paths[c.Name]); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	// Writing must not change base (cases work on copies).
	if after, _ := marshal(base); string(after) != string(before) {
		t.Errorf("writing the cases changed the base model")
	}
}
