package heldout

import (
	"path/filepath"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
)

func TestLoad(t *testing.T) {
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of a folder without testmodels: no error")
	}
	shared := testenv.SharedDir(t)
	d, err := Load(shared)
	if err != nil {
		t.Fatal(err)
	}
	if d.Dir != filepath.Join(shared, "testmodels") {
		t.Errorf("Dir = %q", d.Dir)
	}
	if len(d.Calib) != 16 || len(d.Calib[0]) != 128 {
		t.Errorf("Calib is %d rows, want 16x128", len(d.Calib))
	}
	for i, rows := range d.Evals {
		if len(rows) != 64 || len(rows[0]) != 256 {
			t.Errorf("%s: %d rows, want 64x256", Evals[i], len(rows))
		}
	}
}
