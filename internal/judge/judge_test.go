package judge

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

func TestORTReproducesReferenceLogits(t *testing.T) {
	ort := ORT(t)
	if v, err := ort.Version(); err != nil || v != "1.30.0" {
		t.Errorf("onnxruntime-node version %q, %v, want 1.30.0 (pinned in tools/judges/package.json)", v, err)
	}
	for _, name := range []string{"llama8", "gpt2_6"} {
		t.Run(name, func(t *testing.T) {
			out, err := ort.Run(testenv.TestModel(t, name), map[string]*npy.Array{"input_ids": CalibRows(t, 2)}, []string{"logits"})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := npy.Read(testenv.TestFile(t, name+".logits.npy"))
			if err != nil {
				t.Fatal(err)
			}
			got := out["logits"]
			if fmt.Sprint(got.Shape) != fmt.Sprint(ref.Shape) || got.DType != npy.Float32 {
				t.Fatalf("logits %s %v, want <f4 %v", got.DType, got.Shape, ref.Shape)
			}
			g, _ := got.Float32s()
			w, _ := ref.Float32s()
			maxDiff, maxRef := stats.MaxAbsDiff(g, w), stats.MaxAbs(w)
			t.Logf("%s: max |ORT - reference| = %.3g (max |reference| %.3g)", name, maxDiff, maxRef)
			if maxDiff > 1e-4*maxRef {
				t.Errorf("max |ORT logits - %s.logits.npy| = %g, want <= 1e-4 × %g", name, maxDiff, maxRef)
			}
		})
	}
}

func TestORTAllOutputsAndErrors(t *testing.T) {
	ort := ORT(t)
	model := testenv.TestModel(t, "llama8")
	out, err := ort.Run(model, map[string]*npy.Array{"input_ids": CalibRows(t, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out["logits"] == nil {
		t.Errorf("Run with no output names: got outputs %v, want [logits]", keys(out))
	}
	// A wrong input name and a wrong dtype are onnxruntime errors, not panics.
	f, _ := npy.New([]int{1, 2}, []float32{1, 2})
	for _, tc := range []struct {
		name   string
		inputs map[string]*npy.Array
		msg    string
	}{
		{"missing input", map[string]*npy.Array{"ids": CalibRows(t, 1)}, "input"},
		{"wrong dtype", map[string]*npy.Array{"input_ids": f}, "tensor(float)"},
	} {
		_, err := ort.Run(model, tc.inputs, []string{"logits"})
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), model) {
			t.Errorf("%s: got %v, want an error naming the model and containing %q", tc.name, err, tc.msg)
		}
	}
	_, err = ort.Run(filepath.Join(t.TempDir(), "none.onnx"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "none.onnx") {
		t.Errorf("missing model: got %v, want an error naming it", err)
	}
}

func keys(m map[string]*npy.Array) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func TestCheckerOnSharedModels(t *testing.T) {
	c := Checker(t)
	for _, name := range []string{"llama8", "gpt2_6"} {
		// Check a copy and compare bytes: check_model(path) would rewrite it.
		src, err := os.ReadFile(testenv.TestModel(t, name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name+".onnx")
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.Check(p); err != nil {
			t.Errorf("%s: %v, want valid", name, err)
		}
		if after, _ := os.ReadFile(p); !bytes.Equal(after, src) {
			t.Errorf("%s: the checker modified the model file", name)
		}
	}
}

func TestCheckerRejects(t *testing.T) {
	c := Checker(t)
	undefined := EditedModel(t, "llama8", "edited", func(m *pb.ModelProto) {
		for _, n := range m.Graph.Node {
			if n.GetOpType() == "MatMul" {
				n.Input[0] = "no_such_value"
				return
			}
		}
	})
	err := c.Check(undefined)
	if err == nil || !strings.Contains(err.Error(), "no_such_value") || errors.Is(err, errTooNew) {
		t.Errorf("node reading an undefined value: got %v, want an error naming no_such_value", err)
	} else {
		t.Logf("undefined value: %v", err)
	}
	tooNew := EditedModel(t, "gpt2_6", "edited", func(m *pb.ModelProto) {
		for _, o := range m.OpsetImport {
			if o.GetDomain() == "" {
				o.Version = proto.Int64(21)
			}
		}
	})
	err = c.Check(tooNew)
	if !errors.Is(err, errTooNew) || !strings.Contains(err.Error(), "opset 21 > 17") {
		t.Errorf("opset 21: got %v, want a failure saying opset 21 > 17", err)
	} else {
		t.Logf("opset 21: %v", err)
	}
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		c.Valid(f, tooNew)
		if ci == "true" {
			if f.skipped != "" || f.errored != "" || !strings.Contains(f.failed, "opset 21 > 17") {
				t.Errorf("Valid, opset 21, CI=true: skipped %q, failed %q, errored %q; want a failure", f.skipped, f.failed, f.errored)
			}
		} else if f.failed != "" || f.errored != "" || !strings.Contains(f.skipped, "opset 21 > 17") {
			t.Errorf("Valid, opset 21, CI unset: skipped %q, failed %q, errored %q; want a skip", f.skipped, f.failed, f.errored)
		}
	}
	f := &fakeTB{TB: t}
	c.Valid(f, undefined)
	if f.skipped != "" || !strings.Contains(f.errored, "no_such_value") {
		t.Errorf("Valid, undefined value: skipped %q, errored %q; want an error naming no_such_value", f.skipped, f.errored)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	os.WriteFile(garbage, []byte("not a model"), 0o644)
	if err := c.Check(garbage); err == nil || !strings.Contains(err.Error(), "garbage.onnx") {
		t.Errorf("non-ONNX file: got %v, want an error naming it", err)
	}
}

// fakeTB records Skip, Fatalf and Errorf instead of stopping the test.
type fakeTB struct {
	testing.TB
	skipped, failed, errored string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skip(args ...any)               { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }
func (f *fakeTB) Errorf(format string, a ...any) { f.errored = fmt.Sprintf(format, a...) }
