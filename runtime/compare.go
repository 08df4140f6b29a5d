package runtime

import "fmt"

// compileCompare compiles a comparison (Equal, Less, ...) to a Bool tensor.
func compileCompare(op cmpOp) func(c *compileCtx) (kernel, error) {
	return compileBinaryOp(op, compare)
}

// compileLogic compiles And, Or or Xor of Bool tensors.
func compileLogic(op logicOp) func(c *compileCtx) (kernel, error) {
	return compileBinaryOp(op, logic)
}

// compileBinaryOp compiles an op of two inputs, one output and no
// attributes whose kernel is run(ec, op, a, b).
func compileBinaryOp[Op any](op Op, run func(*execCtx, Op, *Tensor, *Tensor) (*Tensor, error)) func(c *compileCtx) (kernel, error) {
	return func(c *compileCtx) (kernel, error) {
		return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
			t, err := run(ec, op, in[0], in[1])
			return []*Tensor{t}, err
		}, c.attrs.only()
	}
}

func compileNot(c *compileCtx) (kernel, error) {
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0].BoolData()
		if in[0].dtype != Bool {
			return nil, errType("Not", in[0].dtype)
		}
		out := newTensor(Bool, append([]int{}, in[0].shape...))
		o := out.BoolData()
		for i, v := range x {
			o[i] = !v
		}
		return []*Tensor{out}, nil
	}, c.attrs.only()
}

func compileWhere(c *compileCtx) (kernel, error) {
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		t, err := where(ec, in[0], in[1], in[2])
		return []*Tensor{t}, err
	}, c.attrs.only()
}

type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

func compare(ec *execCtx, op cmpOp, a, b *Tensor) (*Tensor, error) {
	if a.dtype != b.dtype {
		return nil, fmt.Errorf("comparing %v with %v", a.dtype, b.dtype)
	}
	shape, err := broadcastShape(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	out := newTensor(Bool, shape)
	o := out.BoolData()
	switch a.dtype {
	case Float32:
		compareGeneric(op, a.Float32Data(), b.Float32Data(), o, a.shape, b.shape, shape)
	case Float64:
		compareGeneric(op, a.Float64Data(), b.Float64Data(), o, a.shape, b.shape, shape)
	case Int64:
		compareGeneric(op, a.Int64Data(), b.Int64Data(), o, a.shape, b.shape, shape)
	case Int32:
		compareGeneric(op, a.Int32Data(), b.Int32Data(), o, a.shape, b.shape, shape)
	case Int8:
		compareGeneric(op, a.data.([]int8), b.data.([]int8), o, a.shape, b.shape, shape)
	case Uint8:
		compareGeneric(op, a.data.([]uint8), b.data.([]uint8), o, a.shape, b.shape, shape)
	case Bool:
		if op != cmpEq {
			return nil, errType("ordering comparison", Bool)
		}
		ad, bd := a.BoolData(), b.BoolData()
		bc := newBcast(shape, a.shape, b.shape)
		sa, sb := bc.istride[0], bc.istride[1]
		bc.run(0, bc.rows(), func(off []int, oo int) {
			for i := range bc.inner {
				o[oo+i] = ad[off[0]+i*sa] == bd[off[1]+i*sb]
			}
		})
	default:
		return nil, errType("comparison", a.dtype)
	}
	return out, nil
}

func compareGeneric[T numeric](op cmpOp, a, b []T, out []bool, as, bs, os []int) {
	bc := newBcast(os, as, bs)
	sa, sb := bc.istride[0], bc.istride[1]
	inner := bc.inner
	bc.run(0, bc.rows(), func(off []int, o int) {
		x, y := off[0], off[1]
		dst := out[o : o+inner]
		switch op {
		case cmpEq:
			for i := range dst {
				dst[i] = a[x+i*sa] == b[y+i*sb]
			}
		case cmpLt:
			for i := range dst {
				dst[i] = a[x+i*sa] < b[y+i*sb]
			}
		case cmpLe:
			for i := range dst {
				dst[i] = a[x+i*sa] <= b[y+i*sb]
			}
		case cmpGt:
			for i := range dst {
				dst[i] = a[x+i*sa] > b[y+i*sb]
			}
		case cmpGe:
			for i := range dst {
				dst[i] = a[x+i*sa] >= b[y+i*sb]
			}
		}
	})
}

type logicOp uint8

const (
	logAnd logicOp = iota
	logOr
	logXor
)

func logic(ec *execCtx, op logicOp, a, b *Tensor) (*Tensor, error) {
	if a.dtype != Bool || b.dtype != Bool {
		return nil, fmt.Errorf("logical op of %v and %v, want bool", a.dtype, b.dtype)
	}
	shape, err := broadcastShape(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	out := newTensor(Bool, shape)
	o, ad, bd := out.BoolData(), a.BoolData(), b.BoolData()
	bc := newBcast(shape, a.shape, b.shape)
	sa, sb := bc.istride[0], bc.istride[1]
	bc.run(0, bc.rows(), func(off []int, oo int) {
		for i := range bc.inner {
			x, y := ad[off[0]+i*sa], bd[off[1]+i*sb]
			switch op {
			case logAnd:
				o[oo+i] = x && y
			case logOr:
				o[oo+i] = x || y
			case logXor:
				o[oo+i] = x != y
			}
		}
	})
	return out, nil
}

func where(ec *execCtx, cond, x, y *Tensor) (*Tensor, error) {
	if cond.dtype != Bool {
		return nil, fmt.Errorf("condition is %v, want bool", cond.dtype)
	}
	if x.dtype != y.dtype {
		return nil, fmt.Errorf("branches are %v and %v", x.dtype, y.dtype)
	}
	shape, err := broadcastShape(cond.shape, x.shape, y.shape)
	if err != nil {
		return nil, err
	}
	out := ec.newOut(x.dtype, shape)
	c := cond.BoolData()
	switch x.dtype {
	case Float32:
		whereGeneric(ec, c, x.Float32Data(), y.Float32Data(), out.Float32Data(), cond.shape, x.shape, y.shape, shape)
	case Float64:
		whereGeneric(ec, c, x.Float64Data(), y.Float64Data(), out.Float64Data(), cond.shape, x.shape, y.shape, shape)
	case Int64:
		whereGeneric(ec, c, x.Int64Data(), y.Int64Data(), out.Int64Data(), cond.shape, x.shape, y.shape, shape)
	case Int32:
		whereGeneric(ec, c, x.Int32Data(), y.Int32Data(), out.Int32Data(), cond.shape, x.shape, y.shape, shape)
	case Int8:
		whereGeneric(ec, c, x.data.([]int8), y.data.([]int8), out.data.([]int8), cond.shape, x.shape, y.shape, shape)
	case Uint8:
		whereGeneric(ec, c, x.data.([]uint8), y.data.([]uint8), out.data.([]uint8), cond.shape, x.shape, y.shape, shape)
	case Bool:
		whereGeneric(ec, c, x.BoolData(), y.BoolData(), out.BoolData(), cond.shape, x.shape, y.shape, shape)
	default:
		return nil, errType("Where", x.dtype)
	}
	return out, nil
}

func whereGeneric[T any](ec *execCtx, c []bool, x, y, out []T, cs, xs, ys, os []int) {
	bc := newBcast(os, cs, xs, ys)
	sc, sx, sy := bc.istride[0], bc.istride[1], bc.istride[2]
	inner := bc.inner
	bc.parallelRows(ec.threads, func(off []int, o int) {
		dst := out[o : o+inner]
		oc, ox, oy := off[0], off[1], off[2]
		for i := range dst {
			if c[oc+i*sc] {
				dst[i] = x[ox+i*sx]
			} else {
				dst[i] = y[oy+i*sy]
			}
		}
	})
}
