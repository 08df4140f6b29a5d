// Package dequant turns a model with com.microsoft MatMulNBits weights into
// the float model they stand for: each MatMulNBits becomes a MatMul of its
// dequantized weight. The tests use it as the dequantize-then-multiply
// reference of a quantized model.
package dequant

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/quant"
)

// MatMulNBits returns a copy of m in which every MatMulNBits node reads a
// float32 initializer [K, N] (its packed weight's name + ".dequantized") in
// a MatMul of the same name and output. m is not modified.
func MatMulNBits(m *pb.ModelProto) (*pb.ModelProto, error) {
	m = proto.Clone(m).(*pb.ModelProto)
	g := m.Graph
	inits := map[string]*pb.TensorProto{}
	for _, x := range g.Initializer {
		inits[x.GetName()] = x
	}
	bytesOf := func(name string) ([]byte, error) {
		if name == "" {
			return nil, nil
		}
		d, err := onnx.DecodeTensor(inits[name])
		if err != nil {
			return nil, fmt.Errorf("dequant: %s: %w", name, err)
		}
		b, ok := d.Data.([]uint8)
		if !ok {
			return nil, fmt.Errorf("dequant: %s is %T, want uint8", name, d.Data)
		}
		return b, nil
	}
	for i, n := range g.Node {
		if n.GetOpType() != "MatMulNBits" {
			continue
		}
		at := map[string]int{}
		for _, a := range n.Attribute {
			at[a.GetName()] = int(a.GetI())
		}
		if len(n.Input) < 3 {
			return nil, fmt.Errorf("dequant: %s has %d inputs, want the weight and its scales", n.GetName(), len(n.Input))
		}
		scales, err := onnx.Float32s(inits[n.Input[2]])
		if err != nil {
			return nil, fmt.Errorf("dequant: %s scales: %w", n.GetName(), err)
		}
		packed, err := bytesOf(n.Input[1])
		if err != nil {
			return nil, err
		}
		var zp []byte
		if len(n.Input) > 3 {
			if zp, err = bytesOf(n.Input[3]); err != nil {
				return nil, err
			}
		}
		K, N := at["K"], at["N"]
		w, err := quant.DequantizeBlocks(packed, scales, zp, at["bits"], K, N, at["block_size"])
		if err != nil {
			return nil, fmt.Errorf("dequant: %s: %w", n.GetName(), err)
		}
		name := n.Input[1] + ".dequantized"
		g.Initializer = append(g.Initializer, onnx.NewFloat32(name, []int64{int64(K), int64(N)}, w))
		g.Node[i] = &pb.NodeProto{Name: n.Name, OpType: proto.String("MatMul"), Input: []string{n.Input[0], name}, Output: n.Output}
	}
	return m, nil
}

// Reference is MatMulNBits(m) for a test: the float model a quantized model's
// weights stand for, failing t on an error.
func Reference(t testing.TB, m *pb.ModelProto) *pb.ModelProto {
	t.Helper()
	q, err := MatMulNBits(m)
	if err != nil {
		t.Fatal(err)
	}
	return q
}
