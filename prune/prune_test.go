package prune

import (
	"path/filepath"
	"testing"

	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/tokens"
)

type fixture struct {
	model *pb.ModelProto
	calib [][]int64
	ref   *reference.SLM
	dir   string
}

func load(t *testing.T, name string) fixture {
	t.Helper()
	dir := filepath.Join(testenv.SharedDir(t), "testmodels")
	m, err := onnx.Load(filepath.Join(dir, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cal, err := tokens.Read(filepath.Join(dir, "tokens", "calib_train_16x128.npy"))
	if err != nil {
		t.Fatal(err)
	}
	return fixture{m.Proto, cal.Rows, testenv.SLM(t, name), dir}
}
