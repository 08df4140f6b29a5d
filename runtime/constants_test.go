package runtime

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// TestConstantsShareTheBaseModelsWeights: two sessions given one Constants
// decode each float16 weight of the base model once, a tensor the base model
// does not have is not kept, and the outputs equal a session's without it.
func TestConstantsShareTheBaseModelsWeights(t *testing.T) {
	base, err := modelgen.Build(modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 16, Heads: 2, FFN: 24, Float16: true, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	// other shares every initializer with base except the first, replaced by a
	// new tensor with the same values (as a candidate's merged weight is).
	other := proto.Clone(base).(*pb.ModelProto)
	other.Graph.Initializer = append([]*pb.TensorProto(nil), base.Graph.Initializer...)
	fresh := proto.Clone(base.Graph.Initializer[0]).(*pb.TensorProto)
	other.Graph.Initializer[0] = fresh

	c := NewConstants(base)
	ids, err := FromSlice([]int{1, 5}, []int64{1, 2, 3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	run := func(m *pb.ModelProto, opts Options) (*Session, []float32) {
		s, err := New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Run(map[string]*Tensor{"input_ids": ids}, []string{"logits"})
		if err != nil {
			t.Fatal(err)
		}
		return s, out["logits"].Float32Data()
	}
	s1, got1 := run(base, Options{Constants: c})
	s2, got2 := run(other, Options{Constants: c})
	_, want := run(base, Options{})
	for i := range want {
		if got1[i] != want[i] || got2[i] != want[i] {
			t.Fatalf("logit %d: %v and %v with shared constants, %v without", i, got1[i], got2[i], want[i])
		}
	}
	shared, decoded, sawFresh := 0, 0, false
	for i, tp := range s2.inits {
		t2, ok := s2.consts[i]
		if !ok {
			continue
		}
		decoded++
		t1 := s1.consts[s1.index[tp.GetName()]]
		if tp == fresh {
			sawFresh = true
			if t1 == t2 {
				t.Errorf("the new tensor %q was served from the base model's cache", tp.GetName())
			}
			if _, kept := c.tensor[fresh]; kept {
				t.Errorf("the cache kept a tensor the base model does not have")
			}
			continue
		}
		if t1 != t2 {
			t.Errorf("initializer %q decoded twice", tp.GetName())
		}
		shared++
	}
	if shared == 0 || decoded < 2 || !sawFresh {
		t.Errorf("%d initializers decoded, %d shared, new tensor decoded %v: the test did not exercise the cache", decoded, shared, sawFresh)
	}
}
