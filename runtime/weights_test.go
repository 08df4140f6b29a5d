package runtime_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// TestWeightBytes: float32, float16 and bfloat16 weights count their stored
// bytes (the runtime computes with them in place), integers not at all.
func TestWeightBytes(t *testing.T) {
	init := func(dt pb.TensorProto_DataType, dims ...int64) *pb.TensorProto {
		return &pb.TensorProto{DataType: proto.Int32(int32(dt)), Dims: dims}
	}
	tests := []struct {
		name  string
		inits []*pb.TensorProto
		want  int64
	}{
		{"float32", []*pb.TensorProto{init(pb.TensorProto_FLOAT, 2, 3)}, 24},
		{"float16", []*pb.TensorProto{init(pb.TensorProto_FLOAT16, 4)}, 8},
		{"bfloat16 and int64", []*pb.TensorProto{init(pb.TensorProto_BFLOAT16, 2), init(pb.TensorProto_INT64, 100)}, 4},
		{"bad dims skipped", []*pb.TensorProto{init(pb.TensorProto_FLOAT, -1, 3), init(pb.TensorProto_FLOAT, 1)}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &pb.ModelProto{Graph: &pb.GraphProto{Initializer: tc.inits}}
			if got := runtime.WeightBytes(m); got != tc.want {
				t.Errorf("WeightBytes = %d, want %d", got, tc.want)
			}
		})
	}
}
