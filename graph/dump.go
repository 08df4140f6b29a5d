package graph

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Dump writes a compact, deterministic text form of the graph, one line per input,
// initializer, node and output, in the current node order:
//
//	in   input_ids int64[batch,seq]
//	init w0 float32[128,128]
//	node /l0/Add: h1 = Add(h0, a0)
//	out  logits float32[batch,seq,256]
//	meta onnxslm.method = slm
//
// Small constant tensors (up to 8 elements) are printed with their values; larger
// ones by type and shape only. Golden files of rewritten models use this form.
func (g *Graph) Dump(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %q\n", g.Name)
	for _, v := range g.Inputs {
		if v.Init == nil {
			fmt.Fprintf(&b, "in   %s %s\n", v.Name, infoString(v.Info))
		}
	}
	for _, v := range g.inits {
		fmt.Fprintf(&b, "init %s %s\n", v.Name, tensorString(v.Init))
	}
	for _, n := range g.Nodes {
		b.WriteString("node ")
		if n.Name != "" {
			b.WriteString(n.Name)
			b.WriteString(": ")
		}
		writeNames(&b, n.Outputs)
		b.WriteString(" = ")
		if n.Domain != "" {
			b.WriteString(n.Domain)
			b.WriteString(".")
		}
		b.WriteString(n.Op)
		b.WriteString("(")
		writeNames(&b, n.Inputs)
		b.WriteString(")")
		for _, a := range n.Attrs {
			b.WriteString(" ")
			b.WriteString(a.GetName())
			b.WriteString("=")
			b.WriteString(attrString(a))
		}
		if len(n.Implicit) > 0 {
			b.WriteString(" implicit(")
			writeNames(&b, n.Implicit)
			b.WriteString(")")
		}
		b.WriteString("\n")
	}
	for _, v := range g.Outputs {
		fmt.Fprintf(&b, "out  %s %s\n", v.Name, infoString(v.Info))
	}
	for _, kv := range g.Meta {
		fmt.Fprintf(&b, "meta %s = %s\n", kv.GetKey(), kv.GetValue())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeNames(b *strings.Builder, vs []*Value) {
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		if v == nil {
			b.WriteString("_")
		} else {
			b.WriteString(v.Name)
		}
	}
}

func elemName(dt int32) string { return onnx.DTypeName(pb.TensorProto_DataType(dt)) }

func infoString(vi *pb.ValueInfoProto) string {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return "?"
	}
	var dims []string
	for _, d := range tt.GetShape().GetDim() {
		switch {
		case d.GetDimParam() != "":
			dims = append(dims, d.GetDimParam())
		case d.Value != nil:
			dims = append(dims, strconv.FormatInt(d.GetDimValue(), 10))
		default:
			dims = append(dims, "?")
		}
	}
	if tt.GetShape() == nil {
		return elemName(tt.GetElemType())
	}
	return elemName(tt.GetElemType()) + "[" + strings.Join(dims, ",") + "]"
}

func tensorString(t *pb.TensorProto) string {
	dims := make([]string, len(t.GetDims()))
	for i, d := range t.GetDims() {
		dims[i] = strconv.FormatInt(d, 10)
	}
	s := elemName(t.GetDataType()) + "[" + strings.Join(dims, ",") + "]"
	if NumElements(t.GetDims()) > 8 {
		return s
	}
	switch pb.TensorProto_DataType(t.GetDataType()) {
	case pb.TensorProto_FLOAT:
		if fs, err := onnx.Float32s(t); err == nil {
			parts := make([]string, len(fs))
			for i, f := range fs {
				parts[i] = formatFloat(float64(f))
			}
			return s + "{" + strings.Join(parts, ",") + "}"
		}
	case pb.TensorProto_INT64, pb.TensorProto_INT32:
		if xs, err := onnx.Int64s(t); err == nil {
			parts := make([]string, len(xs))
			for i, x := range xs {
				parts[i] = strconv.FormatInt(x, 10)
			}
			return s + "{" + strings.Join(parts, ",") + "}"
		}
	}
	return s
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', 6, 32)
}

func attrString(a *pb.AttributeProto) string {
	switch a.GetType() {
	case pb.AttributeProto_FLOAT:
		return formatFloat(float64(a.GetF()))
	case pb.AttributeProto_INT:
		return strconv.FormatInt(a.GetI(), 10)
	case pb.AttributeProto_STRING:
		return strconv.Quote(string(a.GetS()))
	case pb.AttributeProto_TENSOR:
		return tensorString(a.GetT())
	case pb.AttributeProto_GRAPH:
		return fmt.Sprintf("<graph %q, %d nodes>", a.GetG().GetName(), len(a.GetG().GetNode()))
	case pb.AttributeProto_FLOATS:
		parts := make([]string, len(a.GetFloats()))
		for i, f := range a.GetFloats() {
			parts[i] = formatFloat(float64(f))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case pb.AttributeProto_INTS:
		parts := make([]string, len(a.GetInts()))
		for i, x := range a.GetInts() {
			parts[i] = strconv.FormatInt(x, 10)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case pb.AttributeProto_STRINGS:
		parts := make([]string, len(a.GetStrings()))
		for i, s := range a.GetStrings() {
			parts[i] = strconv.Quote(string(s))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return "<" + strings.ToLower(a.GetType().String()) + ">"
}
