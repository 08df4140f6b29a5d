// Writing the IR back as a ModelProto, and copying it.

package graph

import (
	"slices"
	"sort"

	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// Model writes the graph as a new ModelProto. Fields of the source model other than
// the graph and metadata_props are copied (shallowly); nodes are written in the
// current order (call Sort first for a topological one); attributes, tensors and
// types are shared with the source model.
func (g *Graph) Model() *pb.ModelProto {
	src := g.src
	m := &pb.ModelProto{
		IrVersion:       src.IrVersion,
		OpsetImport:     src.OpsetImport,
		ProducerName:    src.ProducerName,
		ProducerVersion: src.ProducerVersion,
		Domain:          src.Domain,
		ModelVersion:    src.ModelVersion,
		DocString:       src.DocString,
		MetadataProps:   g.Meta,
		TrainingInfo:    src.TrainingInfo,
		Functions:       src.Functions,
	}
	m.ProtoReflect().SetUnknown(src.ProtoReflect().GetUnknown())
	sg := src.GetGraph()
	gp := &pb.GraphProto{
		Name:                   proto.String(g.Name),
		DocString:              sg.DocString,
		QuantizationAnnotation: sg.QuantizationAnnotation,
	}
	if sg.Name == nil && g.Name == "" {
		gp.Name = nil
	}
	gp.ProtoReflect().SetUnknown(sg.ProtoReflect().GetUnknown())
	gp.Node = make([]*pb.NodeProto, len(g.Nodes))
	for i, n := range g.Nodes {
		gp.Node[i] = n.proto()
	}
	gp.Initializer = make([]*pb.TensorProto, len(g.inits))
	for i, v := range g.inits {
		gp.Initializer[i] = renamedTensor(v.Init, v.Name)
	}
	for _, v := range g.Inputs {
		gp.Input = append(gp.Input, renamedInfo(v.Info, v.Name))
	}
	for _, v := range g.Outputs {
		gp.Output = append(gp.Output, renamedInfo(v.Info, v.Name))
	}
	var vis []*Value
	for _, v := range g.values {
		if v.vinfo && v.Info != nil && !v.Input && !v.output && v.Init == nil && v.Producer != nil {
			vis = append(vis, v)
		}
	}
	sort.Slice(vis, func(i, j int) bool {
		if vis[i].vorder != vis[j].vorder {
			return vis[i].vorder < vis[j].vorder
		}
		return vis[i].Name < vis[j].Name
	})
	for _, v := range vis {
		gp.ValueInfo = append(gp.ValueInfo, renamedInfo(v.Info, v.Name))
	}
	m.Graph = gp
	return m
}

func (n *Node) proto() *pb.NodeProto {
	np := &pb.NodeProto{
		Input:     make([]string, len(n.Inputs)),
		Output:    make([]string, len(n.Outputs)),
		OpType:    proto.String(n.Op),
		Attribute: n.Attrs,
	}
	if n.Name != "" {
		np.Name = proto.String(n.Name)
	}
	if n.Domain != "" {
		np.Domain = proto.String(n.Domain)
	}
	if n.Doc != "" {
		np.DocString = proto.String(n.Doc)
	}
	if len(n.Unknown) > 0 {
		np.ProtoReflect().SetUnknown(n.Unknown)
	}
	for i, v := range n.Inputs {
		if v != nil {
			np.Input[i] = v.Name
		}
	}
	for i, v := range n.Outputs {
		if v != nil {
			np.Output[i] = v.Name
		}
	}
	return np
}

// renamedTensor returns t when it is already named name, else a shallow copy named
// name that shares t's data.
func renamedTensor(t *pb.TensorProto, name string) *pb.TensorProto {
	if t.GetName() == name {
		return t
	}
	c := &pb.TensorProto{
		Dims:         t.Dims,
		DataType:     t.DataType,
		Segment:      t.Segment,
		FloatData:    t.FloatData,
		Int32Data:    t.Int32Data,
		StringData:   t.StringData,
		Int64Data:    t.Int64Data,
		Name:         proto.String(name),
		DocString:    t.DocString,
		RawData:      t.RawData,
		ExternalData: t.ExternalData,
		DataLocation: t.DataLocation,
		DoubleData:   t.DoubleData,
		Uint64Data:   t.Uint64Data,
	}
	c.ProtoReflect().SetUnknown(t.ProtoReflect().GetUnknown())
	return c
}

// renamedInfo returns vi named name, copying it when its name differs (vi may be nil:
// a bare ValueInfoProto with only the name is returned).
func renamedInfo(vi *pb.ValueInfoProto, name string) *pb.ValueInfoProto {
	if vi == nil {
		return &pb.ValueInfoProto{Name: proto.String(name)}
	}
	if vi.GetName() == name {
		return vi
	}
	c := &pb.ValueInfoProto{Name: proto.String(name), Type: vi.Type, DocString: vi.DocString}
	c.ProtoReflect().SetUnknown(vi.ProtoReflect().GetUnknown())
	return c
}

// Clone returns an independent copy of the IR (nodes and values are copied; protos
// stay shared).
func (g *Graph) Clone() *Graph {
	c := &Graph{Name: g.Name, src: g.src, nextSeq: g.nextSeq, Meta: slices.Clone(g.Meta),
		values: make(map[string]*Value, len(g.values))}
	vmap := make(map[*Value]*Value, len(g.values))
	cv := func(v *Value) *Value {
		if v == nil {
			return nil
		}
		if x, ok := vmap[v]; ok {
			return x
		}
		x := &Value{Name: v.Name, Init: v.Init, Input: v.Input, Info: v.Info, output: v.output, vinfo: v.vinfo, vorder: v.vorder}
		vmap[v] = x
		c.values[x.Name] = x
		return x
	}
	for _, v := range g.values {
		cv(v)
	}
	nmap := make(map[*Node]*Node, len(g.Nodes))
	for _, n := range g.Nodes {
		x := &Node{Name: n.Name, Op: n.Op, Domain: n.Domain, Attrs: n.Attrs, Doc: n.Doc, Index: n.Index, Unknown: n.Unknown, seq: n.seq}
		x.Inputs = make([]*Value, len(n.Inputs))
		for i, v := range n.Inputs {
			x.Inputs[i] = cv(v)
		}
		x.Outputs = make([]*Value, len(n.Outputs))
		for i, v := range n.Outputs {
			x.Outputs[i] = cv(v)
			if v != nil {
				x.Outputs[i].Producer = x
			}
		}
		for _, v := range n.Implicit {
			x.Implicit = append(x.Implicit, cv(v))
		}
		nmap[n] = x
		c.Nodes = append(c.Nodes, x)
	}
	for v, x := range vmap {
		x.Consumers = make([]*Node, 0, len(v.Consumers))
		for _, n := range v.Consumers {
			if xn, ok := nmap[n]; ok {
				x.Consumers = append(x.Consumers, xn)
			}
		}
	}
	for _, v := range g.inits {
		c.inits = append(c.inits, vmap[v])
	}
	for _, v := range g.Inputs {
		c.Inputs = append(c.Inputs, vmap[v])
	}
	for _, v := range g.Outputs {
		c.Outputs = append(c.Outputs, vmap[v])
	}
	return c
}
