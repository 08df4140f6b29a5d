package judge

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// CalibRows returns rows [0, n) of the shared calibration tokens
// (../shared/testmodels/tokens/calib_train_16x128.npy) as an int64 [n, T]
// array, the input_ids a judge is fed. It skips or fails as
// testenv.SharedDir does.
func CalibRows(t testing.TB, n int) *npy.Array {
	t.Helper()
	a, err := npy.Read(testenv.TestFile(t, "tokens/calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := a.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 || n > a.Shape[0] {
		t.Fatalf("judge: calibration tokens of shape %v, want [N, T] with N >= %d", a.Shape, n)
	}
	T := a.Shape[1]
	b, err := npy.New([]int{n, T}, ids[:n*T])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// EditedModel writes a copy of the shared model NAME, changed by edit, to a
// temporary file NAME.SUFFIX.onnx and returns its path (for judging models a
// test has broken, or asking a judge for values the model does not output).
func EditedModel(t testing.TB, name, suffix string, edit func(m *pb.ModelProto)) string {
	t.Helper()
	m := testenv.ReadModelProto(t, testenv.TestModel(t, name))
	edit(m)
	out, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("judge: %s edited: %v", name, err)
	}
	p := filepath.Join(t.TempDir(), fmt.Sprintf("%s.%s.onnx", name, suffix))
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// IDs returns token rows (all of one length) as the int64 [N, T] input_ids
// array a judge is fed.
func IDs(t testing.TB, rows [][]int64) *npy.Array {
	t.Helper()
	a, err := npy.FromRows(rows)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
