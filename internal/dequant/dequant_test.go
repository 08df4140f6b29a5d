package dequant

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestMatMulNBits: on a model whose MatMuls are quantized to 4 and 8 bits
// (symmetric and with zero points), every MatMulNBits becomes a MatMul whose
// weight is within one quantization step of the float weight it stands for,
// and the input model is left as it was.
func TestMatMulNBits(t *testing.T) {
	cfg := modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 32, Heads: 4, FFN: 64, Vocab: 64, Seed: 5, TransposedWeights: true}
	for _, c := range []struct {
		bits int
		asym bool
	}{{4, false}, {4, true}, {8, true}} {
		float, err := modelgen.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		q := proto.Clone(float).(*pb.ModelProto)
		n, err := modelgen.QuantizeMatMuls(q, c.bits, 16, c.asym, 0)
		if err != nil || n == 0 {
			t.Fatalf("%d bits: %d MatMuls quantized, %v", c.bits, n, err)
		}
		before := proto.Clone(q)
		d, err := MatMulNBits(q)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(before, q) {
			t.Errorf("%d bits: the input model was modified", c.bits)
		}
		inits := map[string]*pb.TensorProto{}
		for _, x := range append(float.Graph.Initializer, d.Graph.Initializer...) {
			inits[x.GetName()] = x
		}
		floatW := map[string]string{} // MatMul output → float weight name
		for _, nd := range float.Graph.Node {
			if nd.GetOpType() == "MatMul" {
				floatW[nd.Output[0]] = nd.Input[1]
			}
		}
		got := 0
		for _, nd := range d.Graph.Node {
			if nd.GetOpType() == "MatMulNBits" {
				t.Fatalf("%d bits: %s left as MatMulNBits", c.bits, nd.GetName())
			}
			want, ok := floatW[nd.Output[0]]
			if nd.GetOpType() != "MatMul" || !ok || want == nd.Input[1] {
				continue
			}
			got++
			w, err := onnx.Float32s(inits[nd.Input[1]])
			if err != nil {
				t.Fatal(err)
			}
			f, err := onnx.Float32s(inits[want])
			if err != nil {
				t.Fatal(err)
			}
			maxAbs, maxErr := stats.MaxAbs(f), stats.MaxAbsDiff(w, f)
			if step := 2 * maxAbs / float64(int(1)<<c.bits-1); len(w) != len(f) || maxErr > step {
				t.Errorf("%d bits, %s: %d values for %d, largest error %.3g > one step %.3g", c.bits, nd.GetName(), len(w), len(f), maxErr, step)
			}
		}
		if got != n {
			t.Errorf("%d bits: %d dequantized MatMuls, want %d", c.bits, got, n)
		}
	}
}
