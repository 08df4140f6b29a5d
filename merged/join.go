package merged

import (
	"crypto/sha512"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// JoinOptions name the merged model's parts.
type JoinOptions struct {
	// GraphName is the outer graph's name; merge_decoders' default is "merged".
	GraphName string
	// Producer is the model's producer_name; merge_decoders' default is "optimum-onnx".
	Producer string
	// Suffix renames the shared initializers NAME_SUFFIX_K, as merge_decoders
	// does with the graph name. Empty keeps their names, which is how a model
	// that Split took apart is joined again: two tensors of one name but
	// different data are then refused.
	Suffix string
	// KeepMeta copies noPast's metadata_props (merge_decoders writes none;
	// onnxslm keeps what it records about a prune).
	KeepMeta bool
	// RenameMaskAxis renames attention_mask's second axis, which must be
	// sequence_length, attention_mask_sequence_length, as optimum's
	// merge_decoders did until the code moved to optimum-onnx (whose
	// merge_decoders keeps the decoder's axis names). Without it the inputs
	// are kept as they are.
	RenameMaskAxis bool
}

// Join merges decoder (no past inputs) and withPast into one model, as
// optimum's merge_decoders (optimum/onnx/graph_transformations.py) does:
//   - the opsets of the default domain must agree;
//   - the outputs must have the same names and element types in the same
//     order (_unify_onnx_outputs, strict); the merged outputs are decoder's;
//   - inputs: decoder's, then withPast's others (_get_all_inputs), then
//     use_cache_branch (BOOL [1]); attention_mask's second axis renamed
//     attention_mask_sequence_length with RenameMaskAxis;
//   - every initializer of rank ≥ 2, or of rank 1 and neither int32 nor int64,
//     moves to the outer graph, one per distinct (type, data, dims) across the
//     two models (_deduplicated_cross_model_initializers); the rest stay in
//     their branch;
//   - one If "optimum::if" on use_cache_branch, then_branch "with_past",
//     else_branch "no_past", outputs named as decoder's; ir_version 9.
//
// decoder and withPast are not modified; the result shares their tensors and
// copies their nodes.
func Join(decoder, withPast *pb.ModelProto, o JoinOptions) (*pb.ModelProto, error) {
	if o.GraphName == "" {
		o.GraphName = "merged"
	}
	if o.Producer == "" {
		o.Producer = "optimum-onnx"
	}
	if a, b := defaultOpset(decoder), defaultOpset(withPast); a != b {
		return nil, fmt.Errorf("join decoders: the decoder's opset is %d, the decoder with past's %d", a, b)
	}
	models := []*pb.ModelProto{decoder, withPast}
	outputs, err := unifyOutputs(decoder.GetGraph().GetOutput(), withPast.GetGraph().GetOutput())
	if err != nil {
		return nil, fmt.Errorf("join decoders: %w", err)
	}
	inputs, err := allInputs(models, o.RenameMaskAxis)
	if err != nil {
		return nil, fmt.Errorf("join decoders: %w", err)
	}
	shared, rename, err := sharedInitializers(models, o.Suffix)
	if err != nil {
		return nil, fmt.Errorf("join decoders: %w", err)
	}
	var branches [2]*pb.GraphProto
	for i, name := range []string{"no_past", "with_past"} {
		g := models[i].GetGraph()
		br := &pb.GraphProto{Name: proto.String(name), Output: outputs}
		for _, n := range g.GetNode() {
			n = proto.Clone(n).(*pb.NodeProto)
			for j, in := range n.Input {
				if to, ok := rename[i][in]; ok {
					n.Input[j] = to
				}
			}
			br.Node = append(br.Node, n)
		}
		for _, t := range g.GetInitializer() {
			if !isShared(t) {
				br.Initializer = append(br.Initializer, t)
			}
		}
		branches[i] = br
	}
	var names []string
	for _, vi := range outputs {
		names = append(names, vi.GetName())
	}
	ifNode := &pb.NodeProto{
		Name: proto.String("optimum::if"), OpType: proto.String("If"),
		Input: []string{CondInput}, Output: names,
		// onnx.helper.make_node writes keyword attributes sorted by name.
		Attribute: []*pb.AttributeProto{
			onnx.AttrGraph("else_branch", branches[0]),
			onnx.AttrGraph("then_branch", branches[1]),
		},
	}
	m := &pb.ModelProto{
		IrVersion:    proto.Int64(9),
		ProducerName: proto.String(o.Producer),
		OpsetImport:  unionOpsets(models),
		Graph: &pb.GraphProto{
			Name:        proto.String(o.GraphName),
			Node:        []*pb.NodeProto{ifNode},
			Input:       append(inputs, tensorInfo(CondInput, pb.TensorProto_BOOL, []*pb.TensorShapeProto_Dimension{dimValue(1)})),
			Output:      outputs,
			Initializer: shared,
		},
	}
	if o.KeepMeta {
		m.MetadataProps = decoder.GetMetadataProps()
	}
	return m, nil
}

func defaultOpset(m *pb.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return -1
}

// unifyOutputs is _unify_onnx_outputs with strict=True: the same names in
// the same order with the same element types; both branches then declare
// the decoder's outputs, rebuilt as make_tensor_value_info would (name,
// element type, dims).
func unifyOutputs(a, b []*pb.ValueInfoProto) ([]*pb.ValueInfoProto, error) {
	if len(a) != len(b) {
		return nil, fmt.Errorf("the decoder has %d outputs, the decoder with past %d", len(a), len(b))
	}
	out := make([]*pb.ValueInfoProto, len(a))
	for i := range a {
		ta, tb := a[i].GetType().GetTensorType(), b[i].GetType().GetTensorType()
		if a[i].GetName() != b[i].GetName() || ta.GetElemType() != tb.GetElemType() {
			return nil, fmt.Errorf("cannot match output %q with %q: the outputs must have the same names and types in the same order", a[i].GetName(), b[i].GetName())
		}
		var dims []*pb.TensorShapeProto_Dimension
		for _, d := range ta.GetShape().GetDim() {
			switch {
			case d.GetDimParam() != "":
				dims = append(dims, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: d.GetDimParam()}})
			case d.GetDimValue() != 0:
				dims = append(dims, dimValue(d.GetDimValue()))
			default:
				return nil, fmt.Errorf("output %q: a dimension with neither dim_param nor dim_value", a[i].GetName())
			}
		}
		out[i] = tensorInfo(a[i].GetName(), pb.TensorProto_DataType(ta.GetElemType()), dims)
	}
	return out, nil
}

func dimValue(v int64) *pb.TensorShapeProto_Dimension {
	return &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
}

func tensorInfo(name string, et pb.TensorProto_DataType, dims []*pb.TensorShapeProto_Dimension) *pb.ValueInfoProto {
	return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(et)), Shape: &pb.TensorShapeProto{Dim: dims}}}}}
}

// allInputs is _get_all_inputs (each name once, the decoder's first), with
// attention_mask's second axis renamed when rename is set, as optimum's
// merge_decoders did: in the merged model input_ids and attention_mask
// differ in length once there is a past.
func allInputs(models []*pb.ModelProto, rename bool) ([]*pb.ValueInfoProto, error) {
	var out []*pb.ValueInfoProto
	seen := map[string]bool{}
	for _, m := range models {
		for _, vi := range m.GetGraph().GetInput() {
			if seen[vi.GetName()] {
				continue
			}
			seen[vi.GetName()] = true
			if rename && vi.GetName() == "attention_mask" {
				vi = proto.Clone(vi).(*pb.ValueInfoProto)
				dims := vi.GetType().GetTensorType().GetShape().GetDim()
				if len(dims) < 2 {
					return nil, fmt.Errorf("attention_mask has %d dimensions, want 2", len(dims))
				}
				if dims[1].GetDimParam() != "sequence_length" {
					return nil, fmt.Errorf("expected attention_mask's second axis to be dynamic and named sequence_length, got %q", dims[1].GetDimParam())
				}
				dims[1].Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: "attention_mask_sequence_length"}
			}
			out = append(out, vi)
		}
	}
	return out, nil
}

// isShared reports whether merge_decoders moves t to the outer graph: rank
// ≥ 2, or rank 1 of a type other than int32 and int64.
func isShared(t *pb.TensorProto) bool {
	dt := pb.TensorProto_DataType(t.GetDataType())
	return len(t.GetDims()) > 1 || len(t.GetDims()) == 1 && dt != pb.TensorProto_INT32 && dt != pb.TensorProto_INT64
}

// sharedInitializers is _deduplicated_cross_model_initializers: the outer
// graph's initializers, one per distinct (data type, data, dims), named
// after the first tensor of each group (Python picks one from a set, in no
// fixed order), NAME_SUFFIX_K when suffix is set, K counting groups that
// picked the same name; and, per model, the renaming of its node inputs.
func sharedInitializers(models []*pb.ModelProto, suffix string) ([]*pb.TensorProto, [2]map[string]string, error) {
	type key struct {
		dt   int32
		sum  [sha512.Size]byte
		dims string
	}
	var rename [2]map[string]string
	groups := map[key]string{} // first name of each group → its new name
	used := map[string]int{}
	var shared []*pb.TensorProto
	taken := map[string][sha512.Size]byte{}
	for i, m := range models {
		rename[i] = map[string]string{}
		for _, t := range m.GetGraph().GetInitializer() {
			if !isShared(t) {
				continue
			}
			data, err := dataBytes(t)
			if err != nil {
				return nil, rename, fmt.Errorf("initializer %q: %w", t.GetName(), err)
			}
			k := key{dt: t.GetDataType(), sum: sha512.Sum512(data), dims: fmt.Sprint(t.GetDims())}
			if to, ok := groups[k]; ok {
				rename[i][t.GetName()] = to
				continue
			}
			to := t.GetName()
			if suffix != "" {
				n, seen := used[to]
				if seen {
					n++
				}
				used[to] = n
				to = fmt.Sprintf("%s_%s_%d", to, suffix, n)
			} else if sum, clash := taken[to]; clash && sum != k.sum {
				return nil, rename, fmt.Errorf("initializer %q holds different data in the two decoders", to)
			}
			taken[to] = k.sum
			groups[k] = to
			rename[i][t.GetName()] = to
			c := proto.Clone(t).(*pb.TensorProto)
			if c.GetName() != to {
				c.Name = proto.String(to)
			} else {
				c = t // unchanged: share it
			}
			shared = append(shared, c)
		}
	}
	if slices.ContainsFunc(shared, func(t *pb.TensorProto) bool { return t.GetName() == CondInput }) {
		return nil, rename, fmt.Errorf("an initializer is named %q", CondInput)
	}
	return shared, rename, nil
}

// dataBytes returns t's values as little-endian bytes, whatever field holds
// them (numpy_helper.to_array's bytes, which optimum hashes).
func dataBytes(t *pb.TensorProto) ([]byte, error) {
	if len(t.GetRawData()) > 0 {
		return t.GetRawData(), nil
	}
	d, err := onnx.DecodeTensor(t)
	if err != nil {
		return nil, err
	}
	e, err := onnx.EncodeTensor("", d)
	if err != nil {
		return nil, err
	}
	return e.GetRawData(), nil
}

// unionOpsets is merge_decoders' opset_imports: each domain once, the
// decoder's first.
func unionOpsets(models []*pb.ModelProto) []*pb.OperatorSetIdProto {
	var out []*pb.OperatorSetIdProto
	seen := map[string]bool{}
	for _, m := range models {
		for _, o := range m.GetOpsetImport() {
			if !seen[o.GetDomain()] {
				seen[o.GetDomain()] = true
				out = append(out, o)
			}
		}
	}
	return out
}
