package runtime

import (
	"sync"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Constants shares decoded initializers between the sessions of models that
// share a base model's tensors, as the candidate models of a pruning search
// share the original's untouched weights (package rewrite never copies them).
// Without it every session decodes the weights it uses again: free for
// float32 data, which aliases the model, but a float16 model's weights would
// be widened to float32 once per candidate, in time and in garbage. Only the
// base model's own tensors are kept, so a candidate's new tensors (its merged
// weights) are never held. Safe for concurrent use.
type Constants struct {
	mu     sync.Mutex
	base   map[*pb.TensorProto]bool
	tensor map[*pb.TensorProto]*Tensor
}

// NewConstants returns a cache for the initializers of base (main graph).
func NewConstants(base *pb.ModelProto) *Constants {
	c := &Constants{base: map[*pb.TensorProto]bool{}, tensor: map[*pb.TensorProto]*Tensor{}}
	for _, t := range base.GetGraph().GetInitializer() {
		c.base[t] = true
	}
	return c
}

// decode returns tp decoded, from the cache when tp is one of the base
// model's tensors.
func (c *Constants) decode(tp *pb.TensorProto) (*Tensor, error) {
	if c == nil || !c.base[tp] {
		return tensorFromProto(tp)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tensor[tp]; ok {
		return t, nil
	}
	t, err := tensorFromProto(tp)
	if err != nil {
		return nil, err
	}
	c.tensor[tp] = t
	return t, nil
}
