package main

import (
	"os"
	"runtime/debug"

	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// limitMemory sets a soft memory limit for the Go heap from the model's size,
// unless the user set GOMEMLIMIT. Go's collector otherwise lets the heap grow
// to twice what is live before collecting, and with a 1.5 GB model live that
// is 3 GB: the search's short-lived fused weights of candidate models would
// then stay resident. The limit is 1.3× what the weights occupy while the
// runtime computes (runtime.WeightBytes: their stored bytes, float16 and
// bfloat16 included, since the runtime keeps those in 2 bytes and widens them
// only while it packs matmul panels) plus 256 MiB for activations; it is
// soft, so a run that truly needs more still gets it.
func limitMemory(m *pb.ModelProto) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	w := runtime.WeightBytes(m)
	debug.SetMemoryLimit(w + w*3/10 + 256<<20)
}
