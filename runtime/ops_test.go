package runtime_test

import (
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

var inf32 = float32(math.Inf(1))

func TestElementwiseOps(t *testing.T) {
	runOpCases(t, []opCase{
		{name: "same shape", op: "Add", in: []*runtime.Tensor{f32(sh(2, 2), 1, 2, 3, 4), f32(sh(2, 2), 10, 20, 30, 40)}, want: []*runtime.Tensor{f32(sh(2, 2), 11, 22, 33, 44)}},
		{name: "row broadcast", op: "Add", in: []*runtime.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6), f32(sh(3), 10, 20, 30)}, want: []*runtime.Tensor{f32(sh(2, 3), 11, 22, 33, 14, 25, 36)}},
		{name: "outer broadcast", op: "Add", in: []*runtime.Tensor{f32(sh(2, 1), 1, 2), f32(sh(1, 3), 10, 20, 30)}, want: []*runtime.Tensor{f32(sh(2, 3), 11, 21, 31, 12, 22, 32)}},
		{name: "scalar", op: "Mul", in: []*runtime.Tensor{f32(sh(), 2), f32(sh(2, 2), 1, 2, 3, 4)}, want: []*runtime.Tensor{f32(sh(2, 2), 2, 4, 6, 8)}},
		{name: "middle broadcast", op: "Sub", in: []*runtime.Tensor{f32(sh(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8), f32(sh(2, 1, 2), 1, 1, 2, 2)}, want: []*runtime.Tensor{f32(sh(2, 2, 2), 0, 1, 2, 3, 3, 4, 5, 6)}},
		{name: "rank 4 mask", op: "Add", in: []*runtime.Tensor{f32(sh(1, 2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8), f32(sh(1, 1, 2, 2), 0, -1, 0, 0)}, want: []*runtime.Tensor{f32(sh(1, 2, 2, 2), 1, 1, 3, 4, 5, 5, 7, 8)}},
		{name: "float", op: "Div", in: []*runtime.Tensor{f32(sh(3), 1, -3, 0), f32(sh(3), 2, 2, 0)}, want: []*runtime.Tensor{f32(sh(3), 0.5, -1.5, float32(math.NaN()))}},
		{name: "int truncates", op: "Div", in: []*runtime.Tensor{i64(sh(4), 7, -7, 7, -7), i64(sh(4), 2, 2, -2, -2)}, want: []*runtime.Tensor{i64(sh(4), 3, -3, -3, 3)}},
		{name: "int by zero", op: "Div", in: []*runtime.Tensor{i64(sh(1), 7), i64(sh(1), 0)}, wantErr: "division by zero"},
		{name: "int64 shape math", op: "Mul", in: []*runtime.Tensor{i64(sh(2), 4, 32), i64(sh(), -1)}, want: []*runtime.Tensor{i64(sh(2), -4, -32)}},
		{name: "mixed types", op: "Add", in: []*runtime.Tensor{f32(sh(1), 1), i64(sh(1), 1)}, wantErr: "Add of float32 and int64"},
		{name: "bad broadcast", op: "Add", in: []*runtime.Tensor{f32(sh(2), 1, 2), f32(sh(3), 1, 2, 3)}, wantErr: "cannot be broadcast"},
		{name: "square", op: "Pow", in: []*runtime.Tensor{f32(sh(3), 1, -2, 3), f32(sh(), 2)}, want: []*runtime.Tensor{f32(sh(3), 1, 4, 9)}},
		{name: "cube and half", op: "Pow", in: []*runtime.Tensor{f32(sh(2), 2, 4), f32(sh(2), 3, 0.5)}, want: []*runtime.Tensor{f32(sh(2), 8, 2)}},
		{name: "int exponent", op: "Pow", in: []*runtime.Tensor{f32(sh(2), 2, 3), i64(sh(), 3)}, want: []*runtime.Tensor{f32(sh(2), 8, 27)}},
		{name: "variadic", op: "Max", in: []*runtime.Tensor{f32(sh(3), 1, 5, 3), f32(sh(1), 4), f32(sh(3), 0, 0, 9)}, want: []*runtime.Tensor{f32(sh(3), 4, 5, 9)}},
		{name: "nan", op: "Min", in: []*runtime.Tensor{f32(sh(2), 1, float32(math.NaN())), f32(sh(2), 0, 0)}, want: []*runtime.Tensor{f32(sh(2), 0, float32(math.NaN()))}},
		{name: "three", op: "Sum", in: []*runtime.Tensor{f32(sh(2), 1, 2), f32(sh(2), 10, 20), f32(sh(), 100)}, want: []*runtime.Tensor{f32(sh(2), 111, 122)}},
		{name: "one input", op: "Sum", in: []*runtime.Tensor{f32(sh(2), 1, 2)}, want: []*runtime.Tensor{f32(sh(2), 1, 2)}},
		{name: "python sign", op: "Mod", in: []*runtime.Tensor{i64(sh(4), -7, 7, -7, 7), i64(sh(4), 3, 3, -3, -3)}, want: []*runtime.Tensor{i64(sh(4), 2, 1, -1, -2)}},
		{name: "fmod", op: "Mod", attrs: []*pb.AttributeProto{onnx.AttrInt("fmod", 1)}, in: []*runtime.Tensor{f32(sh(2), -7, 7.5), f32(sh(2), 3, 2)}, want: []*runtime.Tensor{f32(sh(2), -1, 1.5)}},
		{name: "float without fmod", op: "Mod", in: []*runtime.Tensor{f32(sh(1), 1), f32(sh(1), 2)}, wantErr: "fmod=1"},
	})
}

func TestCompareLogicOps(t *testing.T) {
	a, b := i64(sh(2, 2), 1, 2, 3, 4), i64(sh(2), 2, 2)
	runOpCases(t, []opCase{
		{name: "int", op: "Equal", in: []*runtime.Tensor{a, b}, want: []*runtime.Tensor{bools(sh(2, 2), false, true, false, false)}},
		{name: "bool", op: "Equal", in: []*runtime.Tensor{bools(sh(2), true, false), bools(sh(), false)}, want: []*runtime.Tensor{bools(sh(2), false, true)}},
		{op: "Less", in: []*runtime.Tensor{a, b}, want: []*runtime.Tensor{bools(sh(2, 2), true, false, false, false)}},
		{op: "LessOrEqual", in: []*runtime.Tensor{a, b}, want: []*runtime.Tensor{bools(sh(2, 2), true, true, false, false)}},
		{op: "Greater", in: []*runtime.Tensor{f32(sh(3), 1, 2, 3), f32(sh(), 2)}, want: []*runtime.Tensor{bools(sh(3), false, false, true)}},
		{op: "GreaterOrEqual", in: []*runtime.Tensor{f32(sh(3), 1, 2, 3), f32(sh(), 2)}, want: []*runtime.Tensor{bools(sh(3), false, true, true)}},
		{name: "opset 24", op: "IsNaN", opset: 24, in: []*runtime.Tensor{f32(sh(1), 1)}, want: []*runtime.Tensor{bools(sh(1), false)}},
		{name: "opset 25", op: "IsNaN", opset: 25, in: []*runtime.Tensor{f32(sh(1), 1)}, wantErr: "opsets newer than 24 are not supported"},
		{op: "IsNaN", in: []*runtime.Tensor{f32(sh(4), 1, float32(math.NaN()), inf32, -inf32)}, want: []*runtime.Tensor{bools(sh(4), false, true, false, false)}},
		{op: "IsNaN", in: []*runtime.Tensor{i64(sh(1), 1)}, wantErr: "IsNaN does not support int64"},
		{op: "IsInf", in: []*runtime.Tensor{f32(sh(4), 1, float32(math.NaN()), inf32, -inf32)}, want: []*runtime.Tensor{bools(sh(4), false, false, true, true)}},
		{name: "positive only", op: "IsInf", attrs: []*pb.AttributeProto{onnx.AttrInt("detect_negative", 0)}, in: []*runtime.Tensor{f32(sh(3), inf32, -inf32, 0)}, want: []*runtime.Tensor{bools(sh(3), true, false, false)}},
		{name: "negative only", op: "IsInf", attrs: []*pb.AttributeProto{onnx.AttrInt("detect_positive", 0)}, in: []*runtime.Tensor{f32(sh(3), inf32, -inf32, 0)}, want: []*runtime.Tensor{bools(sh(3), false, true, false)}},
		{op: "And", in: []*runtime.Tensor{bools(sh(4), true, true, false, false), bools(sh(4), true, false, true, false)}, want: []*runtime.Tensor{bools(sh(4), true, false, false, false)}},
		{op: "Or", in: []*runtime.Tensor{bools(sh(4), true, true, false, false), bools(sh(4), true, false, true, false)}, want: []*runtime.Tensor{bools(sh(4), true, true, true, false)}},
		{op: "Xor", in: []*runtime.Tensor{bools(sh(4), true, true, false, false), bools(sh(1), true)}, want: []*runtime.Tensor{bools(sh(4), false, false, true, true)}},
		{op: "Not", in: []*runtime.Tensor{bools(sh(2), true, false)}, want: []*runtime.Tensor{bools(sh(2), false, true)}},
		{name: "broadcast", op: "Where", in: []*runtime.Tensor{bools(sh(2, 1), true, false), f32(sh(2, 2), 1, 2, 3, 4), f32(sh(), -1)}, want: []*runtime.Tensor{f32(sh(2, 2), 1, 2, -1, -1)}},
		{name: "int", op: "Where", in: []*runtime.Tensor{bools(sh(3), true, false, true), i64(sh(3), 1, 2, 3), i64(sh(3), 7, 8, 9)}, want: []*runtime.Tensor{i64(sh(3), 1, 8, 3)}},
		{name: "inputs", op: "Clip", in: []*runtime.Tensor{f32(sh(4), -2, 0, 2, 9), f32(sh(), -1), f32(sh(), 3)}, want: []*runtime.Tensor{f32(sh(4), -1, 0, 2, 3)}},
		{name: "no min", op: "Clip", in: []*runtime.Tensor{f32(sh(3), -2, 0, 9), nil, f32(sh(), 3)}, want: []*runtime.Tensor{f32(sh(3), -2, 0, 3)}},
		{name: "opset 6 attrs", op: "Clip", opset: 6, attrs: []*pb.AttributeProto{onnx.AttrFloat("min", 0), onnx.AttrFloat("max", 1)}, in: []*runtime.Tensor{f32(sh(3), -2, 0.5, 9)}, want: []*runtime.Tensor{f32(sh(3), 0, 0.5, 1)}},
	})
}

func TestCastOps(t *testing.T) {
	to := func(dt pb.TensorProto_DataType) []*pb.AttributeProto {
		return []*pb.AttributeProto{onnx.AttrInt("to", int64(dt))}
	}
	runOpCases(t, []opCase{
		{name: "float to int64 truncates", op: "Cast", attrs: to(pb.TensorProto_INT64), in: []*runtime.Tensor{f32(sh(4), -1.7, 1.7, 2.5, 0)}, want: []*runtime.Tensor{i64(sh(4), -1, 1, 2, 0)}},
		{name: "int64 to float", op: "Cast", attrs: to(pb.TensorProto_FLOAT), in: []*runtime.Tensor{i64(sh(2), 3, -4)}, want: []*runtime.Tensor{f32(sh(2), 3, -4)}},
		{name: "int to bool", op: "Cast", attrs: to(pb.TensorProto_BOOL), in: []*runtime.Tensor{i64(sh(3), 0, 2, -1)}, want: []*runtime.Tensor{bools(sh(3), false, true, true)}},
		{name: "bool to float", op: "Cast", attrs: to(pb.TensorProto_FLOAT), in: []*runtime.Tensor{bools(sh(2), true, false)}, want: []*runtime.Tensor{f32(sh(2), 1, 0)}},
		{name: "to int32", op: "Cast", attrs: to(pb.TensorProto_INT32), in: []*runtime.Tensor{i64(sh(2), 5, -6)}, want: []*runtime.Tensor{i32(sh(2), 5, -6)}},
		{name: "to float16 rounds", op: "Cast", attrs: to(pb.TensorProto_FLOAT16), in: []*runtime.Tensor{f32(sh(2), 1.0/3, 65504)}, want: []*runtime.Tensor{f32(sh(2), 0.33325195, 65504)}},
		{name: "same type", op: "Cast", attrs: to(pb.TensorProto_INT64), in: []*runtime.Tensor{i64(sh(1), 9)}, want: []*runtime.Tensor{i64(sh(1), 9)}},
		{name: "to string refused", op: "Cast", attrs: to(pb.TensorProto_STRING), in: []*runtime.Tensor{i64(sh(1), 9)}, wantErr: "cast to string is not supported"},
		{op: "CastLike", in: []*runtime.Tensor{i64(sh(2), 1, 2), f32(sh(), 0)}, want: []*runtime.Tensor{f32(sh(2), 1, 2)}},
	})
}

func TestUnaryOps(t *testing.T) {
	// Nine elements: eight through the vector kernels, one through the tail.
	x := []float32{-3, -1, -0.5, 0, 0.25, 0.5, 1, 2, 4}
	ref := func(f func(float64) float64) *runtime.Tensor {
		v := make([]float32, len(x))
		for i, e := range x {
			v[i] = float32(f(float64(e)))
		}
		return f32(sh(9), v...)
	}
	in := []*runtime.Tensor{f32(sh(9), x...)}
	pos := []*runtime.Tensor{f32(sh(4), 0.25, 1, 4, 9)}
	runOpCases(t, []opCase{
		{op: "Neg", in: in, want: []*runtime.Tensor{ref(func(v float64) float64 { return -v })}},
		{name: "int", op: "Neg", in: []*runtime.Tensor{i64(sh(2), 3, -4)}, want: []*runtime.Tensor{i64(sh(2), -3, 4)}},
		{op: "Abs", in: in, want: []*runtime.Tensor{ref(math.Abs)}},
		{op: "Relu", in: in, want: []*runtime.Tensor{ref(func(v float64) float64 { return math.Max(v, 0) })}},
		{op: "Sqrt", in: pos, want: []*runtime.Tensor{f32(sh(4), 0.5, 1, 2, 3)}},
		{op: "Reciprocal", in: pos, want: []*runtime.Tensor{f32(sh(4), 4, 1, 0.25, 1.0/9)}},
		{op: "Log", in: pos, want: []*runtime.Tensor{f32(sh(4), float32(math.Log(0.25)), 0, float32(math.Log(4)), float32(math.Log(9)))}},
		{op: "Exp", in: in, want: []*runtime.Tensor{ref(math.Exp)}, rel: 3e-7},
		{name: "overflow and nan", op: "Exp", in: []*runtime.Tensor{f32(sh(9), 0, 1, 88.5, 89, -90, -1000, float32(math.NaN()), inf32, -inf32)},
			want: []*runtime.Tensor{f32(sh(9), 1, float32(math.E), float32(math.Exp(88.5)), inf32, 0, 0, float32(math.NaN()), inf32, 0)}, rel: 3e-7},
		{op: "Tanh", in: in, want: []*runtime.Tensor{ref(math.Tanh)}, rel: 3e-7},
		{op: "Sigmoid", in: in, want: []*runtime.Tensor{ref(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) })}, rel: 3e-7},
		{op: "Erf", in: in, want: []*runtime.Tensor{ref(math.Erf)}},
		{op: "Cos", in: in, want: []*runtime.Tensor{ref(math.Cos)}},
		{op: "Sin", in: in, want: []*runtime.Tensor{ref(math.Sin)}},
		{op: "Floor", in: in, want: []*runtime.Tensor{ref(math.Floor)}},
		{name: "tanh form", op: "Gelu", opset: 20, attrs: []*pb.AttributeProto{onnx.AttrString("approximate", "tanh")}, in: in, want: []*runtime.Tensor{ref(func(v float64) float64 {
			return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
		})}},
		{name: "not in opset 17", op: "Gelu", in: in, wantErr: "Gelu needs opset 20"},
	})
}

func TestReductionOps(t *testing.T) {
	x := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	runOpCases(t, []opCase{
		{name: "last axis attr", op: "ReduceMean", opset: 14, attrs: []*pb.AttributeProto{onnx.AttrInts("axes", -1)}, in: []*runtime.Tensor{x}, want: []*runtime.Tensor{f32(sh(2, 1), 2, 5)}},
		{name: "axes input opset 18", op: "ReduceMean", opset: 18, attrs: []*pb.AttributeProto{onnx.AttrInt("keepdims", 0)}, in: []*runtime.Tensor{x, i64(sh(1), 0)}, want: []*runtime.Tensor{f32(sh(3), 2.5, 3.5, 4.5)}},
		{name: "attr refused at 18", op: "ReduceMean", opset: 18, attrs: []*pb.AttributeProto{onnx.AttrInts("axes", 0)}, in: []*runtime.Tensor{x}, wantErr: "axes is an input"},
		{name: "all axes", op: "ReduceMean", opset: 14, in: []*runtime.Tensor{x}, want: []*runtime.Tensor{f32(sh(1, 1), 3.5)}},
		{name: "axes input opset 13", op: "ReduceSum", opset: 13, in: []*runtime.Tensor{x, i64(sh(1), 1)}, want: []*runtime.Tensor{f32(sh(2, 1), 6, 15)}},
		{name: "noop with empty axes", op: "ReduceSum", opset: 13, attrs: []*pb.AttributeProto{onnx.AttrInt("noop_with_empty_axes", 1)}, in: []*runtime.Tensor{x}, want: []*runtime.Tensor{x}},
		{name: "attr opset 11", op: "ReduceSum", opset: 11, attrs: []*pb.AttributeProto{onnx.AttrInts("axes", 0), onnx.AttrInt("keepdims", 0)}, in: []*runtime.Tensor{x}, want: []*runtime.Tensor{f32(sh(3), 5, 7, 9)}},
		{name: "middle axis", op: "ReduceMax", opset: 18, in: []*runtime.Tensor{f32(sh(2, 2, 2), 1, 9, 3, 4, 5, 6, 8, 2), i64(sh(1), -2)}, want: []*runtime.Tensor{f32(sh(2, 1, 2), 3, 9, 8, 6)}},
		{name: "int", op: "ReduceSum", opset: 13, in: []*runtime.Tensor{i64(sh(2, 2), 1, 2, 3, 4), i64(sh(1), 1)}, want: []*runtime.Tensor{i64(sh(2, 1), 3, 7)}},
	})
}

func TestSoftmaxOps(t *testing.T) {
	// Each row subtracts its own maximum (NOTES.md: gorgonia's SoftMax does
	// not, and gives NaN on the second row).
	// perRow is f of each value of a row and the row's Σ exp, in float64.
	perRow := func(f func(x, sumExp float64) float64, v ...float64) []float32 {
		var s float64
		for _, x := range v {
			s += math.Exp(x)
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(f(x, s))
		}
		return out
	}
	e := func(v ...float64) []float32 {
		return perRow(func(x, s float64) float64 { return math.Exp(x) / s }, v...)
	}
	rows := append(e(1000, 0, 0, 0), e(0, 1, 2, 3)...)
	rows[0] = 1
	axis1 := append(append([]float32{}, e(0, 2)...), e(1, 3)...)
	// axis 1 of [1,2,2]: pairs (0,2) and (1,3) over the middle axis.
	axis1 = []float32{axis1[0], axis1[2], axis1[1], axis1[3]}
	logRow := func(v ...float64) []float32 {
		return perRow(func(x, s float64) float64 { return x - math.Log(s) }, v...)
	}
	runOpCases(t, []opCase{
		{name: "last axis, large logits", op: "Softmax", in: []*runtime.Tensor{f32(sh(2, 4), 1000, 0, 0, 0, 0, 1, 2, 3)}, want: []*runtime.Tensor{f32(sh(2, 4), rows...)}},
		{name: "masked row", op: "Softmax", in: []*runtime.Tensor{f32(sh(1, 3), 0, -3.4028235e38, 1)}, want: []*runtime.Tensor{f32(sh(1, 3), e(0, -1000, 1)...)}},
		{name: "middle axis", op: "Softmax", attrs: []*pb.AttributeProto{onnx.AttrInt("axis", 1)}, in: []*runtime.Tensor{f32(sh(1, 2, 2), 0, 1, 2, 3)}, want: []*runtime.Tensor{f32(sh(1, 2, 2), axis1...)}},
		{name: "opset 11 flattens", op: "Softmax", opset: 11, in: []*runtime.Tensor{f32(sh(1, 2, 2), 0, 1, 2, 3)}, want: []*runtime.Tensor{f32(sh(1, 2, 2), e(0, 1, 2, 3)...)}},
		{op: "LogSoftmax", in: []*runtime.Tensor{f32(sh(2, 3), 1, 2, 3, 1000, 0, 0)}, want: []*runtime.Tensor{f32(sh(2, 3), append(logRow(1, 2, 3), 0, -1000, -1000)...)}},
	})
	mean := float32(2.5)
	inv := float32(1 / math.Sqrt(1.25+1e-5))
	ln := make([]float32, 4)
	for i, v := range []float32{1, 2, 3, 4} {
		ln[i] = (v-mean)*inv*[]float32{1, 2, 1, 2}[i] + []float32{0, 0, 1, 1}[i]
	}
	runOpCases(t, []opCase{
		{name: "scale bias stats", op: "LayerNormalization", attrs: []*pb.AttributeProto{onnx.AttrFloat("epsilon", 1e-5)},
			in:   []*runtime.Tensor{f32(sh(1, 4), 1, 2, 3, 4), f32(sh(4), 1, 2, 1, 2), f32(sh(4), 0, 0, 1, 1)},
			want: []*runtime.Tensor{f32(sh(1, 4), ln...), f32(sh(1, 1), mean), f32(sh(1, 1), inv)}},
		{name: "two axes no bias", op: "LayerNormalization", attrs: []*pb.AttributeProto{onnx.AttrInt("axis", -2)},
			in:   []*runtime.Tensor{f32(sh(1, 2, 2), 1, 2, 3, 4), f32(sh(2, 2), 1, 1, 1, 1)},
			want: []*runtime.Tensor{f32(sh(1, 2, 2), (1-mean)*inv, (2-mean)*inv, (3-mean)*inv, (4-mean)*inv)}},
		// onnxruntime runs it below opset 17 too (a default-domain contrib
		// registration), as the transformer optimizer writes it.
		{name: "before opset 17", op: "LayerNormalization", opset: 14, attrs: []*pb.AttributeProto{onnx.AttrFloat("epsilon", 1e-5)},
			in:   []*runtime.Tensor{f32(sh(1, 4), 1, 2, 3, 4), f32(sh(4), 1, 2, 1, 2), f32(sh(4), 0, 0, 1, 1)},
			want: []*runtime.Tensor{f32(sh(1, 4), ln...), f32(sh(1, 1), mean), f32(sh(1, 1), inv)}},
	})
}

func TestMatMulOps(t *testing.T) {
	runOpCases(t, []opCase{
		{name: "2d", op: "MatMul", in: []*runtime.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6), f32(sh(3, 2), 1, 0, 0, 1, 1, 1)}, want: []*runtime.Tensor{f32(sh(2, 2), 4, 5, 10, 11)}},
		{name: "batched weight", op: "MatMul", in: []*runtime.Tensor{f32(sh(2, 1, 2), 1, 2, 3, 4), f32(sh(2, 1), 10, 1)}, want: []*runtime.Tensor{f32(sh(2, 1, 1), 12, 34)}},
		{name: "batch broadcast", op: "MatMul", in: []*runtime.Tensor{f32(sh(1, 2, 2), 1, 0, 0, 1), f32(sh(2, 2, 1), 1, 2, 3, 4)}, want: []*runtime.Tensor{f32(sh(2, 2, 1), 1, 2, 3, 4)}},
		{name: "vector left", op: "MatMul", in: []*runtime.Tensor{f32(sh(2), 1, 2), f32(sh(2, 3), 1, 2, 3, 4, 5, 6)}, want: []*runtime.Tensor{f32(sh(3), 9, 12, 15)}},
		{name: "vector right", op: "MatMul", in: []*runtime.Tensor{f32(sh(2, 2), 1, 2, 3, 4), f32(sh(2), 1, 1)}, want: []*runtime.Tensor{f32(sh(2), 3, 7)}},
		{name: "inner mismatch", op: "MatMul", in: []*runtime.Tensor{f32(sh(2, 3)), f32(sh(2, 3))}, wantErr: "inner dimensions 3 and 2 differ"},
		{name: "transB bias row", op: "Gemm", attrs: []*pb.AttributeProto{onnx.AttrInt("transB", 1)}, in: []*runtime.Tensor{f32(sh(1, 2), 1, 2), f32(sh(3, 2), 1, 0, 0, 1, 1, 1), f32(sh(3), 10, 20, 30)}, want: []*runtime.Tensor{f32(sh(1, 3), 11, 22, 33)}},
		{name: "transA alpha beta", op: "Gemm", attrs: []*pb.AttributeProto{onnx.AttrInt("transA", 1), onnx.AttrFloat("alpha", 2), onnx.AttrFloat("beta", 0.5)}, in: []*runtime.Tensor{f32(sh(2, 1), 1, 2), f32(sh(2, 2), 1, 2, 3, 4), f32(sh(1, 2), 2, 4)}, want: []*runtime.Tensor{f32(sh(1, 2), 15, 22)}},
		{name: "scalar bias", op: "Gemm", in: []*runtime.Tensor{f32(sh(1, 1), 3), f32(sh(1, 2), 1, 2), f32(sh(), 1)}, want: []*runtime.Tensor{f32(sh(1, 2), 4, 7)}},
		{name: "no bias", op: "Gemm", in: []*runtime.Tensor{f32(sh(1, 1), 3), f32(sh(1, 2), 1, 2)}, want: []*runtime.Tensor{f32(sh(1, 2), 3, 6)}},
	})
}

func TestShapeOps(t *testing.T) {
	x := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	runOpCases(t, []opCase{
		{op: "Shape", in: []*runtime.Tensor{x}, want: []*runtime.Tensor{i64(sh(2), 2, 3)}},
		{name: "start end", op: "Shape", attrs: []*pb.AttributeProto{onnx.AttrInt("start", -1)}, in: []*runtime.Tensor{f32(sh(2, 3, 4))}, want: []*runtime.Tensor{i64(sh(1), 4)}},
		{op: "Size", in: []*runtime.Tensor{x}, want: []*runtime.Tensor{i64(sh(), 6)}},
		{name: "zero and minus one", op: "Reshape", in: []*runtime.Tensor{f32(sh(2, 3, 1), 1, 2, 3, 4, 5, 6), i64(sh(2), 0, -1)}, want: []*runtime.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6)}},
		{name: "allowzero", op: "Reshape", attrs: []*pb.AttributeProto{onnx.AttrInt("allowzero", 1)}, in: []*runtime.Tensor{f32(sh(0, 3)), i64(sh(2), 3, 0)}, want: []*runtime.Tensor{f32(sh(3, 0))}},
		{name: "bad count", op: "Reshape", in: []*runtime.Tensor{x, i64(sh(1), 4)}, wantErr: "cannot reshape"},
		{op: "Flatten", in: []*runtime.Tensor{f32(sh(2, 1, 3), 1, 2, 3, 4, 5, 6)}, want: []*runtime.Tensor{f32(sh(2, 3), 1, 2, 3, 4, 5, 6)}},
		{name: "default perm", op: "Transpose", in: []*runtime.Tensor{x}, want: []*runtime.Tensor{f32(sh(3, 2), 1, 4, 2, 5, 3, 6)}},
		{name: "heads", op: "Transpose", attrs: []*pb.AttributeProto{onnx.AttrInts("perm", 0, 2, 1, 3)}, in: []*runtime.Tensor{f32(sh(1, 2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8)}, want: []*runtime.Tensor{f32(sh(1, 2, 2, 2), 1, 2, 5, 6, 3, 4, 7, 8)}},
		{name: "int64", op: "Transpose", attrs: []*pb.AttributeProto{onnx.AttrInts("perm", 1, 0)}, in: []*runtime.Tensor{i64(sh(1, 3), 1, 2, 3)}, want: []*runtime.Tensor{i64(sh(3, 1), 1, 2, 3)}},
		{name: "input axes", op: "Unsqueeze", opset: 13, in: []*runtime.Tensor{f32(sh(3), 1, 2, 3), i64(sh(2), 0, -1)}, want: []*runtime.Tensor{f32(sh(1, 3, 1), 1, 2, 3)}},
		{name: "attr axes", op: "Unsqueeze", opset: 11, attrs: []*pb.AttributeProto{onnx.AttrInts("axes", 0)}, in: []*runtime.Tensor{i64(sh(), 7)}, want: []*runtime.Tensor{i64(sh(1), 7)}},
		{name: "input axes", op: "Squeeze", opset: 13, in: []*runtime.Tensor{f32(sh(1, 3, 1), 1, 2, 3), i64(sh(1), -1)}, want: []*runtime.Tensor{f32(sh(1, 3), 1, 2, 3)}},
		{name: "all ones", op: "Squeeze", opset: 13, in: []*runtime.Tensor{f32(sh(1, 3, 1), 1, 2, 3)}, want: []*runtime.Tensor{f32(sh(3), 1, 2, 3)}},
		{name: "attr axes", op: "Squeeze", opset: 11, attrs: []*pb.AttributeProto{onnx.AttrInts("axes", 0)}, in: []*runtime.Tensor{i64(sh(1), 5)}, want: []*runtime.Tensor{i64(sh(), 5)}},
		{name: "not one", op: "Squeeze", opset: 13, in: []*runtime.Tensor{x, i64(sh(1), 0)}, wantErr: "cannot squeeze"},
		{name: "negative axis", op: "Concat", attrs: []*pb.AttributeProto{onnx.AttrInt("axis", -1)}, in: []*runtime.Tensor{f32(sh(2, 1), 1, 2), f32(sh(2, 2), 3, 4, 5, 6)}, want: []*runtime.Tensor{f32(sh(2, 3), 1, 3, 4, 2, 5, 6)}},
		{name: "shape ints", op: "Concat", attrs: []*pb.AttributeProto{onnx.AttrInt("axis", 0)}, in: []*runtime.Tensor{i64(sh(1), 2), i64(sh(1), 128), i64(sh(2), 4, 32)}, want: []*runtime.Tensor{i64(sh(4), 2, 128, 4, 32)}},
		{name: "empty past", op: "Concat", attrs: []*pb.AttributeProto{onnx.AttrInt("axis", 1)}, in: []*runtime.Tensor{f32(sh(1, 0, 1)), f32(sh(1, 2, 2), 1, 2, 3, 4)}, want: []*runtime.Tensor{f32(sh(1, 2, 2), 1, 2, 3, 4)}},
		{name: "mismatch", op: "Concat", attrs: []*pb.AttributeProto{onnx.AttrInt("axis", 0)}, in: []*runtime.Tensor{f32(sh(1, 2)), f32(sh(1, 3))}, wantErr: "cannot concatenate"},
	})
}

func TestSliceSplitGatherOps(t *testing.T) {
	x := f32(sh(2, 4), 0, 1, 2, 3, 4, 5, 6, 7)
	big := int64(math.MaxInt64)
	runOpCases(t, []opCase{
		{name: "axes and steps", op: "Slice", in: []*runtime.Tensor{x, i64(sh(1), 1), i64(sh(1), big), i64(sh(1), 1), i64(sh(1), 2)}, want: []*runtime.Tensor{f32(sh(2, 2), 1, 3, 5, 7)}},
		{name: "negative start", op: "Slice", in: []*runtime.Tensor{x, i64(sh(1), -2), i64(sh(1), big), i64(sh(1), -1)}, want: []*runtime.Tensor{f32(sh(2, 2), 2, 3, 6, 7)}},
		{name: "reverse", op: "Slice", in: []*runtime.Tensor{x, i64(sh(2), -1, -1), i64(sh(2), math.MinInt64, math.MinInt64), i64(sh(2), 0, 1), i64(sh(2), -1, -1)}, want: []*runtime.Tensor{f32(sh(2, 4), 7, 6, 5, 4, 3, 2, 1, 0)}},
		{name: "reverse step 2", op: "Slice", in: []*runtime.Tensor{f32(sh(5), 0, 1, 2, 3, 4), i64(sh(1), 10), i64(sh(1), 0), i64(sh(1), 0), i64(sh(1), -2)}, want: []*runtime.Tensor{f32(sh(2), 4, 2)}},
		{name: "default axes", op: "Slice", in: []*runtime.Tensor{x, i64(sh(2), 1, 0), i64(sh(2), 2, 2)}, want: []*runtime.Tensor{f32(sh(1, 2), 4, 5)}},
		{name: "empty", op: "Slice", in: []*runtime.Tensor{x, i64(sh(1), 3), i64(sh(1), 1), i64(sh(1), 1)}, want: []*runtime.Tensor{f32(sh(2, 0))}},
		{name: "shape slice", op: "Slice", in: []*runtime.Tensor{i64(sh(3), 2, 128, 128), i64(sh(1), -1), i64(sh(1), big), i64(sh(1), 0)}, want: []*runtime.Tensor{i64(sh(1), 128)}},
		{name: "input sizes", op: "Split", opset: 13, attrs: []*pb.AttributeProto{onnx.AttrInt("axis", 1)}, in: []*runtime.Tensor{x, i64(sh(2), 1, 3)}, want: []*runtime.Tensor{f32(sh(2, 1), 0, 4), f32(sh(2, 3), 1, 2, 3, 5, 6, 7)}},
		{name: "equal parts", op: "Split", opset: 13, attrs: []*pb.AttributeProto{onnx.AttrInt("axis", -1)}, in: []*runtime.Tensor{x}, want: []*runtime.Tensor{f32(sh(2, 2), 0, 1, 4, 5), f32(sh(2, 2), 2, 3, 6, 7)}},
		{name: "num_outputs uneven", op: "Split", opset: 18, attrs: []*pb.AttributeProto{onnx.AttrInt("num_outputs", 3)}, in: []*runtime.Tensor{f32(sh(5), 1, 2, 3, 4, 5)}, want: []*runtime.Tensor{f32(sh(2), 1, 2), f32(sh(2), 3, 4), f32(sh(1), 5)}},
		{name: "attr sizes", op: "Split", opset: 11, attrs: []*pb.AttributeProto{onnx.AttrInts("split", 3, 1)}, in: []*runtime.Tensor{f32(sh(4), 1, 2, 3, 4)}, want: []*runtime.Tensor{f32(sh(3), 1, 2, 3), f32(sh(1), 4)}},
		{name: "bad sizes", op: "Split", opset: 13, in: []*runtime.Tensor{f32(sh(4)), i64(sh(1), 3)}, wantErr: "do not add up"},
		{name: "embedding", op: "Gather", in: []*runtime.Tensor{f32(sh(3, 2), 0, 1, 10, 11, 20, 21), i64(sh(2, 2), 2, 0, 1, -1)}, want: []*runtime.Tensor{f32(sh(2, 2, 2), 20, 21, 0, 1, 10, 11, 20, 21)}},
		{name: "scalar index", op: "Gather", in: []*runtime.Tensor{i64(sh(3), 2, 128, 64), i64(sh(), 1)}, want: []*runtime.Tensor{i64(sh(), 128)}},
		{name: "axis 1", op: "Gather", attrs: []*pb.AttributeProto{onnx.AttrInt("axis", 1)}, in: []*runtime.Tensor{x, i32(sh(2), 3, 0)}, want: []*runtime.Tensor{f32(sh(2, 2), 3, 0, 7, 4)}},
		{name: "out of range", op: "Gather", in: []*runtime.Tensor{x, i64(sh(1), 2)}, wantErr: "index 2 out of range"},
	})
}

func TestGenerateOps(t *testing.T) {
	runOpCases(t, []opCase{
		{op: "Expand", in: []*runtime.Tensor{f32(sh(2, 1), 1, 2), i64(sh(3), 2, 1, 3)}, want: []*runtime.Tensor{f32(sh(2, 2, 3), 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2)}},
		{name: "keeps larger input dims", op: "Expand", in: []*runtime.Tensor{i64(sh(1, 3), 0, 1, 2), i64(sh(2), 2, 1)}, want: []*runtime.Tensor{i64(sh(2, 3), 0, 1, 2, 0, 1, 2)}},
		{op: "Tile", in: []*runtime.Tensor{f32(sh(1, 2), 1, 2), i64(sh(2), 2, 2)}, want: []*runtime.Tensor{f32(sh(2, 4), 1, 2, 1, 2, 1, 2, 1, 2)}},
		{name: "upper k=1 mask", op: "Trilu", in: []*runtime.Tensor{f32(sh(3, 3), 1, 1, 1, 1, 1, 1, 1, 1, 1), i64(sh(), 1)}, want: []*runtime.Tensor{f32(sh(3, 3), 0, 1, 1, 0, 0, 1, 0, 0, 0)}},
		{name: "lower", op: "Trilu", attrs: []*pb.AttributeProto{onnx.AttrInt("upper", 0)}, in: []*runtime.Tensor{i64(sh(2, 3), 1, 2, 3, 4, 5, 6)}, want: []*runtime.Tensor{i64(sh(2, 3), 1, 0, 0, 4, 5, 0)}},
		{name: "int", op: "Range", in: []*runtime.Tensor{i64(sh(), 0), i64(sh(), 5), i64(sh(), 2)}, want: []*runtime.Tensor{i64(sh(3), 0, 2, 4)}},
		{name: "negative delta", op: "Range", in: []*runtime.Tensor{i64(sh(), 5), i64(sh(), 0), i64(sh(), -2)}, want: []*runtime.Tensor{i64(sh(3), 5, 3, 1)}},
		{name: "float", op: "Range", in: []*runtime.Tensor{f32(sh(), 0), f32(sh(), 1), f32(sh(), 0.25)}, want: []*runtime.Tensor{f32(sh(4), 0, 0.25, 0.5, 0.75)}},
		{name: "empty", op: "Range", in: []*runtime.Tensor{i64(sh(), 3), i64(sh(), 3), i64(sh(), 1)}, want: []*runtime.Tensor{i64(sh(0))}},
		{name: "inclusive", op: "CumSum", in: []*runtime.Tensor{i64(sh(2, 3), 1, 1, 1, 0, 1, 1), i64(sh(), 1)}, want: []*runtime.Tensor{i64(sh(2, 3), 1, 2, 3, 0, 1, 2)}},
		{name: "exclusive reverse", op: "CumSum", attrs: []*pb.AttributeProto{onnx.AttrInt("exclusive", 1), onnx.AttrInt("reverse", 1)}, in: []*runtime.Tensor{f32(sh(3), 1, 2, 3), i64(sh(1), 0)}, want: []*runtime.Tensor{f32(sh(3), 5, 3, 0)}},
		{name: "default value", op: "ConstantOfShape", in: []*runtime.Tensor{i64(sh(2), 1, 2)}, want: []*runtime.Tensor{f32(sh(1, 2), 0, 0)}},
		{name: "int value", op: "ConstantOfShape", attrs: []*pb.AttributeProto{aTensor("value", i64(sh(1), 7))}, in: []*runtime.Tensor{i64(sh(1), 3)}, want: []*runtime.Tensor{i64(sh(3), 7, 7, 7)}},
		{name: "min float", op: "ConstantOfShape", attrs: []*pb.AttributeProto{aTensor("value", f32(sh(1), -3.4028235e38))}, in: []*runtime.Tensor{i64(sh(0))}, want: []*runtime.Tensor{f32(sh(), -3.4028235e38)}},
		{name: "value", op: "Constant", attrs: []*pb.AttributeProto{aTensor("value", f32(sh(2), 1, 2))}, want: []*runtime.Tensor{f32(sh(2), 1, 2)}},
		{name: "value_ints", op: "Constant", attrs: []*pb.AttributeProto{onnx.AttrInts("value_ints", 4, 5)}, want: []*runtime.Tensor{i64(sh(2), 4, 5)}},
		{name: "value_float", op: "Constant", attrs: []*pb.AttributeProto{onnx.AttrFloat("value_float", 0.5)}, want: []*runtime.Tensor{f32(sh(), 0.5)}},
		{op: "Identity", in: []*runtime.Tensor{i64(sh(2), 1, 2)}, want: []*runtime.Tensor{i64(sh(2), 1, 2)}},
		{name: "inference with mask", op: "Dropout", opset: 13, in: []*runtime.Tensor{f32(sh(2), 1, 2), f32(sh(), 0.5)}, want: []*runtime.Tensor{f32(sh(2), 1, 2), bools(sh(2), true, true)}},
		{name: "rows", op: "ScatterND", in: []*runtime.Tensor{f32(sh(3, 2), 1, 2, 3, 4, 5, 6), i64(sh(2, 1), 2, 0), f32(sh(2, 2), 50, 60, 10, 20)}, want: []*runtime.Tensor{f32(sh(3, 2), 10, 20, 3, 4, 50, 60)}},
		{name: "add elements", op: "ScatterND", attrs: []*pb.AttributeProto{onnx.AttrString("reduction", "add")}, in: []*runtime.Tensor{i64(sh(2, 2), 1, 2, 3, 4), i64(sh(2, 2), 0, 1, 0, 1), i64(sh(2), 10, 100)}, want: []*runtime.Tensor{i64(sh(2, 2), 1, 112, 3, 4)}},
	})
}
