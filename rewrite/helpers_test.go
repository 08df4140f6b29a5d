package rewrite_test

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"google.golang.org/protobuf/proto"
)

// snapshot fingerprints a model's serialized form.
func snapshot(m *pb.ModelProto) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// mergeBoth applies one plan to a deployed layout (m, s) and to its plain
// twin (twin, ts), both checked, for tests that compare the two in onnxruntime.
func mergeBoth(t *testing.T, m *pb.ModelProto, s *discover.Stack, twin *pb.ModelProto, ts *discover.Stack, plan rewrite.Plan) (res, ref *rewrite.Result) {
	t.Helper()
	res, err := rewrite.Merge(m, s, plan, rewrite.Options{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	ref, err = rewrite.Merge(twin, ts, plan, rewrite.Options{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	return res, ref
}

// runBoth saves two models and runs both in onnxruntime (the judge), a on
// feedsA and b on feedsB, fetching outputs (nil: all).
func runBoth(t *testing.T, ort *judge.Runtime, a, b *pb.ModelProto, feedsA, feedsB map[string]*npy.Array, outputs []string) (outA, outB map[string]*npy.Array) {
	t.Helper()
	dir := t.TempDir()
	run := func(name string, m *pb.ModelProto, feeds map[string]*npy.Array) map[string]*npy.Array {
		path := filepath.Join(dir, name)
		if err := onnx.Save(m, path, onnx.SaveOptions{External: onnx.ExternalNever}); err != nil {
			t.Fatal(err)
		}
		out, err := ort.Run(path, feeds, outputs)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return run("a.onnx", a, feedsA), run("b.onnx", b, feedsB)
}
