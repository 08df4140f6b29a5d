package modelgen

import (
	"fmt"
	"math"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// ConvertFloat16 does in place what transformers.js's scripts/float16.py
// convert_float_to_float16 does for quantize_fp16 (model_fp16.onnx, and on
// the q4 model model_q4f16.onnx): keep_io_types=True, op_block_list =
// DEFAULT_OP_BLOCK_LIST (which lists Cast), min_positive_val 1e-7,
// max_finite_val 1e4 (docs/design/formats.md, section 2):
//
//   - each float32 graph input gets a Cast to float16 named and output
//     NAME_fp16, which its readers read instead (process_graph_input);
//   - float tensors in attributes of nodes not blocked (Constant values)
//     become float16 (process_tensor_in_node);
//   - every float32 value becomes float16 but the outputs of blocked nodes
//     (process_value_info); a blocked node reading a float16 value reads it
//     through a Cast to float32 NODE_input_castI (output NODE_input_cast_I),
//     and a float32 output of a blocked node leaves through a Cast to float16
//     NODE_output_castI (its output renamed NODE_output_cast_I)
//     (process_node_in_block_list);
//   - float32 initializers become float16 unless a blocked node reads them
//     (process_initializers), clamped into ±[1e-7, 1e4] (convert_np_to_float16);
//   - each float32 graph output is written by a Cast to float32 of its
//     producer's output renamed NAME_fp16 (process_graph_output);
//   - the graph is sorted topologically.
//
// A value's type is what ONNX shape inference would give it: values computed
// by com.microsoft ops (MatMulNBits) and by nodes reading them have none, so
// no Cast is put around a blocked node for them (as the Python code, which
// reads value_info, does not). remove_unnecessary_cast_node finds nothing to
// remove in modelgen's graphs (no float16→float32 Cast pair forms); the
// onnxslim.slim pass run afterwards (constant folding, dead code) is not
// replicated. It returns an error on a model already holding float16 values.
func ConvertFloat16(m *pb.ModelProto) error {
	g := m.GetGraph()
	types, err := inferElemTypes(g)
	if err != nil {
		return err
	}
	for _, t := range types {
		if t == pb.TensorProto_FLOAT16 {
			return fmt.Errorf("modelgen: float16: the model already holds float16 values")
		}
	}
	isFloat := func(name string) bool { return types[name] == pb.TensorProto_FLOAT }
	var added []*pb.NodeProto
	cast := func(name, in, out string, to pb.TensorProto_DataType) {
		added = append(added, &pb.NodeProto{Name: proto.String(name), OpType: proto.String("Cast"), Input: []string{in}, Output: []string{out},
			Attribute: []*pb.AttributeProto{onnx.AttrInt("to", int64(to))}})
	}
	// fp16 holds the values whose declared type (value_info) is float16 now.
	fp16 := map[string]bool{}
	// process_graph_input.
	for _, in := range g.GetInput() {
		if !isFloat(in.GetName()) {
			continue
		}
		name, out := in.GetName(), in.GetName()+"_fp16"
		read := false
		for _, n := range g.GetNode() {
			for i, x := range n.Input {
				if x == name {
					n.Input[i], read = out, true
				}
			}
		}
		if read {
			cast(out, name, out, pb.TensorProto_FLOAT16)
			fp16[out] = true
		}
	}
	blocked := func(n *pb.NodeProto) bool { return float16BlockList[n.GetOpType()] }
	// process_tensor_in_node and process_value_info.
	blockedOut := map[string]bool{}
	for _, n := range g.GetNode() {
		if blocked(n) {
			for _, o := range n.Output {
				blockedOut[o] = true
			}
			continue
		}
		for _, a := range n.Attribute {
			if t := a.GetT(); t != nil && t.GetDataType() == int32(pb.TensorProto_FLOAT) {
				if a.T, err = toFloat16(t); err != nil {
					return err
				}
			}
			for i, t := range a.GetTensors() {
				if t.GetDataType() == int32(pb.TensorProto_FLOAT) {
					if a.Tensors[i], err = toFloat16(t); err != nil {
						return err
					}
				}
			}
		}
	}
	graphIO := map[string]bool{}
	for _, v := range append(append([]*pb.ValueInfoProto(nil), g.GetInput()...), g.GetOutput()...) {
		graphIO[v.GetName()] = true
	}
	inits := map[string]*pb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	for _, n := range g.GetNode() {
		for _, o := range n.Output {
			if isFloat(o) && !blockedOut[o] && !graphIO[o] {
				fp16[o] = true // an intermediate value inference typed
			}
		}
	}
	// process_node_in_block_list.
	for _, n := range g.GetNode() {
		if !blocked(n) {
			continue
		}
		for i, in := range n.Input {
			if fp16[in] {
				out := fmt.Sprintf("%s_input_cast_%d", n.GetName(), i)
				cast(fmt.Sprintf("%s_input_cast%d", n.GetName(), i), in, out, pb.TensorProto_FLOAT)
				n.Input[i] = out
			}
		}
		for i, o := range n.Output {
			if isFloat(o) && !graphIO[o] {
				tmp := fmt.Sprintf("%s_output_cast_%d", n.GetName(), i)
				cast(fmt.Sprintf("%s_output_cast%d", n.GetName(), i), tmp, o, pb.TensorProto_FLOAT16)
				n.Output[i] = tmp
				fp16[o] = true
			}
		}
	}
	// process_initializers.
	keep := map[string]bool{}
	for _, n := range g.GetNode() {
		if blocked(n) {
			for _, in := range n.Input {
				keep[in] = true
			}
		}
	}
	for i, t := range g.GetInitializer() {
		if t.GetDataType() == int32(pb.TensorProto_FLOAT) && !keep[t.GetName()] {
			if g.Initializer[i], err = toFloat16(t); err != nil {
				return err
			}
		}
	}
	// process_graph_output.
	for _, out := range g.GetOutput() {
		name := out.GetName()
		if out.GetType().GetTensorType().GetElemType() != int32(pb.TensorProto_FLOAT) { // the declared type
			continue
		}
		var producer *pb.NodeProto
		for _, n := range append(g.GetNode(), added...) {
			for j, o := range n.Output {
				if o == name {
					producer = n
					n.Output[j] = name + "_fp16"
				}
			}
		}
		if producer == nil {
			return fmt.Errorf("modelgen: float16: no node writes output %q", name)
		}
		for _, n := range g.GetNode() {
			for j, in := range n.Input {
				if in == name {
					n.Input[j] = name + "_fp16"
				}
			}
		}
		// The Python code names the Cast with the index of the producer's last output.
		cast(fmt.Sprintf("%s_fp16_input_cast%d", name, len(producer.Output)-1), name+"_fp16", name, pb.TensorProto_FLOAT)
	}
	g.Node = append(g.Node, added...)
	return sortGraph(m)
}

// float16BlockList is float16.py's DEFAULT_OP_BLOCK_LIST: ops kept in float32.
var float16BlockList = map[string]bool{
	"ArrayFeatureExtractor": true, "Binarizer": true, "CastMap": true, "CategoryMapper": true, "DictVectorizer": true,
	"FeatureVectorizer": true, "Imputer": true, "LabelEncoder": true, "LinearClassifier": true, "LinearRegressor": true,
	"Normalizer": true, "OneHotEncoder": true, "RandomUniformLike": true, "SVMClassifier": true, "SVMRegressor": true,
	"Scaler": true, "TreeEnsembleClassifier": true, "TreeEnsembleRegressor": true, "ZipMap": true, "NonMaxSuppression": true,
	"TopK": true, "RoiAlign": true, "Resize": true, "CumSum": true, "Min": true, "Max": true, "Upsample": true,
	"RandomNormalLike": true, "Cast": true,
}

// toFloat16 is convert_tensor_float_to_float16: a float32 tensor's values
// clamped into ±[1e-7, 1e4] (zeros and infinities kept) and stored as float16.
func toFloat16(t *pb.TensorProto) (*pb.TensorProto, error) {
	v, err := onnx.Float32s(t)
	if err != nil {
		return nil, fmt.Errorf("modelgen: float16: %s: %w", t.GetName(), err)
	}
	const lo, hi = 1e-7, 1e4
	c := make([]float32, len(v))
	for i, x := range v {
		switch {
		case x > 0 && x < lo:
			x = lo
		case x < 0 && x > -lo:
			x = -lo
		case x > hi && !math.IsInf(float64(x), 1):
			x = hi
		case x < -hi && !math.IsInf(float64(x), -1):
			x = -hi
		}
		c[i] = x
	}
	dims := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		dims[i] = int(d)
	}
	return tensor(t.GetName(), pb.TensorProto_FLOAT16, dims, c), nil
}

// inferElemTypes gives each value of g the element type ONNX shape inference
// would: graph inputs and initializers as declared, node outputs by their op
// (most follow input 0), none (absent) for com.microsoft ops and what reads
// an untyped value.
func inferElemTypes(g *pb.GraphProto) (map[string]pb.TensorProto_DataType, error) {
	types := map[string]pb.TensorProto_DataType{}
	for _, in := range g.GetInput() {
		types[in.GetName()] = pb.TensorProto_DataType(in.GetType().GetTensorType().GetElemType())
	}
	for _, t := range g.GetInitializer() {
		types[t.GetName()] = pb.TensorProto_DataType(t.GetDataType())
	}
	of := func(name string) (pb.TensorProto_DataType, bool) {
		t, ok := types[name]
		return t, ok
	}
	for _, n := range g.GetNode() {
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			continue // no schema in ONNX: untyped
		}
		var t pb.TensorProto_DataType
		ok := true
		switch n.GetOpType() {
		case "Cast":
			t = pb.TensorProto_DataType(attrIntOf(n, "to"))
		case "Shape", "Size", "NonZero", "ArgMax", "ArgMin":
			t = pb.TensorProto_INT64
		case "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Not", "Xor", "IsNaN", "IsInf":
			t = pb.TensorProto_BOOL
		case "Constant":
			t, ok = constantType(n)
		case "ConstantOfShape":
			t = pb.TensorProto_FLOAT
			for _, a := range n.Attribute {
				if a.GetName() == "value" {
					t = pb.TensorProto_DataType(a.GetT().GetDataType())
				}
			}
		case "Where":
			if len(n.Input) < 2 {
				return nil, fmt.Errorf("modelgen: float16: %s has %d inputs", n.GetName(), len(n.Input))
			}
			t, ok = of(n.Input[1])
		default:
			if len(n.Input) == 0 {
				return nil, fmt.Errorf("modelgen: float16: no type rule for %s (%s)", n.GetOpType(), n.GetName())
			}
			t, ok = of(n.Input[0])
		}
		if !ok {
			continue
		}
		for _, o := range n.Output {
			if o != "" {
				types[o] = t
			}
		}
	}
	return types, nil
}

func attrIntOf(n *pb.NodeProto, name string) int64 {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return 0
}

// constantType is the element type of a Constant node's value.
func constantType(n *pb.NodeProto) (pb.TensorProto_DataType, bool) {
	for _, a := range n.Attribute {
		switch a.GetName() {
		case "value":
			return pb.TensorProto_DataType(a.GetT().GetDataType()), true
		case "value_float", "value_floats":
			return pb.TensorProto_FLOAT, true
		case "value_int", "value_ints":
			return pb.TensorProto_INT64, true
		}
	}
	return 0, false
}

// sortGraph puts m's nodes in a topological order (graph.Sort).
func sortGraph(m *pb.ModelProto) error {
	gr, err := graph.FromModel(m)
	if err != nil {
		return fmt.Errorf("modelgen: float16: %w", err)
	}
	if err := gr.Sort(); err != nil {
		return fmt.Errorf("modelgen: float16: %w", err)
	}
	m.Graph = gr.Model().GetGraph()
	return nil
}
