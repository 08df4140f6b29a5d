package onnxgo

import (
	"math"
	"reflect"
	"testing"

	onnxgo "github.com/owulveryck/onnx-go"
	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/onnx"
	_ "github.com/onnxslm/onnxslm/onnx/internal/onnxgo/noconflict" // before onnx-go's init
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestAgainstOnnxGo decodes float32 and int64 tensors with
// github.com/owulveryck/onnx-go, an independent implementation (its own
// protobuf types and decoding into gorgonia tensors), as a second opinion.
func TestAgainstOnnxGo(t *testing.T) {
	tensors := []*pb.TensorProto{
		onnx.NewFloat32("raw f32", []int64{2, 3}, []float32{1, -2, 0.5, float32(math.Inf(1)), 3e-41, -0}),
		onnx.NewInt64("raw i64", []int64{3}, []int64{1, -1, math.MinInt64}),
		{Name: proto.String("typed f32"), DataType: proto.Int32(int32(pb.TensorProto_FLOAT)), Dims: []int64{2}, FloatData: []float32{7, -8}},
		{Name: proto.String("typed i64"), DataType: proto.Int32(int32(pb.TensorProto_INT64)), Dims: []int64{1, 2}, Int64Data: []int64{math.MaxInt64, -3}},
	}
	// Real weights: float32 initializers of the built-in model.
	b, err := builtin.Model("builtin:llama8")
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.LoadBytes(b, "builtin:llama8")
	if err != nil {
		t.Fatal(err)
	}
	nf, ni := 0, 0
	for _, init := range m.Proto.Graph.Initializer {
		switch {
		case len(init.Dims) == 0:
		case init.GetDataType() == int32(pb.TensorProto_FLOAT) && nf < 20:
			tensors = append(tensors, init)
			nf++
		case init.GetDataType() == int32(pb.TensorProto_INT64) && ni < 20:
			tensors = append(tensors, init)
			ni++
		}
	}
	// int64 tensors live in Constant nodes in torch exports.
	for _, n := range m.Proto.Graph.Node {
		if n.GetOpType() != "Constant" || ni >= 40 {
			continue
		}
		for _, a := range n.Attribute {
			if v := a.GetT(); v != nil && v.GetDataType() == int32(pb.TensorProto_INT64) && len(v.Dims) > 0 {
				tensors = append(tensors, v)
				ni++
			}
		}
	}
	if nf == 0 || ni == 0 {
		t.Fatalf("builtin:llama8 gave %d float32 initializers and %d int64 constants, want some of each", nf, ni)
	}
	for _, p := range tensors {
		ours, err := onnx.DecodeTensor(p)
		if err != nil {
			t.Fatalf("DecodeTensor(%q): %v", p.GetName(), err)
		}
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := onnxgo.NewTensor(b)
		if err != nil {
			t.Fatalf("onnx-go NewTensor(%q): %v", p.GetName(), err)
		}
		shape := make([]int64, len(theirs.Shape()))
		for i, d := range theirs.Shape() {
			shape[i] = int64(d)
		}
		if !reflect.DeepEqual(shape, ours.Dims) {
			t.Errorf("%q: onnx-go shape %v, ours %v", p.GetName(), shape, ours.Dims)
		}
		switch want := theirs.Data().(type) {
		case []float32:
			got, ok := ours.Data.([]float32)
			if !ok || len(got) != len(want) {
				t.Errorf("%q: got %T len %d, onnx-go []float32 len %d", p.GetName(), ours.Data, len(got), len(want))
				continue
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Errorf("%q[%d]: got %v, onnx-go %v", p.GetName(), i, got[i], want[i])
					break
				}
			}
			f, err := onnx.Float32s(p)
			if err != nil || !reflect.DeepEqual(bitsOf(f), bitsOf(want)) {
				t.Errorf("%q: Float32s disagrees with onnx-go (%v)", p.GetName(), err)
			}
		case []int64:
			if !reflect.DeepEqual(ours.Data, want) {
				t.Errorf("%q: got %v, onnx-go %v", p.GetName(), ours.Data, want)
			}
		default:
			t.Errorf("%q: onnx-go gave %T", p.GetName(), want)
		}
	}
	t.Logf("checked %d tensors (%d float32 initializers and %d int64 constants of llama8)", len(tensors), nf, ni)
}

func bitsOf(v []float32) []uint32 {
	b := make([]uint32, len(v))
	for i, x := range v {
		b[i] = math.Float32bits(x)
	}
	return b
}
