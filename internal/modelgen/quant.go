package modelgen

import (
	"fmt"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/quant"
	"google.golang.org/protobuf/proto"
)

// Blockwise 4- and 8-bit weight quantization in the layout of onnxruntime's
// com.microsoft.MatMulNBits lives in package quant (production code uses it
// too); these names keep the test models' code short.

// QBlocks is a MatMul weight [K, N] quantized blockwise (quant.Blocks).
type QBlocks = quant.Blocks

// ErrQBlocks marks malformed blockwise quantized data (quant.ErrBlocks).
var ErrQBlocks = quant.ErrBlocks

// QuantizeBlocks is quant.QuantizeBlocks.
func QuantizeBlocks(w []float32, bits, K, N, block int, asymmetric bool) (*QBlocks, error) {
	return quant.QuantizeBlocks(w, bits, K, N, block, asymmetric)
}

// DequantizeBlocks is quant.DequantizeBlocks.
func DequantizeBlocks(packed []byte, scales []float32, zeroPoints []byte, bits, K, N, block int) ([]float32, error) {
	return quant.DequantizeBlocks(packed, scales, zeroPoints, bits, K, N, block)
}

// QuantizeMatMuls does in place what onnxruntime's MatMulNBitsQuantizer
// (DefaultWeightOnlyQuantizer, QOperator format, 4 or 8 bits) does to a model:
// every default-domain MatMul of the main graph whose B is a 2-D float32
// initializer becomes com.microsoft.MatMulNBits NAME_Q{bits} with the same
// output, reading B_Q{bits}, B_scales (and B_zero_points when asymmetric), with attributes
// K, N, bits, block_size and accuracy_level when it is not 0; the new
// initializers are appended in node order, float weights no node reads any
// more are dropped, and the com.microsoft opset 1 is imported. It returns the
// number of MatMuls quantized. (The quantizer also walks subgraphs; the models
// built here have none.)
func QuantizeMatMuls(m *pb.ModelProto, bits, block int, asymmetric bool, accuracyLevel int) (int, error) {
	suffix := fmt.Sprintf("_Q%d", bits)
	g := m.GetGraph()
	inits := map[string]*pb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	var added []*pb.TensorProto
	count := 0
	for i, n := range g.GetNode() {
		if n.GetOpType() != "MatMul" || n.GetDomain() != "" || len(n.Input) != 2 {
			continue
		}
		w := inits[n.Input[1]]
		if w == nil || w.GetDataType() != int32(pb.TensorProto_FLOAT) || len(w.Dims) != 2 {
			continue
		}
		data, err := onnx.Float32s(w)
		if err != nil {
			return 0, fmt.Errorf("modelgen: quantize %s: %w", w.GetName(), err)
		}
		K, N := int(w.Dims[0]), int(w.Dims[1])
		q, err := QuantizeBlocks(data, bits, K, N, block, asymmetric)
		if err != nil {
			return 0, fmt.Errorf("modelgen: quantize %s: %w", w.GetName(), err)
		}
		name := w.GetName()
		inputs := []string{n.Input[0], name + suffix, name + "_scales"}
		added = append(added,
			tensor(name+suffix, pb.TensorProto_UINT8, []int{N, q.KBlocks(), block * bits / 8}, q.Packed),
			tensor(name+"_scales", pb.TensorProto_FLOAT, []int{len(q.Scales)}, q.Scales))
		if asymmetric {
			inputs = append(inputs, name+"_zero_points")
			added = append(added, tensor(name+"_zero_points", pb.TensorProto_UINT8, []int{len(q.ZeroPoints)}, q.ZeroPoints))
		}
		attrs := []*pb.AttributeProto{onnx.AttrInt("K", int64(K)), onnx.AttrInt("N", int64(N)), onnx.AttrInt("bits", int64(bits)), onnx.AttrInt("block_size", int64(block))}
		if accuracyLevel != 0 {
			attrs = append(attrs, onnx.AttrInt("accuracy_level", int64(accuracyLevel)))
		}
		nodeName := ""
		if n.GetName() != "" {
			nodeName = n.GetName() + suffix
		}
		g.Node[i] = &pb.NodeProto{Name: proto.String(nodeName), OpType: proto.String("MatMulNBits"), Domain: proto.String("com.microsoft"),
			Input: inputs, Output: n.Output, Attribute: attrs}
		count++
	}
	cleanInitializers(g, added)
	for _, o := range m.OpsetImport {
		if o.GetDomain() == "com.microsoft" {
			o.Version = proto.Int64(1)
			return count, nil
		}
	}
	m.OpsetImport = append(m.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)})
	return count, nil
}

// cleanInitializers drops the initializers no node reads (the float weights a
// quantizer replaced; onnxruntime's clean_initializers) and appends added.
func cleanInitializers(g *pb.GraphProto, added []*pb.TensorProto) {
	used := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, in := range n.Input {
			used[in] = true
		}
	}
	kept := g.Initializer[:0]
	for _, t := range g.Initializer {
		if used[t.GetName()] {
			kept = append(kept, t)
		}
	}
	g.Initializer = append(kept, added...)
}
