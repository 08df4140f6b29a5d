package onnx

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestScaleMemory measures time and peak RSS of `onnxslm inspect` and
// `onnxslm convert` on a model with ~1.5 GB of external data, shaped like the
// 374M-parameter Llama of ../shared/tools/biglm (24 layers, d=1024, ffn 2816,
// vocab 32000). It is not part of the normal suite: it runs only when
// ONNXSLM_SCALE_DIR names a folder with ~6 GB free, e.g.
//
//	ONNXSLM_SCALE_DIR=/tmp/scale go test ./onnx -run ScaleMemory -v -timeout 30m
func TestScaleMemory(t *testing.T) {
	dir := testenv.Getenv(t, "ONNXSLM_SCALE_DIR", "set ONNXSLM_SCALE_DIR to a folder with ~6 GB free to run the 1.5 GB memory check")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "onnxslm")
	build := exec.Command("go", "build", "-o", bin, "./cmd/onnxslm")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	model := filepath.Join(dir, "big.onnx")
	weights := writeBigModel(t, model)
	t.Logf("model: %s + %s.data, %d bytes of weights (%.2f GB)", model, model, weights, float64(weights)/1e9)

	runs := []struct {
		name string
		args []string
	}{
		{"inspect (external data)", []string{"inspect", model}},
		{"convert external -> external", []string{"convert", "--external-data", model, filepath.Join(dir, "ext.onnx")}},
		{"convert external -> inline", []string{"convert", "--inline", model, filepath.Join(dir, "inline.onnx")}},
		{"inspect (inline)", []string{"inspect", filepath.Join(dir, "inline.onnx")}},
		{"convert inline -> external", []string{"convert", "--external-data", filepath.Join(dir, "inline.onnx"), filepath.Join(dir, "ext2.onnx")}},
	}
	for _, r := range runs {
		cmd := exec.Command(bin, r.args...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", r.name, err, out)
		}
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
		t.Logf("%-30s %6.1f s  peak RSS %5.2f GB = %.2f × weights", r.name, time.Since(start).Seconds(), float64(rss)/1e9, float64(rss)/float64(weights))
		if float64(rss) > 2*float64(weights) {
			t.Errorf("%s: peak RSS %d bytes is over 2× the weights (%d)", r.name, rss, weights)
		}
	}
	a, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(filepath.Join(dir, "ext2.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(a.Proto, b.Proto) {
		t.Errorf("model changed through external -> inline -> external")
	}
}

// writeBigModel writes a Llama-shaped set of float32 initializers as external
// data, packed without alignment (unlike Save), one tensor at a time, and
// returns the bytes of weights.
func writeBigModel(t *testing.T, path string) int64 {
	const layers, d, ffn, vocab = 24, 1024, 2816, 32000
	type spec struct {
		name string
		dims []int64
	}
	specs := []spec{{"model.embed_tokens.weight", []int64{vocab, d}}}
	for l := range layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		specs = append(specs,
			spec{p + "input_layernorm.weight", []int64{d}},
			spec{p + "q_proj", []int64{d, d}}, spec{p + "k_proj", []int64{d, d}},
			spec{p + "v_proj", []int64{d, d}}, spec{p + "o_proj", []int64{d, d}},
			spec{p + "post_attention_layernorm.weight", []int64{d}},
			spec{p + "gate_proj", []int64{d, ffn}}, spec{p + "up_proj", []int64{d, ffn}},
			spec{p + "down_proj", []int64{ffn, d}})
	}
	specs = append(specs, spec{"model.norm.weight", []int64{d}}, spec{"lm_head", []int64{d, vocab}})

	f, err := os.Create(path + ".data")
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 4<<20)
	g := &pb.GraphProto{Name: proto.String("big")}
	var off int64
	var x uint32 = 1
	buf := make([]byte, 4)
	for i, s := range specs {
		n, _ := NumElements(s.dims)
		for range n {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			binary.LittleEndian.PutUint32(buf, math.Float32bits(float32(int32(x))/(1<<31)*0.02))
			w.Write(buf)
		}
		tp := &pb.TensorProto{Name: proto.String(s.name), DataType: proto.Int32(int32(pb.TensorProto_FLOAT)), Dims: s.dims}
		setExternal(tp, filepath.Base(path)+".data", strconv.FormatInt(off, 10), strconv.FormatInt(4*n, 10))
		off += 4 * n
		g.Initializer = append(g.Initializer, tp)
		g.Node = append(g.Node, &pb.NodeProto{Name: proto.String(fmt.Sprintf("n%d", i)), OpType: proto.String("Identity"),
			Input: []string{s.name}, Output: []string{s.name + "_out"}})
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g.Initializer = append(g.Initializer, NewInt64("shape", []int64{2}, []int64{-1, d}))
	g.Output = []*pb.ValueInfoProto{TensorInfo("lm_head_out", pb.TensorProto_FLOAT, d, vocab)}
	m := &pb.ModelProto{IrVersion: proto.Int64(8), ProducerName: proto.String("onnxslm scale test"),
		OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(17)}}, Graph: g}
	writeProto(t, path, m)
	return off
}
