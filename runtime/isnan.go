package runtime

import "math"

// IsNaN and IsInf: float inputs to a Bool tensor of the same shape.
// torchlib's scaled_dot_product_attention with a Boolean mask (opset 18,
// what torch.onnx.export(dynamo=True) writes) zeroes fully masked softmax rows
// with Where(IsNaN(w), 0, w).

func compileIsNaN(c *compileCtx) (kernel, error) {
	return floatPredicate("IsNaN", func(v float64) bool { return v != v }), c.attrs.only()
}

func compileIsInf(c *compileCtx) (kernel, error) {
	r := c.read("detect_negative", "detect_positive")
	neg, pos := r.int("detect_negative", 1), r.int("detect_positive", 1)
	if r.err != nil {
		return nil, r.err
	}
	return floatPredicate("IsInf", func(v float64) bool {
		return pos != 0 && math.IsInf(v, 1) || neg != 0 && math.IsInf(v, -1)
	}), nil
}

// floatPredicate applies f to every element of a float32 or float64 tensor.
func floatPredicate(op string, f func(float64) bool) kernel {
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		out := newTensor(Bool, append([]int{}, x.shape...))
		o := out.BoolData()
		switch x.dtype {
		case Float32:
			for i, v := range x.Float32Data() {
				o[i] = f(float64(v))
			}
		case Float64:
			for i, v := range x.Float64Data() {
				o[i] = f(v)
			}
		default:
			return nil, errType(op, x.dtype)
		}
		return []*Tensor{out}, nil
	}
}
