package modelgen

import (
	"fmt"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/quant"
	"google.golang.org/protobuf/proto"
)

// transformers.js / onnx-community variants of an optimum export, as
// transformers.js's scripts/quantize.py writes them from model.onnx
// (docs/design/formats.md):
//
//   - model_q4.onnx: onnxruntime's MatMul4BitsQuantizer, block 32, symmetric,
//     accuracy_level unset (QuantizeMatMuls);
//   - model_quantized.onnx (mode q8): onnxruntime's ONNXQuantizer in
//     IntegerOps mode, dynamic, per-tensor int8 weights (uint8 only for models
//     with Conv or genai attention ops), uint8 activations, MatMulConstBOnly
//     (QuantizeDynamicInt8);
//   - model_fp16.onnx: scripts/float16.py's convert_float_to_float16 with
//     keep_io_types (ConvertFloat16): float16 weights and compute, float32
//     inputs and outputs through Casts at the edges;
//   - model_q4f16.onnx: model_q4's quantization, then the float16 conversion
//     of the q4 model (MatMulNBits with float16 scales, reading float16).
const (
	TransformersJSQ4        = "q4"
	TransformersJSQuantized = "quantized"
	TransformersJSFP16      = "fp16"
	TransformersJSQ4F16     = "q4f16"
)

// BuildTransformersJS builds the plain model c and converts it as
// transformers.js does for variant. c must store its weights as initializers
// (TransposedWeights, what optimum's constant folding writes) in float32.
func BuildTransformersJS(c Config, variant string) (*pb.ModelProto, error) {
	if !c.TransposedWeights || c.Float16 {
		return nil, fmt.Errorf("%w: transformers.js variants start from a float32 export with folded weights (TransposedWeights, not Float16)", ErrConfig)
	}
	m, err := Build(c)
	if err != nil {
		return nil, err
	}
	switch variant {
	case TransformersJSQ4:
		_, err = QuantizeMatMuls(m, 4, 32, false, 0)
	case TransformersJSQuantized:
		_, err = QuantizeDynamicInt8(m)
	case TransformersJSFP16:
		err = ConvertFloat16(m)
	case TransformersJSQ4F16:
		if _, err = QuantizeMatMuls(m, 4, 32, false, 0); err == nil {
			err = ConvertFloat16(m)
		}
	default:
		return nil, fmt.Errorf("%w: transformers.js variant %q: want %q, %q, %q or %q", ErrConfig, variant,
			TransformersJSQ4, TransformersJSQuantized, TransformersJSFP16, TransformersJSQ4F16)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Int8 is a per-tensor symmetric int8 quantization of a weight (quant.Int8).
type Int8 = quant.Int8

// QuantizeInt8 is quant.QuantizeInt8.
func QuantizeInt8(w []float32) Int8 { return quant.QuantizeInt8(w) }

// QuantizeDynamicInt8 does in place what onnxruntime's ONNXQuantizer in
// IntegerOps dynamic mode (transformers.js's quantize_q8, int8 weights) does:
//
//   - a default-domain MatMul whose B is a float32 initializer becomes
//     DynamicQuantizeLinear(A) (node A_QuantizeLinear, outputs A_quantized,
//     A_scale, A_zero_point; once per activation) → MatMulInteger NAME_quant
//     (A_quantized, B_quantized, A_zero_point, B_zero_point) → OUT_output_quantized
//     → Cast(to=FLOAT) OUT_output_quantized_cast → Mul NAME_quant_output_scale_mul
//     by Mul NAME_quant_scales_mul(A_scale, B_scale), writing OUT;
//   - a Gather whose data is a float32 initializer reads B_quantized and
//     writes OUT_quantized; a DequantizeLinear OUT_DequantizeLinear gives OUT
//     back just before its first consumer;
//   - weights become B_quantized (int8, same shape), B_scale (float scalar),
//     B_zero_point (int8 scalar 0); float weights no node reads are dropped.
//
// It returns the number of nodes quantized.
func QuantizeDynamicInt8(m *pb.ModelProto) (int, error) {
	g := m.GetGraph()
	inits := map[string]*pb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	var added []*pb.TensorProto
	weights := map[string]bool{}
	weight := func(name string) error {
		if weights[name] {
			return nil
		}
		w, err := onnx.Float32s(inits[name])
		if err != nil {
			return fmt.Errorf("modelgen: quantize %s: %w", name, err)
		}
		q := QuantizeInt8(w)
		dims := make([]int, len(inits[name].Dims))
		for i, d := range inits[name].Dims {
			dims[i] = int(d)
		}
		added = append(added, tensor(name+"_quantized", pb.TensorProto_INT8, dims, q.Values),
			tensor(name+"_scale", pb.TensorProto_FLOAT, nil, []float32{q.Scale}),
			tensor(name+"_zero_point", pb.TensorProto_INT8, nil, []int8{0}))
		weights[name] = true
		return nil
	}
	isWeight := func(name string) bool {
		t := inits[name]
		return t != nil && t.GetDataType() == int32(pb.TensorProto_FLOAT)
	}
	node := func(name, op string, in, out []string, attrs ...*pb.AttributeProto) *pb.NodeProto {
		return &pb.NodeProto{Name: proto.String(name), OpType: proto.String(op), Input: in, Output: out, Attribute: attrs}
	}
	var nodes []*pb.NodeProto
	dynamic := map[string]bool{}
	pendingDQ := map[string]*pb.NodeProto{} // quantized Gather output → its DequantizeLinear
	count := 0
	for _, n := range g.GetNode() {
		// A float consumer of a quantized Gather output gets it dequantized first.
		for _, in := range n.Input {
			if dq := pendingDQ[in]; dq != nil {
				nodes = append(nodes, dq)
				delete(pendingDQ, in)
			}
		}
		switch {
		case n.GetDomain() == "" && n.GetOpType() == "MatMul" && len(n.Input) == 2 && isWeight(n.Input[1]):
			a, b, out := n.Input[0], n.Input[1], n.Output[0]
			if err := weight(b); err != nil {
				return 0, err
			}
			if !dynamic[a] {
				dynamic[a] = true
				nodes = append(nodes, node(a+"_QuantizeLinear", "DynamicQuantizeLinear", []string{a},
					[]string{a + "_quantized", a + "_scale", a + "_zero_point"}))
			}
			name := n.GetName() + "_quant"
			mi := out + "_output_quantized"
			nodes = append(nodes,
				node(name, "MatMulInteger", []string{a + "_quantized", b + "_quantized", a + "_zero_point", b + "_zero_point"}, []string{mi}),
				node(mi+"_cast", "Cast", []string{mi}, []string{mi + "_cast_output"}, onnx.AttrInt("to", int64(pb.TensorProto_FLOAT))),
				node(name+"_scales_mul", "Mul", []string{a + "_scale", b + "_scale"}, []string{name + "_scales_mul:0"}),
				node(name+"_output_scale_mul", "Mul", []string{mi + "_cast_output", name + "_scales_mul:0"}, []string{out}))
			count++
		case n.GetDomain() == "" && n.GetOpType() == "Gather" && len(n.Input) == 2 && isWeight(n.Input[0]):
			w, out := n.Input[0], n.Output[0]
			if err := weight(w); err != nil {
				return 0, err
			}
			q := proto.Clone(n).(*pb.NodeProto)
			q.Input[0], q.Output[0] = w+"_quantized", out+"_quantized"
			nodes = append(nodes, q)
			pendingDQ[out] = node(out+"_DequantizeLinear", "DequantizeLinear",
				[]string{out + "_quantized", w + "_scale", w + "_zero_point"}, []string{out})
			count++
		default:
			nodes = append(nodes, n)
		}
	}
	g.Node = nodes
	cleanInitializers(g, added)
	return count, nil
}
