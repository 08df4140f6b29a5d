package onnx_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
)

// TestInteropSavedModels: what Save writes, inline and with external data,
// passes the ONNX checker and gives onnxruntime bit-identical logits to the
// original file. The judges skip the test where they are not installed.
func TestInteropSavedModels(t *testing.T) {
	testenv.Long(t, "interop with onnxruntime and the ONNX checker is skipped in -short mode")
	ort := judge.ORT(t)
	check := judge.Checker(t)
	ids := judge.CalibRows(t, 2)
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			src := testenv.TestModel(t, name)
			want := logits(t, ort, src, ids)
			m, err := onnx.Load(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range []onnx.ExternalMode{onnx.ExternalNever, onnx.ExternalAlways} {
				out := filepath.Join(t.TempDir(), name+".onnx")
				if err := onnx.Save(m.Proto, out, onnx.SaveOptions{External: mode}); err != nil {
					t.Fatal(err)
				}
				if err := check.Check(out); err != nil {
					t.Errorf("%v: ONNX checker: %v", mode, err)
				}
				got := logits(t, ort, out, ids)
				if len(got) != len(want) {
					t.Fatalf("%v: %d logits, want %d", mode, len(got), len(want))
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Errorf("%v: logits[%d] = %v, original file gives %v (want bit-identical)", mode, i, got[i], want[i])
						break
					}
				}
			}
		})
	}
}

func logits(t *testing.T, ort *judge.Runtime, model string, ids *npy.Array) []float32 {
	t.Helper()
	out, err := ort.Run(model, map[string]*npy.Array{"input_ids": ids}, []string{"logits"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := out["logits"].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
