package runtime

import (
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/runtime/internal/kernels"
)

// unaryF32 is an elementwise float32 function applied to a whole slice, so
// that an op with a loop of its own has it compiled on its own.
type unaryF32 func(dst, src []float32)

type unaryDef struct {
	name string
	// f32, when nil, is f64 on each element widened to float64 (viaFloat64).
	f32 unaryF32
	// i64, when set, handles integer tensors (Neg, Abs, Relu, Sign).
	i64 func(int64) int64
	f64 func(float64) float64
}

// viaFloat64 is the float32 kernel of f: each element widened to float64,
// passed to f and rounded back to float32.
func viaFloat64(f func(float64) float64) unaryF32 {
	return func(d, s []float32) {
		for i, x := range s {
			d[i] = float32(f(float64(x)))
		}
	}
}

// unaryDefs are the kernels of the simple unary ops, by op name (their rows in
// opTable use compileUnary).
var unaryDefs = []unaryDef{
	{name: "Neg", f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = -x
		}
	}, i64: func(x int64) int64 { return -x }, f64: func(x float64) float64 { return -x }},
	{name: "Abs", i64: func(x int64) int64 { return max(x, -x) }, f64: math.Abs},
	// Sqrt keeps a loop of its own, in which math.Sqrt is one instruction (a
	// call through viaFloat64 is about four times slower: BenchmarkUnaryLoop);
	// it is on the path of unfused norms.
	{name: "Sqrt", f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = float32(math.Sqrt(float64(x)))
		}
	}, f64: math.Sqrt},
	{name: "Reciprocal", f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = 1 / x
		}
	}, f64: func(x float64) float64 { return 1 / x }},
	{name: "Exp", f32: kernels.Exp, f64: math.Exp},
	{name: "Log", f64: math.Log},
	{name: "Tanh", f32: kernels.Tanh, f64: math.Tanh},
	{name: "Erf", f64: math.Erf},
	{name: "Sigmoid", f32: kernels.Sigmoid, f64: func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }},
	{name: "Relu", f32: func(d, s []float32) {
		for i, x := range s {
			d[i] = max(x, 0)
		}
	}, i64: func(x int64) int64 { return max(x, 0) }, f64: func(x float64) float64 { return max(x, 0) }},
	{name: "Cos", f64: math.Cos},
	{name: "Sin", f64: math.Sin},
	{name: "Floor", f64: math.Floor},
	{name: "Ceil", f64: math.Ceil},
	{name: "Round", f64: math.RoundToEven},
	{name: "Sign", i64: func(x int64) int64 { return int64(sign(float64(x))) }, f64: sign},
	{name: "Softplus", f64: softplus},
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return x // 0 or NaN
}

func softplus(x float64) float64 {
	if x > 20 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

// compileUnary compiles the unary op name from its unaryDefs entry.
func compileUnary(name string) func(c *compileCtx) (kernel, error) {
	return func(c *compileCtx) (kernel, error) {
		var u unaryDef
		for _, d := range unaryDefs {
			if d.name == name {
				u = d
			}
		}
		if u.f32 == nil && u.f64 != nil {
			u.f32 = viaFloat64(u.f64)
		}
		if u.f32 == nil {
			return nil, fmt.Errorf("no unary kernel for %s", name)
		}
		if err := c.attrs.only(); err != nil {
			return nil, err
		}
		return unaryKernel(u), nil
	}
}

func compileLeakyRelu(c *compileCtx) (kernel, error) {
	alpha, err := sole(c.attrs, c.attrs.float, "alpha", 0.01)
	if err != nil {
		return nil, err
	}
	u := unaryDef{name: "LeakyRelu", f32: func(d, s []float32) {
		for i, x := range s {
			if x < 0 {
				x *= alpha
			}
			d[i] = x
		}
	}}
	return unaryKernel(u), nil
}

func compileGelu(c *compileCtx) (kernel, error) {
	approx, err := sole(c.attrs, c.attrs.str, "approximate", "none")
	if err != nil {
		return nil, err
	}
	var u unaryDef
	switch approx {
	case "none":
		u = unaryDef{name: "Gelu", f32: func(d, s []float32) {
			for i, x := range s {
				d[i] = float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
			}
		}}
	case "tanh":
		u = unaryDef{name: "Gelu", f32: func(d, s []float32) {
			const k = 0.7978845608028654 // sqrt(2/pi)
			for i, x := range s {
				v := float64(x)
				d[i] = float32(0.5 * v * (1 + math.Tanh(k*(v+0.044715*v*v*v))))
			}
		}}
	default:
		return nil, fmt.Errorf("approximate=%q is not supported", approx)
	}
	return unaryKernel(u), nil
}

// unaryKernel is the kernel that applies u to its one input.
func unaryKernel(u unaryDef) kernel {
	return func(ec *execCtx, in []*Tensor) ([]*Tensor, error) {
		t, err := ec.unary(u, in[0])
		return []*Tensor{t}, err
	}
}

func (ec *execCtx) unary(u unaryDef, x *Tensor) (*Tensor, error) {
	shape := append([]int{}, x.shape...)
	switch x.dtype {
	case Float32:
		out := ec.outLike(0, Float32, shape)
		src, dst := x.Float32Data(), out.Float32Data()
		parallelElems(ec.threads, len(src), 8, func(lo, hi int) { u.f32(dst[lo:hi], src[lo:hi]) })
		return out, nil
	case Float64:
		if u.f64 == nil {
			break
		}
		out := newTensor(Float64, shape)
		for i, v := range x.Float64Data() {
			out.Float64Data()[i] = u.f64(v)
		}
		return out, nil
	case Int64, Int32, Int8:
		if u.i64 == nil {
			break
		}
		out := newTensor(x.dtype, shape)
		switch d := x.data.(type) {
		case []int64:
			unaryInt(d, out.Int64Data(), u.i64)
		case []int32:
			unaryInt(d, out.Int32Data(), u.i64)
		case []int8:
			unaryInt(d, out.data.([]int8), u.i64)
		}
		return out, nil
	}
	return nil, errType(u.name, x.dtype)
}

func unaryInt[T int64 | int32 | int8](src, dst []T, f func(int64) int64) {
	for i, v := range src {
		dst[i] = T(f(int64(v)))
	}
}
