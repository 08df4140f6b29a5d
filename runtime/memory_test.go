package runtime

import (
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
)

// TestIntermediatesFreed checks that a Run keeps only a few activations alive
// at a time: each intermediate goes back to the pool after its last reader.
func TestIntermediatesFreed(t *testing.T) {
	m, err := onnx.Load(testenv.TestModel(t, "llama8"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(m.Proto, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const B, T = 4, 128
	ids := make([]int64, B*T)
	x, _ := NewInt64([]int{B, T}, ids)
	for range 2 { // the second run takes the folded path
		if _, err := s.Run(map[string]*Tensor{"input_ids": x}, nil); err != nil {
			t.Fatal(err)
		}
	}
	peak := int(s.lastPeak.Load())
	scores := B * 4 * T * T // one attention score tensor
	hidden := B * T * 128
	logits := B * T * 256
	// The scores and their softmax, the residual stream, a few layer-sized
	// temporaries and the logits.
	if limit := 2*scores + 8*hidden + logits; peak > limit {
		t.Errorf("peak live activations = %d floats, want <= %d", peak, limit)
	}
	t.Logf("peak live activations: %d floats (%.1f score tensors)", peak, float64(peak)/float64(scores))
}
