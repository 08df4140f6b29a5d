package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

func compileCastLike(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("saturate"); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		t, err := castTo(in[0], in[1].dtype, pb.TensorProto_UNDEFINED)
		return []*Tensor{t}, err
	}, nil
}

func compileClip(c *compileCtx) (kernel, error) {
	// Opset < 11: bounds are attributes.
	r := c.read("min", "max")
	lo, hi := r.float("min", float32(math.Inf(-1))), r.float("max", float32(math.Inf(1)))
	if r.err != nil {
		return nil, r.err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		l, h := float64(lo), float64(hi)
		if len(in) > 1 && in[1] != nil {
			v, err := scalarOf(in[1])
			if err != nil {
				return nil, fmt.Errorf("min: %w", err)
			}
			l = v
		}
		if len(in) > 2 && in[2] != nil {
			v, err := scalarOf(in[2])
			if err != nil {
				return nil, fmt.Errorf("max: %w", err)
			}
			h = v
		}
		out := ec.outLike(0, x.dtype, append([]int{}, x.shape...))
		switch x.dtype {
		case Float32:
			clipGeneric(x.Float32Data(), out.Float32Data(), float32(l), float32(h))
		case Float64:
			clipGeneric(x.Float64Data(), out.Float64Data(), l, h)
		case Int64:
			clipGeneric(x.Int64Data(), out.Int64Data(), clampInt64(l), clampInt64(h))
		case Int32:
			clipGeneric(x.Int32Data(), out.Int32Data(), int32(max(l, math.MinInt32)), int32(min(h, math.MaxInt32)))
		default:
			return nil, errType("Clip", x.dtype)
		}
		return []*Tensor{out}, nil
	}, nil
}

func clampInt64(v float64) int64 {
	switch {
	case v <= math.MinInt64:
		return math.MinInt64
	case v >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(v)
}

func clipGeneric[T numeric](x, out []T, lo, hi T) {
	for i, v := range x {
		if v < lo {
			v = lo
		}
		if v > hi {
			v = hi
		}
		out[i] = v
	}
}

func compileCast(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("to", "saturate", "round_mode"); err != nil {
		return nil, err
	}
	to, err := c.attrs.int("to", 0)
	if err != nil {
		return nil, err
	}
	if !c.attrs.has("to") {
		return nil, errors.New("attribute to is required")
	}
	target := pb.TensorProto_DataType(to)
	dt, ok := fromONNX(target)
	if !ok {
		return nil, fmt.Errorf("cast to %s is not supported", onnx.DTypeName(target))
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.isHalf() {
			// A weight kept in 16 bits already stands for its float32 values
			// (and holds float16 / bfloat16 ones): the cast is a view.
			if target == pb.TensorProto_FLOAT || target == pb.TensorProto_FLOAT16 && x.dtype == Float16 ||
				target == pb.TensorProto_BFLOAT16 && x.dtype == BFloat16 {
				return []*Tensor{x}, nil
			}
			x = x.widened()
		}
		t, err := castTo(x, dt, target)
		return []*Tensor{t}, err
	}, nil
}

// castTo converts t to dt; onnxType FLOAT16/BFLOAT16 rounds float32 results to
// that precision (the runtime keeps them in float32).
func castTo(t *Tensor, dt DType, onnxType pb.TensorProto_DataType) (*Tensor, error) {
	if t.dtype == dt && onnxType != pb.TensorProto_FLOAT16 && onnxType != pb.TensorProto_BFLOAT16 {
		return t.Clone(), nil
	}
	out := newTensor(dt, append([]int{}, t.shape...))
	var err error
	switch src := t.data.(type) {
	case []float32:
		err = castFrom(src, out)
	case []float64:
		err = castFrom(src, out)
	case []int64:
		err = castFrom(src, out)
	case []int32:
		err = castFrom(src, out)
	case []int8:
		err = castFrom(src, out)
	case []uint8:
		err = castFrom(src, out)
	case []bool:
		switch dst := out.data.(type) {
		case []bool:
			copy(dst, src)
		default:
			ones := newTensor(Uint8, []int{len(src)})
			u := ones.data.([]uint8)
			for i, b := range src {
				if b {
					u[i] = 1
				}
			}
			err = castFrom(u, out)
		}
	default:
		err = errType("Cast", t.dtype)
	}
	if err != nil {
		return nil, err
	}
	switch onnxType {
	case pb.TensorProto_FLOAT16:
		for i, v := range out.Float32Data() {
			out.Float32Data()[i] = onnx.Float16ToFloat32(onnx.Float32ToFloat16(v))
		}
	case pb.TensorProto_BFLOAT16:
		for i, v := range out.Float32Data() {
			out.Float32Data()[i] = onnx.BFloat16ToFloat32(onnx.Float32ToBFloat16(v))
		}
	}
	return out, nil
}

func castFrom[S numeric](src []S, out *Tensor) error {
	switch dst := out.data.(type) {
	case []float32:
		convertSlice(src, dst)
	case []float64:
		convertSlice(src, dst)
	case []int64:
		convertSlice(src, dst)
	case []int32:
		convertSlice(src, dst)
	case []int8:
		convertSlice(src, dst)
	case []uint8:
		convertSlice(src, dst)
	case []bool:
		for i, v := range src {
			dst[i] = v != 0
		}
	default:
		return errType("Cast", out.dtype)
	}
	return nil
}

func convertSlice[S, D numeric](src []S, dst []D) {
	for i, v := range src {
		dst[i] = D(v)
	}
}
