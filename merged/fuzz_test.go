package merged_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// tinyPair is a toy decoder pair (an embedding as logits, its rows as the
// present) small enough for the fuzzer to mutate.
func tinyPair(t testing.TB) (*pb.ModelProto, *pb.ModelProto) {
	vi := func(name string, et pb.TensorProto_DataType, dims ...string) *pb.ValueInfoProto {
		var ds []*pb.TensorShapeProto_Dimension
		for _, d := range dims {
			ds = append(ds, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		}
		return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
			TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(et)), Shape: &pb.TensorShapeProto{Dim: ds}}}}}
	}
	w, err := onnx.EncodeTensor("w", &onnx.Tensor{DType: pb.TensorProto_FLOAT, Dims: []int64{4, 2}, Data: []float32{1, 2, 3, 4, 5, 6, 7, 8}})
	if err != nil {
		t.Fatal(err)
	}
	node := func(op string, in []string, out string) *pb.NodeProto {
		return &pb.NodeProto{OpType: proto.String(op), Input: in, Output: []string{out}}
	}
	model := func(past bool) *pb.ModelProto {
		g := &pb.GraphProto{Name: proto.String("d"), Initializer: []*pb.TensorProto{w},
			Input:  []*pb.ValueInfoProto{vi("input_ids", pb.TensorProto_INT64, "b", "sequence_length"), vi("attention_mask", pb.TensorProto_INT64, "b", "sequence_length")},
			Output: []*pb.ValueInfoProto{vi("logits", pb.TensorProto_FLOAT, "b", "s", "v"), vi("present.0.key", pb.TensorProto_FLOAT, "b", "t", "v")},
			Node:   []*pb.NodeProto{node("Gather", []string{"w", "input_ids"}, "logits")}}
		if past {
			g.Input = append(g.Input, vi("past_key_values.0.key", pb.TensorProto_FLOAT, "b", "p", "v"))
			g.Node = append(g.Node, &pb.NodeProto{OpType: proto.String("Concat"), Input: []string{"past_key_values.0.key", "logits"}, Output: []string{"present.0.key"},
				Attribute: []*pb.AttributeProto{onnx.AttrInt("axis", 1)}})
		} else {
			g.Node = append(g.Node, node("Identity", []string{"logits"}, "present.0.key"))
		}
		return &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(17)}}, Graph: g}
	}
	return model(false), model(true)
}

// FuzzSplit feeds mutated merged decoders (untrusted files) to Split, Join
// and the runtime's If: none may panic, and errors are not empty.
func FuzzSplit(f *testing.F) {
	m, err := merged.Join(joinArgs(f))
	if err != nil {
		f.Fatal(err)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := onnx.LoadBytes(b, "fuzz.onnx")
		if err != nil {
			return
		}
		if s, err := runtime.New(m.Proto, runtime.Options{}); err != nil && err.Error() == "" {
			t.Error("runtime.New: empty error")
		} else if err == nil {
			ids, _ := runtime.FromSlice([]int{1, 2}, []int64{1, 3})
			cond, _ := runtime.FromSlice([]int{1}, []bool{false})
			past, _ := runtime.FromSlice([]int{1, 0, 2}, []float32{})
			if _, err := s.Run(map[string]*runtime.Tensor{"input_ids": ids, "attention_mask": ids, "past_key_values.0.key": past, merged.CondInput: cond}, nil); err != nil && err.Error() == "" {
				t.Error("Run: empty error")
			}
		}
		p, err := merged.Split(m.Proto)
		if err != nil {
			return
		}
		if _, err := merged.Join(p.NoPast, p.WithPast, merged.JoinOptions{}); err != nil && err.Error() == "" {
			t.Error("Join: empty error")
		}
	})
}

func joinArgs(t testing.TB) (*pb.ModelProto, *pb.ModelProto, merged.JoinOptions) {
	a, b := tinyPair(t)
	return a, b, merged.JoinOptions{Suffix: "merged"}
}
