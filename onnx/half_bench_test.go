package onnx_test

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// benchHalf is a 2048×5632 weight (a 1.26 B Llama's MLP projection) of
// dtype dt with random normal values, and those values as float32.
func benchHalf(b *testing.B, dt pb.TensorProto_DataType) (*pb.TensorProto, []float32) {
	b.Helper()
	dims := []int64{2048, 5632}
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, dims[0]*dims[1])
	for i := range v {
		v[i] = float32(r.NormFloat64() * 0.02)
	}
	like := &pb.TensorProto{DataType: new(int32(dt)), Dims: dims}
	t, err := onnx.EncodeLike("w", like, v)
	if err != nil {
		b.Fatal(err)
	}
	return t, v
}

// BenchmarkFloat32s widens a float16 and a bfloat16 2048×5632 weight, as the
// prune's merges do for every candidate; ns/op divided by 11,534,336 is the
// cost per element.
func BenchmarkFloat32s(b *testing.B) {
	benchPerElement(b, 2, func(t *pb.TensorProto, _ []float32) error {
		_, err := onnx.Float32s(t)
		return err
	})
}

// BenchmarkEncodeLike narrows a 2048×5632 float32 weight to float16 and
// bfloat16, as the prune does for every merged weight it writes.
func BenchmarkEncodeLike(b *testing.B) {
	benchPerElement(b, 4, func(like *pb.TensorProto, v []float32) error {
		_, err := onnx.EncodeLike("w", like, v)
		return err
	})
}

// benchPerElement runs op on benchHalf's weight in float16 and in bfloat16,
// reporting CPU nanoseconds per element (bytes: the bytes an element moves).
func benchPerElement(b *testing.B, bytes int64, op func(t *pb.TensorProto, v []float32) error) {
	for _, dt := range []pb.TensorProto_DataType{pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16} {
		b.Run(onnx.DTypeName(dt), func(b *testing.B) {
			t, v := benchHalf(b, dt)
			b.SetBytes(int64(len(v)) * bytes)
			runtime.GC() // the set-up's garbage is not the loop's cost
			b.ResetTimer()
			c0 := cpuNanos()
			for b.Loop() {
				if err := op(t, v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuNanos()-c0)/float64(b.N)/float64(len(v)), "cpu-ns/elem")
		})
	}
}
