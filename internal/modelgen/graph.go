package modelgen

import (
	"fmt"
	"math"
	"strings"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// negInf is torch.finfo(torch.float32).min, the "minus infinity" that Hugging
// Face masks use (a true -Inf would turn fully masked rows into NaN).
const negInf = -math.MaxFloat32

// builder emits nodes the way torch.onnx.export names them: nodes are named
// after the module scope ("/model/layers.0/self_attn/q_proj/MatMul", a suffix
// _N for the N-th node of that type in the scope), values after their node
// ("…/MatMul_output_0"), and some constants at the root with torch's global
// numbering ("Constant_12" → "onnx::Unsqueeze_13").
type builder struct {
	cfg     Config
	g       *pb.GraphProto
	scope   []string
	counts  map[string]int
	serial  int // torch's global value counter (onnx::X_N names)
	pending int // folded weights not yet named (see foldedWeight)
	// sink, when set, receives every initializer as it is made and returns
	// what the graph keeps (Stream: an external reference).
	sink func(*pb.TensorProto) *pb.TensorProto
}

func newBuilder(cfg Config, name string) *builder {
	return &builder{cfg: cfg, g: &pb.GraphProto{Name: proto.String(name)}, counts: map[string]int{}}
}

func (b *builder) push(scope string) { b.scope = append(b.scope, scope) }
func (b *builder) pop()              { b.scope = b.scope[:len(b.scope)-1] }

// nodeName returns the next torch-style name for an op in the current scope.
func (b *builder) nodeName(op string) string {
	prefix := ""
	if len(b.scope) > 0 {
		prefix = "/" + strings.Join(b.scope, "/")
	}
	key := prefix + "/" + op
	n := b.counts[key]
	b.counts[key] = n + 1
	if n == 0 {
		return key
	}
	return fmt.Sprintf("%s_%d", key, n)
}

func (b *builder) nextSerial() int { b.serial++; return b.serial }

// node appends a node in the current scope and returns its outputs.
func (b *builder) node(op string, inputs []string, nout int, attrs ...*pb.AttributeProto) []string {
	name := b.nodeName(op)
	outs := make([]string, nout)
	for i := range outs {
		outs[i] = fmt.Sprintf("%s_output_%d", name, i)
	}
	b.g.Node = append(b.g.Node, &pb.NodeProto{
		Name: proto.String(name), OpType: proto.String(op),
		Input: inputs, Output: outs, Attribute: attrs,
	})
	return outs
}

// op appends a single-output node.
func (b *builder) op(op string, inputs ...string) string { return b.node(op, inputs, 1)[0] }

// opA appends a single-output node with attributes.
func (b *builder) opA(op string, inputs []string, attrs ...*pb.AttributeProto) string {
	return b.node(op, inputs, 1, attrs...)[0]
}

// renameProduced gives value, produced by an earlier node and read by
// none yet, a fixed name (a graph output).
func (b *builder) renameProduced(value, name string) string {
	for i := len(b.g.Node) - 1; i >= 0; i-- {
		n := b.g.Node[i]
		for _, in := range n.Input {
			if in == value {
				panic("modelgen: renameProduced of a value already read: " + value) // programming error
			}
		}
		for j, o := range n.Output {
			if o == value {
				n.Output[j] = name
				return name
			}
		}
	}
	panic("modelgen: renameProduced of a value no node produces: " + value) // programming error
}

// rename gives the output of the last node a fixed name (a graph output).
func (b *builder) rename(value, name string) string {
	last := b.g.Node[len(b.g.Node)-1]
	for i, o := range last.Output {
		if o == value {
			last.Output[i] = name
			return name
		}
	}
	panic("modelgen: rename of a value the last node does not produce: " + value) // programming error
}

// constant emits a Constant node in the current scope.
func (b *builder) constant(t *pb.TensorProto) string {
	return b.opA("Constant", nil, onnx.AttrTensor("value", t))
}

// i64 is a scalar int64 constant; i64s a 1-D one.
func (b *builder) i64(v int64) string     { return b.constant(tensorI64("", nil, []int64{v})) }
func (b *builder) i64s(v ...int64) string { return b.constant(tensorI64("", []int{len(v)}, v)) }

// f32 is a scalar float constant.
func (b *builder) f32(v float32) string { return b.constant(tensorF32("", nil, []float32{v})) }

// rootAxes emits the axes constant the way torch does for some Unsqueeze
// nodes: a root-level "Constant_N" node whose output is "onnx::Unsqueeze_M".
func (b *builder) rootAxes(v ...int64) string {
	n := b.nextSerial()
	out := fmt.Sprintf("onnx::Unsqueeze_%d", b.nextSerial())
	b.g.Node = append(b.g.Node, constantNode(fmt.Sprintf("Constant_%d", n), out, tensorI64("", []int{len(v)}, v)))
	return out
}

func constantNode(name, out string, t *pb.TensorProto) *pb.NodeProto {
	return &pb.NodeProto{
		Name: proto.String(name), OpType: proto.String("Constant"),
		Output: []string{out}, Attribute: []*pb.AttributeProto{onnx.AttrTensor("value", t)},
	}
}

// unsqueeze and squeeze take axes as an input (opset ≥ 13).
func (b *builder) unsqueeze(x string, axes ...int64) string {
	return b.op("Unsqueeze", x, b.i64s(axes...))
}

// unsq0 turns a scalar into a 1-D value of one element, with a root axes
// constant, as torch's shape plumbing does.
func (b *builder) unsq0(x string) string { return b.op("Unsqueeze", x, b.rootAxes(0)) }

// dim returns Gather(Shape(x), i): one dimension of x as an int64 scalar.
func (b *builder) dim(x string, i int64) string {
	return b.opA("Gather", []string{b.op("Shape", x), b.i64(i)}, onnx.AttrInt("axis", 0))
}

// shape concatenates parts (1-D int64 values) into a shape tensor. An int part
// becomes a constant.
func (b *builder) shape(parts ...any) string {
	ins := make([]string, len(parts))
	for i, p := range parts {
		switch p := p.(type) {
		case string:
			ins[i] = p
		case int:
			ins[i] = b.i64s(int64(p))
		default:
			panic(fmt.Sprintf("modelgen: shape part %T", p)) // programming error
		}
	}
	return b.opA("Concat", ins, onnx.AttrInt("axis", 0))
}

// reduceMean over the last axis with keepdims, axes as attribute before
// opset 18 and as input from 18 on.
func (b *builder) reduceMean(x string) string {
	if b.cfg.Opset >= 18 {
		return b.opA("ReduceMean", []string{x, b.i64s(-1)}, onnx.AttrInt("keepdims", 1))
	}
	return b.opA("ReduceMean", []string{x}, onnx.AttrInts("axes", -1), onnx.AttrInt("keepdims", 1))
}

func (b *builder) transpose(x string, perm ...int64) string {
	return b.opA("Transpose", []string{x}, onnx.AttrInts("perm", perm...))
}

func (b *builder) slice(x, starts, ends, axes, steps string) string {
	ins := []string{x, starts, ends, axes}
	if steps != "" {
		ins = append(ins, steps)
	}
	return b.op("Slice", ins...)
}

// initializer adds a float tensor as an initializer, stored as float16 when
// the config asks for it, and returns the value that consumers read (asFloat).
func (b *builder) initializer(name string, dims []int, data []float32) string {
	dt := pb.TensorProto_FLOAT
	switch {
	case b.cfg.Float16:
		dt = pb.TensorProto_FLOAT16
	case b.cfg.BFloat16:
		dt = pb.TensorProto_BFLOAT16
	}
	t := tensor(name, dt, dims, data)
	if b.sink != nil {
		t = b.sink(t) // streamed out: t now refers to the data file
	}
	b.g.Initializer = append(b.g.Initializer, t)
	return b.asFloat(name)
}

// asFloat returns a value that reads a weight as float: the weight itself, or
// with Float16 a Cast of it to float in the current scope.
func (b *builder) asFloat(name string) string {
	if b.cfg.Float16 || b.cfg.BFloat16 {
		return b.opA("Cast", []string{name}, onnx.AttrInt("to", int64(pb.TensorProto_FLOAT)))
	}
	return name
}

// weightMatrix adds a linear layer's weight for y = x·W with W [in, out] and
// returns the value to feed MatMul or Gemm as B. key identifies the weight's
// values (its PyTorch parameter name). torch's constant-folded layout stores
// [in, out] under onnx::MatMul_N; the unfolded one stores the PyTorch [out, in]
// parameter under its own name and transposes it in the graph.
func (b *builder) weightMatrix(key string, in, out int, std float64) string {
	if b.cfg.TransposedWeights {
		return b.foldedWeight([]int{in, out}, normals(b.cfg.Seed, key, in*out, 0, std)) // row-major [in, out]
	}
	// The same values, generated in PyTorch's [out, in] order.
	return b.transpose(b.initializer(key, []int{out, in}, normalsT(b.cfg.Seed, key, in, out, std)), 1, 0)
}

// foldedWeight adds an initializer that torch would have produced by constant
// folding; finish names it onnx::MatMul_N, numbered after every other value
// as torch does.
func (b *builder) foldedWeight(dims []int, data []float32) string {
	name := fmt.Sprintf("%s%d", pendingPrefix, b.pending)
	b.pending++
	return b.initializer(name, dims, data)
}

const pendingPrefix = "\x00folded"

// finish gives the folded weights their onnx::MatMul_N names and returns the graph.
func (b *builder) finish() *pb.GraphProto {
	names := map[string]string{}
	for _, t := range b.g.Initializer {
		if strings.HasPrefix(t.GetName(), pendingPrefix) {
			n := fmt.Sprintf("onnx::MatMul_%d", b.nextSerial())
			names[t.GetName()] = n
			t.Name = proto.String(n)
		}
	}
	for _, n := range b.g.Node {
		for i, in := range n.Input {
			if r, ok := names[in]; ok {
				n.Input[i] = r
			}
		}
	}
	return b.g
}

// Graph inputs and outputs.

func (b *builder) input(name string, elem pb.TensorProto_DataType, dims ...any) string {
	b.g.Input = append(b.g.Input, onnx.TensorInfo(name, elem, dims...))
	return name
}

func (b *builder) output(name string, elem pb.TensorProto_DataType, dims ...any) {
	b.g.Output = append(b.g.Output, onnx.TensorInfo(name, elem, dims...))
}

// Symbolic dimension names, as optimum writes them.
const (
	dimBatch = "batch_size"
	dimSeq   = "sequence_length"
	dimPast  = "past_sequence_length"
	dimTotal = "total_sequence_length"
)
