package discover

// This file knows the fused and quantized ops of deployed layouts
// (onnxruntime-genai's builder, transformers.js's quantized variants,
// onnxruntime's transformer optimizer): norms that add the residual
// (Skip…Normalization), attention ops that take the projections whole
// (GroupQueryAttention, MultiHeadAttention, Attention) and quantized
// projections (MatMulNBits, MatMulInteger). docs/design/formats.md describes
// the layouts; docs/design/graph.md how discovery reads them.

import (
	"fmt"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// msDomain is onnxruntime's contrib-op domain.
const msDomain = "com.microsoft"

// isSkipNorm reports whether n is a normalization that also adds the residual:
// Skip(Simplified)LayerNormalization(input, skip, gamma, [beta, bias]) whose
// output 0 is the normalized sum and output 3, when present, the sum itself.
func isSkipNorm(n *graph.Node) bool {
	return n != nil && n.Domain == msDomain && (n.Op == "SkipSimplifiedLayerNormalization" || n.Op == "SkipLayerNormalization")
}

// skipSum is the output of a skip norm that holds input + skip, or nil.
func skipSum(n *graph.Node) *graph.Value {
	if len(n.Outputs) > 3 {
		return n.Outputs[3]
	}
	return nil
}

// skipBias is the constant bias a skip norm adds with its skip input
// (SkipLayerNormalization input 4: onnxruntime's FusionBiasSkipLayerNormalization
// folds the branch projection's bias into the norm), or nil.
func skipBias(n *graph.Node) *graph.Value {
	if !isSkipNorm(n) || len(n.Inputs) < 5 || n.Inputs[4] == nil {
		return nil
	}
	if t, _ := resolveConst(n.Inputs[4]); t == nil {
		return nil
	}
	return n.Inputs[4]
}

// BranchBias returns the constant a skip norm of m adds with the value branch
// (SkipLayerNormalization's input 4, Stack.BranchBias), or "" when no norm
// does. It reads any model, so that a rewritten one (whose merged bias has a
// new name) answers too.
func BranchBias(m *pb.ModelProto, branch string) string {
	for _, n := range m.GetGraph().GetNode() {
		in := n.GetInput()
		if n.GetDomain() != msDomain || (n.GetOpType() != "SkipLayerNormalization" && n.GetOpType() != "SkipSimplifiedLayerNormalization") ||
			len(in) < 5 || in[4] == "" || (in[0] != branch && in[1] != branch) {
			continue
		}
		return in[4]
	}
	return ""
}

// isPackedAttention reports whether n is com.microsoft Attention with its
// q/k/v projection inside: input 0 the layer's normed stream, input 1 the packed
// [d, q+k+v] weight, input 2 its bias (the transformer optimizer's GPT-2 and
// BERT fusions). The node is then a projection as well as the attention.
func isPackedAttention(n *graph.Node) bool {
	if n == nil || n.Domain != msDomain || n.Op != "Attention" || len(n.Inputs) < 2 || n.Inputs[0] == nil {
		return false
	}
	t, _ := resolveConst(n.Inputs[1])
	if t == nil || len(t.Dims) != 2 || !isFloat(t) {
		return false
	}
	dt, _ := resolveConst(n.Inputs[0])
	return dt == nil
}

// isNormOp reports whether n is a normalization op that reads its scale at
// input 1 (2 for the skip ones).
func isNormOp(n *graph.Node) bool {
	if isSkipNorm(n) {
		return true
	}
	switch n.Op {
	case "LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization":
		return n.Domain == "" || n.Domain == "ai.onnx" || n.Domain == msDomain
	}
	return false
}

// isAttention reports whether n computes attention: a Softmax of the scores, or
// one of onnxruntime's fused attention ops.
func isAttention(n *graph.Node) bool {
	if n.Op == "Softmax" || isONNXAttention(n) {
		return true
	}
	return isFusedAttention(n)
}

// isONNXAttention: the standard Attention op (opset 23, torch's dynamo
// export of scaled_dot_product_attention), q, k and v at inputs 0..2, the
// result at output 0.
func isONNXAttention(n *graph.Node) bool { return n.Op == "Attention" && n.Domain == "" }

// isFusedAttention: an op that takes q, k and v (or q packed with k and v) and
// returns the attention's result at output 0.
func isFusedAttention(n *graph.Node) bool {
	if n.Domain != msDomain {
		return false
	}
	switch n.Op {
	case "GroupQueryAttention", "MultiHeadAttention", "Attention", "PackedMultiHeadAttention", "SparseAttention":
		return true
	}
	return false
}

// quantProjection says whether n is a quantized projection and, if so, its
// storage and the weight parts its inputs hold (position → part).
func quantProjection(n *graph.Node) (Storage, map[int]WeightPart, bool) {
	switch {
	case n.Domain == msDomain && n.Op == "MatMulNBits" && len(n.Inputs) >= 3:
		parts := map[int]WeightPart{1: Packed, 2: Scales}
		if len(n.Inputs) > 3 && n.Inputs[3] != nil {
			parts[3] = ZeroPoints
		}
		return NBits, parts, true
	case (n.Domain == "" || n.Domain == "ai.onnx") && n.Op == "MatMulInteger" && len(n.Inputs) >= 2:
		parts := map[int]WeightPart{1: Matrix}
		if len(n.Inputs) > 3 && n.Inputs[3] != nil {
			parts[3] = ZeroPoints
		}
		return Int8PerTensor, parts, true
	}
	return Dense, nil, false
}

// isQuantWeightInput reports whether input j of n holds a part of a quantized
// projection's weight (packed values, scales, zero points).
func isQuantWeightInput(n *graph.Node, j int) bool {
	_, parts, ok := quantProjection(n)
	if !ok {
		return false
	}
	_, in := parts[j]
	return in && j > 0
}

// isIntTable reports whether t is a 2-D 8-bit integer table (a quantized
// embedding or weight).
func isInt8Tensor(t *pb.TensorProto) bool {
	switch pb.TensorProto_DataType(t.GetDataType()) {
	case pb.TensorProto_INT8, pb.TensorProto_UINT8:
		return true
	}
	return false
}

// knownMSOps are the com.microsoft ops discovery reads. Others are refused:
// discovery cannot say whether they carry the residual stream, weights or a
// layer's state.
var knownMSOps = map[string]bool{
	"SkipSimplifiedLayerNormalization": true, "SkipLayerNormalization": true, "SimplifiedLayerNormalization": true,
	"LayerNormalization": true, "GroupQueryAttention": true, "MultiHeadAttention": true, "Attention": true,
	"MatMulNBits": true, "RotaryEmbedding": true, "FastGelu": true, "BiasGelu": true, "Gelu": true,
	"QuickGelu": true, "BiasAdd": true,
}

// UnsupportedOpError is a node discovery cannot classify: an op of a domain it
// does not know, or an onnxruntime contrib op it does not read.
type UnsupportedOpError struct {
	Op, Domain, Node string
	Opset            int64 // the model's opset of Domain, 0 if not imported
}

func (e *UnsupportedOpError) Error() string {
	name := e.Node
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("discover: unsupported op %s (domain %q, opset %d) at node %q: onnxslm cannot tell what it does to the decoder layers", e.Op, e.Domain, e.Opset, name)
}

// checkOps refuses the first node whose op discovery cannot classify.
func checkOps(m *pb.ModelProto) error {
	opsets := map[string]int64{}
	for _, o := range m.GetOpsetImport() {
		opsets[o.GetDomain()] = o.GetVersion()
	}
	for _, n := range m.GetGraph().GetNode() {
		d := n.GetDomain()
		ok := false
		switch d {
		case "", "ai.onnx":
			ok = true
		case msDomain:
			ok = knownMSOps[n.GetOpType()]
		}
		if !ok {
			return &UnsupportedOpError{Op: n.GetOpType(), Domain: d, Node: n.GetName(), Opset: opsets[d]}
		}
	}
	return nil
}

// int8ScaleMul is the Mul that scales the product of the MatMulInteger mm,
// after its Cast (onnxruntime's IntegerOps quantizer), or nil.
func int8ScaleMul(mm *graph.Node) *graph.Node {
	out := firstOutput(mm)
	if out == nil || len(out.Consumers) != 1 || out.Consumers[0].Op != "Cast" {
		return nil
	}
	cast := firstOutput(out.Consumers[0])
	if cast == nil || len(cast.Consumers) != 1 || cast.Consumers[0].Op != "Mul" {
		return nil
	}
	return cast.Consumers[0]
}

// int8ScaleOf returns the MatMulInteger whose weight scale the Mul x reads
// (x = Mul(A_scale, B_scale), feeding the Mul after that MatMulInteger's
// Cast), or nil.
func int8ScaleOf(x *graph.Node) *graph.Node {
	if x.Op != "Mul" || len(x.Inputs) != 2 {
		return nil
	}
	out := firstOutput(x)
	if out == nil {
		return nil
	}
	for _, c := range out.Consumers {
		if c.Op != "Mul" || len(c.Inputs) != 2 {
			continue
		}
		for _, in := range c.Inputs {
			if in == nil || in == out || in.Producer == nil || in.Producer.Op != "Cast" || len(in.Producer.Inputs) == 0 {
				continue
			}
			if src := in.Producer.Inputs[0]; src != nil && src.Producer != nil && src.Producer.Op == "MatMulInteger" {
				return src.Producer
			}
		}
	}
	return nil
}
