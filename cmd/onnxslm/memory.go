package main

import (
	"os"
	"runtime/debug"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// limitMemory sets a soft memory limit for the Go heap from the model's size,
// unless the user set GOMEMLIMIT. Go's collector otherwise lets the heap grow
// to twice what is live before collecting, and with a 1.5 GB model live that
// is 3 GB: the search's short-lived fused weights of candidate models would
// then stay resident. The limit is 1.3× the weights' working size plus 256 MiB
// for activations; it is soft, so a run that truly needs more still gets it.
func limitMemory(m *pb.ModelProto) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	w := workingBytes(m)
	debug.SetMemoryLimit(w + w*3/10 + 256<<20)
}

// workingBytes is what the weights occupy while the runtime computes with
// them: float32 data is used in place, but float16 and bfloat16 weights are
// widened to float32 and their 2-byte originals stay in the model (3× their
// bytes in the file).
func workingBytes(m *pb.ModelProto) int64 {
	var total int64
	for _, t := range m.GetGraph().GetInitializer() {
		n, err := onnx.NumElements(t.GetDims())
		if err != nil {
			continue
		}
		switch pb.TensorProto_DataType(t.GetDataType()) {
		case pb.TensorProto_FLOAT:
			total += 4 * n
		case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
			total += 6 * n
		case pb.TensorProto_DOUBLE:
			total += 8 * n
		}
	}
	return total
}
