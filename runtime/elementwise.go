package runtime

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

type numeric interface {
	~float32 | ~float64 | ~int64 | ~int32 | ~int8 | ~uint8
}

type binOp uint8

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
	opPow
	opMax
	opMin
	opMod
	opFmod
)

var binOpNames = [...]string{"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Mod"}

// compileMod compiles Mod: integer modulo with the divisor's sign, or C fmod
// (fmod=1, the only choice for floating-point inputs).
func compileMod(c *compileCtx) (kernel, error) {
	f, err := sole(c.attrs, c.attrs.int, "fmod", 0)
	if err != nil {
		return nil, err
	}
	op := opMod
	if f != 0 {
		op = opFmod
	}
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		if op == opMod && (in[0].dtype == Float32 || in[0].dtype == Float64) {
			return nil, errors.New("Mod of floating-point tensors needs fmod=1")
		}
		t, err := ec.binary(op, in[0], in[1])
		return []*Tensor{t}, err
	}, nil
}

func compileBinary(op binOp) func(c *compileCtx) (kernel, error) {
	return func(c *compileCtx) (kernel, error) {
		if c.opset < 7 {
			// Opsets before 7 had axis/broadcast attributes with other rules.
			return nil, fmt.Errorf("%s before opset 7 is not supported", binOpNames[op])
		}
		if err := c.attrs.only(); err != nil {
			return nil, err
		}
		return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
			t, err := ec.binary(op, in[0], in[1])
			return []*Tensor{t}, err
		}, nil
	}
}

func compileVariadic(op binOp) func(c *compileCtx) (kernel, error) {
	return func(c *compileCtx) (kernel, error) {
		if err := c.attrs.only(); err != nil {
			return nil, err
		}
		return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
			for _, t := range in {
				if t == nil {
					return nil, errors.New("absent input")
				}
			}
			if len(in) == 1 {
				return []*Tensor{in[0].Clone()}, nil
			}
			acc, err := ec.binary(op, in[0], in[1])
			if err != nil {
				return nil, err
			}
			saved := ec.reuse
			ec.reuse = nil // intermediate results are fresh; inputs past the first two are not reused
			defer func() { ec.reuse = saved }()
			for _, t := range in[2:] {
				if acc, err = ec.binary(op, acc, t); err != nil {
					return nil, err
				}
			}
			return []*Tensor{acc}, nil
		}, nil
	}
}

// binary computes a op b with numpy broadcasting; a and b have the same dtype
// (Pow casts its exponent to the base's type).
func (ec *execCtx) binary(op binOp, a, b *Tensor) (*Tensor, error) {
	if op == opPow && a.dtype != b.dtype {
		var err error
		if b, err = castTo(b, a.dtype, pb.TensorProto_UNDEFINED); err != nil {
			return nil, err
		}
	}
	if a.dtype != b.dtype {
		return nil, fmt.Errorf("%s of %v and %v", binOpNames[op], a.dtype, b.dtype)
	}
	shape, err := broadcastShape(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	n := numel(shape)
	var out *Tensor
	switch {
	case numel(a.shape) == n:
		out = ec.outLike(0, a.dtype, shape)
	case numel(b.shape) == n:
		out = ec.outLike(1, a.dtype, shape)
	default:
		out = ec.newOut(a.dtype, shape)
	}
	switch a.dtype {
	case Float32:
		binaryF32(ec, op, a, b, out)
		return out, nil
	case Float64:
		return out, binaryGeneric(ec, op, a.Float64Data(), b.Float64Data(), out.Float64Data(), a.shape, b.shape, shape)
	case Int64:
		return out, binaryGeneric(ec, op, a.Int64Data(), b.Int64Data(), out.Int64Data(), a.shape, b.shape, shape)
	case Int32:
		return out, binaryGeneric(ec, op, a.Int32Data(), b.Int32Data(), out.Int32Data(), a.shape, b.shape, shape)
	case Int8:
		return out, binaryGeneric(ec, op, a.data.([]int8), b.data.([]int8), out.data.([]int8), a.shape, b.shape, shape)
	case Uint8:
		return out, binaryGeneric(ec, op, a.data.([]uint8), b.data.([]uint8), out.data.([]uint8), a.shape, b.shape, shape)
	}
	return nil, errType(binOpNames[op], a.dtype)
}

func binaryF32(ec *execCtx, op binOp, a, b, out *Tensor) {
	ad, bd, od := a.Float32Data(), b.Float32Data(), out.Float32Data()
	if len(od) == 0 {
		return
	}
	if sameShape(a.shape, b.shape) || len(ad) == len(od) && len(bd) == 1 || len(bd) == len(od) && len(ad) == 1 {
		sa, sb := 1, 1
		if len(ad) == 1 && len(od) > 1 {
			sa = 0
		}
		if len(bd) == 1 && len(od) > 1 {
			sb = 0
		}
		parallelElems(ec.threads, len(od), 1, func(lo, hi int) {
			al, bl := ad, bd
			if sa == 1 {
				al = ad[lo:hi]
			}
			if sb == 1 {
				bl = bd[lo:hi]
			}
			f32Row(op, od[lo:hi], al, bl, sa, sb)
		})
		return
	}
	bc := newBcast(out.shape, a.shape, b.shape)
	inner := bc.inner
	sa, sb := bc.istride[0], bc.istride[1]
	bc.parallelRows(ec.threads, func(off []int, o int) {
		f32Row(op, od[o:o+inner], ad[off[0]:], bd[off[1]:], sa, sb)
	})
}

// The first four binOps are kernels.BinOp's (f32Row passes them on as they
// are); these fail to compile if the two orders differ.
var (
	_ = [1]int{}[opAdd-binOp(kernels.Add)]
	_ = [1]int{}[opSub-binOp(kernels.Sub)]
	_ = [1]int{}[opMul-binOp(kernels.Mul)]
	_ = [1]int{}[opDiv-binOp(kernels.Div)]
)

// f32Row computes dst[i] = a[i*sa] op b[i*sb] for strides 0 or 1.
func f32Row(op binOp, dst, a, b []float32, sa, sb int) {
	n := len(dst)
	if sa == 1 {
		a = a[:n]
	}
	if sb == 1 {
		b = b[:n]
	}
	if v := n &^ 7; v > 0 && kernels.Binary != nil && (sa|sb) != 0 && op <= opDiv {
		if kernels.Binary(kernels.BinOp(op), dst[:v], a[:v*sa+1-sa], b[:v*sb+1-sb], sa, sb) {
			if v == n {
				return
			}
			dst = dst[v:]
			if sa == 1 {
				a = a[v:]
			}
			if sb == 1 {
				b = b[v:]
			}
		}
	}
	switch {
	case sa == 1 && sb == 1:
		switch op {
		case opAdd:
			for i := range dst {
				dst[i] = a[i] + b[i]
			}
		case opSub:
			for i := range dst {
				dst[i] = a[i] - b[i]
			}
		case opMul:
			for i := range dst {
				dst[i] = a[i] * b[i]
			}
		case opDiv:
			for i := range dst {
				dst[i] = a[i] / b[i]
			}
		default:
			f := f32Func(op)
			for i := range dst {
				dst[i] = f(a[i], b[i])
			}
		}
	case sa == 1:
		y := b[0]
		switch op {
		case opAdd:
			for i := range dst {
				dst[i] = a[i] + y
			}
		case opSub:
			for i := range dst {
				dst[i] = a[i] - y
			}
		case opMul:
			for i := range dst {
				dst[i] = a[i] * y
			}
		case opDiv:
			for i := range dst {
				dst[i] = a[i] / y
			}
		case opPow:
			powScalarF32(dst, a, y)
		default:
			f := f32Func(op)
			for i := range dst {
				dst[i] = f(a[i], y)
			}
		}
	case sb == 1:
		x := a[0]
		switch op {
		case opAdd:
			for i := range dst {
				dst[i] = x + b[i]
			}
		case opSub:
			for i := range dst {
				dst[i] = x - b[i]
			}
		case opMul:
			for i := range dst {
				dst[i] = x * b[i]
			}
		case opDiv:
			for i := range dst {
				dst[i] = x / b[i]
			}
		default:
			f := f32Func(op)
			for i := range dst {
				dst[i] = f(x, b[i])
			}
		}
	default:
		v := f32Func(op)(a[0], b[0])
		for i := range dst {
			dst[i] = v
		}
	}
}

func powScalarF32(dst, a []float32, y float32) {
	switch y {
	case 1:
		copy(dst, a)
	case 2:
		for i, x := range a {
			dst[i] = x * x
		}
	case 3:
		for i, x := range a {
			dst[i] = x * x * x
		}
	case 0.5:
		for i, x := range a {
			dst[i] = float32(math.Sqrt(float64(x)))
		}
	default:
		for i, x := range a {
			dst[i] = float32(math.Pow(float64(x), float64(y)))
		}
	}
}

// f32Func is genericFunc of float32 (whose functions never report a division
// by zero, hence no flag) but for Max and Min, which give math.NaN() when
// either operand is NaN.
func f32Func(op binOp) func(x, y float32) float32 {
	switch op {
	case opMax:
		return func(x, y float32) float32 {
			if x != x || y != y {
				return float32(math.NaN())
			}
			return max(x, y)
		}
	case opMin:
		return func(x, y float32) float32 {
			if x != x || y != y {
				return float32(math.NaN())
			}
			return min(x, y)
		}
	}
	return genericFunc[float32](op, nil)
}

var errDivZero = errors.New("integer division by zero")

// genericFunc returns the scalar function of op for type T; ok reports a
// division by zero through *bad.
func genericFunc[T numeric](op binOp, bad *bool) func(x, y T) T {
	var zero T
	isFloat := isFloatType(zero)
	switch op {
	case opAdd:
		return func(x, y T) T { return x + y }
	case opSub:
		return func(x, y T) T { return x - y }
	case opMul:
		return func(x, y T) T { return x * y }
	case opDiv:
		if isFloat {
			return func(x, y T) T { return x / y }
		}
		return func(x, y T) T {
			if y == 0 {
				*bad = true
				return 0
			}
			return x / y
		}
	case opPow:
		return func(x, y T) T { return T(math.Pow(float64(x), float64(y))) }
	case opMax:
		return func(x, y T) T { return max(x, y) }
	case opMin:
		return func(x, y T) T { return min(x, y) }
	case opMod, opFmod:
		if isFloat {
			return func(x, y T) T { return T(math.Mod(float64(x), float64(y))) }
		}
		fmod := op == opFmod
		return func(x, y T) T {
			if y == 0 {
				*bad = true
				return 0
			}
			r := T(int64(x) % int64(y))
			if !fmod && r != 0 && (r < 0) != (y < 0) {
				r += y
			}
			return r
		}
	}
	panic("runtime: no function for " + binOpNames[op])
}

func isFloatType(x any) bool {
	switch x.(type) {
	case float32, float64:
		return true
	}
	return false
}

func binaryGeneric[T numeric](ec *execCtx, op binOp, a, b, out []T, as, bs, os []int) error {
	bad := false
	f := genericFunc[T](op, &bad)
	bc := newBcast(os, as, bs)
	inner := bc.inner
	sa, sb := bc.istride[0], bc.istride[1]
	bc.run(0, bc.rows(), func(off []int, o int) {
		x, y := off[0], off[1]
		for i := range inner {
			out[o+i] = f(a[x+i*sa], b[y+i*sb])
		}
	})
	if bad {
		return errDivZero
	}
	return nil
}
