package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

func compileConstant(c *compileCtx) (kernel, error) {
	if len(c.attrs.m) != 1 {
		return nil, errors.New("want exactly one value attribute")
	}
	var val *Tensor
	for name, a := range c.attrs.m {
		switch name {
		case "value":
			t, err := tensorFromProto(a.GetT())
			if err != nil {
				return nil, fmt.Errorf("value: %w", err)
			}
			val = t
		case "value_float":
			val = ScalarFloat32(a.GetF())
		case "value_floats":
			val = &Tensor{dtype: Float32, shape: []int{len(a.GetFloats())}, data: append([]float32{}, a.GetFloats()...)}
		case "value_int":
			val = ScalarInt64(a.GetI())
		case "value_ints":
			val = &Tensor{dtype: Int64, shape: []int{len(a.GetInts())}, data: append([]int64{}, a.GetInts()...)}
		default:
			return nil, fmt.Errorf("attribute %s is not supported", name)
		}
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{val}, nil
	}, nil
}

func compileConstantOfShape(c *compileCtx) (kernel, error) {
	if err := c.attrs.only("value"); err != nil {
		return nil, err
	}
	val := ScalarFloat32(0)
	if a := c.attrs.m["value"]; a != nil {
		if a.GetType() != pb.AttributeProto_TENSOR {
			return nil, errors.New("attribute value: want TENSOR")
		}
		t, err := tensorFromProto(a.GetT())
		if err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		if t.Len() != 1 {
			return nil, fmt.Errorf("value has %d elements, want 1", t.Len())
		}
		val = t
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		shape, err := shapeArg(in[0])
		if err != nil {
			return nil, err
		}
		if _, err := checkShape(shape); err != nil {
			return nil, err
		}
		return []*Tensor{expandTo(ec, val.reshaped([]int{}), shape)}, nil
	}, nil
}

func compileRange(c *compileCtx) (kernel, error) {
	if err := c.attrs.only(); err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		start, limit, delta := in[0], in[1], in[2]
		if start.dtype != limit.dtype || start.dtype != delta.dtype {
			return nil, fmt.Errorf("inputs of types %v, %v, %v", start.dtype, limit.dtype, delta.dtype)
		}
		for _, t := range in {
			if t.Len() != 1 {
				return nil, fmt.Errorf("inputs must be scalars, got shape %v", t.shape)
			}
		}
		switch start.dtype {
		case Int64, Int32:
			s, _ := start.Int64s()
			l, _ := limit.Int64s()
			d, _ := delta.Int64s()
			if d[0] == 0 {
				return nil, errors.New("delta is 0")
			}
			n := int64(0)
			if d[0] > 0 && l[0] > s[0] {
				n = (l[0] - s[0] + d[0] - 1) / d[0]
			} else if d[0] < 0 && l[0] < s[0] {
				n = (s[0] - l[0] - d[0] - 1) / -d[0]
			}
			if n > math.MaxInt32*64 {
				return nil, fmt.Errorf("range of %d elements", n)
			}
			out := newTensor(start.dtype, []int{int(n)})
			for i := range int(n) {
				v := s[0] + int64(i)*d[0]
				if start.dtype == Int64 {
					out.Int64Data()[i] = v
				} else {
					out.Int32Data()[i] = int32(v)
				}
			}
			return []*Tensor{out}, nil
		case Float32, Float64:
			s, _ := scalarOf(start)
			l, _ := scalarOf(limit)
			d, _ := scalarOf(delta)
			if d == 0 {
				return nil, errors.New("delta is 0")
			}
			nf := math.Max(math.Ceil((l-s)/d), 0)
			if !(nf <= math.MaxInt32*64) {
				return nil, fmt.Errorf("range of %v elements", nf)
			}
			n := int(nf)
			out := newTensor(start.dtype, []int{n})
			for i := range n {
				if start.dtype == Float32 {
					out.Float32Data()[i] = float32(s) + float32(i)*float32(d)
				} else {
					out.Float64Data()[i] = s + float64(i)*d
				}
			}
			return []*Tensor{out}, nil
		}
		return nil, errType("Range", start.dtype)
	}, nil
}

func compileTrilu(c *compileCtx) (kernel, error) {
	upper, err := sole(c.attrs, c.attrs.int, "upper", 1)
	if err != nil {
		return nil, err
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.Rank() < 2 {
			return nil, fmt.Errorf("input of rank %d, want >= 2", x.Rank())
		}
		k := int64(0)
		if len(in) > 1 && in[1] != nil {
			v, err := in[1].Int64s()
			if err != nil || len(v) != 1 {
				return nil, errors.New("k: want one integer")
			}
			k = v[0]
		}
		out := x.Clone()
		rows, cols := x.shape[x.Rank()-2], x.shape[x.Rank()-1]
		mats := numel(x.shape[:x.Rank()-2])
		es := x.dtype.size()
		ob := rawBytes(out)
		for m := range mats {
			for i := range rows {
				row := ob[(m*rows+i)*cols*es : (m*rows+i+1)*cols*es]
				// Keep j-i >= k (upper) or j-i <= k (lower); zero the rest.
				for j := range cols {
					d := int64(j - i)
					if upper != 0 && d < k || upper == 0 && d > k {
						clear(row[j*es : (j+1)*es])
					}
				}
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

func compileScatterND(c *compileCtx) (kernel, error) {
	red, err := sole(c.attrs, c.attrs.str, "reduction", "none")
	if err != nil {
		return nil, err
	}
	switch red {
	case "none", "add", "mul", "max", "min":
	default:
		return nil, fmt.Errorf("reduction %q is not supported", red)
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		data, idx, upd := in[0], in[1], in[2]
		if data.dtype != upd.dtype {
			return nil, fmt.Errorf("data is %v, updates %v", data.dtype, upd.dtype)
		}
		ids, err := idx.Int64s()
		if err != nil {
			return nil, fmt.Errorf("indices: %w", err)
		}
		if idx.Rank() < 1 {
			return nil, errors.New("indices must have rank >= 1")
		}
		q := idx.shape[idx.Rank()-1]
		if q > data.Rank() {
			return nil, fmt.Errorf("index tuples of %d for data of rank %d", q, data.Rank())
		}
		nidx := numel(idx.shape[:idx.Rank()-1])
		block := numel(data.shape[q:])
		wantUpd := append(append([]int{}, idx.shape[:idx.Rank()-1]...), data.shape[q:]...)
		if !sameShape(upd.shape, wantUpd) {
			return nil, fmt.Errorf("updates have shape %v, want %v", upd.shape, wantUpd)
		}
		out := data.Clone()
		ds := stridesOf(data.shape)
		for i := range nidx {
			off := 0
			for j := range q {
				v := ids[i*q+j]
				d := int64(data.shape[j])
				if v < -d || v >= d {
					return nil, fmt.Errorf("index %d out of range for dimension %d of size %d", v, j, d)
				}
				if v < 0 {
					v += d
				}
				off += int(v) * ds[j]
			}
			if err := scatterBlock(out, upd, off, i*block, block, red); err != nil {
				return nil, err
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

func scatterBlock(out, upd *Tensor, off, uoff, n int, red string) error {
	switch d := out.data.(type) {
	case []float32:
		scatterGeneric(d[off:off+n], upd.Float32Data()[uoff:uoff+n], red)
	case []float64:
		scatterGeneric(d[off:off+n], upd.Float64Data()[uoff:uoff+n], red)
	case []int64:
		scatterGeneric(d[off:off+n], upd.Int64Data()[uoff:uoff+n], red)
	case []int32:
		scatterGeneric(d[off:off+n], upd.Int32Data()[uoff:uoff+n], red)
	case []bool:
		if red != "none" {
			return errType("ScatterND reduction", Bool)
		}
		copy(d[off:off+n], upd.BoolData()[uoff:uoff+n])
	default:
		if red != "none" {
			return errType("ScatterND reduction", out.dtype)
		}
		es := out.dtype.size()
		copy(rawBytes(out)[off*es:(off+n)*es], rawBytes(upd)[uoff*es:(uoff+n)*es])
	}
	return nil
}

func scatterGeneric[T numeric](dst, src []T, red string) {
	switch red {
	case "none":
		copy(dst, src)
	case "add":
		for i, v := range src {
			dst[i] += v
		}
	case "mul":
		for i, v := range src {
			dst[i] *= v
		}
	case "max":
		for i, v := range src {
			dst[i] = max(dst[i], v)
		}
	case "min":
		for i, v := range src {
			dst[i] = min(dst[i], v)
		}
	}
}
