package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDesignListsEveryPackage checks that docs/DESIGN.md's package table
// names every Go package of the module: as `dir`, or, for a command or
// helper below a listed package, as (+ `name`) in the row of its parent.
func TestDesignListsEveryPackage(t *testing.T) {
	root := RepoRoot(t)
	design, err := os.ReadFile(filepath.Join(root, "docs", "DESIGN.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(string(design), "\n")
	listed := func(dir string) bool {
		parent, base := filepath.Dir(dir), filepath.Base(dir)
		for _, row := range rows {
			if !strings.HasPrefix(row, "|") {
				continue
			}
			if strings.Contains(row, "`"+dir+"`") ||
				strings.Contains(row, "`"+parent+"`") && strings.Contains(row, "`"+base+"`") {
				return true
			}
		}
		return false
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			if rel != "." {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || filepath.Dir(rel) == "." {
			return nil
		}
		if dir := filepath.ToSlash(filepath.Dir(rel)); !listed(dir) {
			t.Errorf("docs/DESIGN.md's package table does not list %s", dir)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
