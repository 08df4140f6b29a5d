package rewrite

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// RefoldFunctions writes out, a rewrite of the flat graph that
// onnx.InlineFunctions made of orig, back in orig's format: each of orig's
// function calls whose inlined nodes out kept unchanged (same ops and
// attributes; their weights and their inputs and outputs may be other
// values) becomes the call again, with its values mapped; a call none of
// whose nodes is left (a removed layer) is gone; orig's functions still
// called are kept, with their opset imports. It fails, and the caller
// writes out flat, when a call's nodes are partly kept or changed, or when a
// value inside a body is read from outside it.
func RefoldFunctions(orig, out *pb.ModelProto) (*pb.ModelProto, error) {
	if len(orig.GetFunctions()) == 0 {
		return out, nil
	}
	_, sites, err := onnx.InlineFunctionsSites(orig)
	if err != nil {
		return nil, err
	}
	byName := map[string]int{}
	for i, n := range out.GetGraph().GetNode() {
		if _, dup := byName[n.GetName()]; dup {
			return nil, fmt.Errorf("refold: node name %q twice in the rewritten graph", n.GetName())
		}
		byName[n.GetName()] = i
	}
	inSite := map[int]bool{}
	var calls []*pb.NodeProto
	for _, s := range sites {
		kept := 0
		for _, bn := range s.Nodes {
			if _, ok := byName[bn.GetName()]; ok {
				kept++
			}
		}
		if kept == 0 {
			continue // the call's layer was removed
		}
		if kept != len(s.Nodes) {
			return nil, fmt.Errorf("refold: call %q: %d of its %d nodes kept", s.Call.GetName(), kept, len(s.Nodes))
		}
		call, err := refoldCall(s, out, byName, inSite)
		if err != nil {
			return nil, err
		}
		calls = append(calls, call)
	}
	// Values inside a kept body must not be read from outside it.
	internal := map[string]bool{}
	for i, n := range out.GetGraph().GetNode() {
		if inSite[i] {
			for _, o := range n.GetOutput() {
				internal[o] = true
			}
		}
	}
	for _, c := range calls {
		for _, o := range c.GetOutput() {
			delete(internal, o)
		}
	}
	g := out.GetGraph()
	var nodes []*pb.NodeProto
	for i, n := range g.GetNode() {
		if inSite[i] {
			continue
		}
		for _, in := range n.GetInput() {
			if internal[in] {
				return nil, fmt.Errorf("refold: node %q reads %q from inside a function body", n.GetName(), in)
			}
		}
		nodes = append(nodes, n)
	}
	for _, o := range g.GetOutput() {
		if internal[o.GetName()] {
			return nil, fmt.Errorf("refold: graph output %q is inside a function body", o.GetName())
		}
	}
	nodes = append(nodes, calls...)
	ng := &pb.GraphProto{Node: nodes, Name: g.Name, Initializer: g.Initializer, SparseInitializer: g.SparseInitializer,
		DocString: g.DocString, Input: g.Input, Output: g.Output, ValueInfo: g.ValueInfo, QuantizationAnnotation: g.QuantizationAnnotation}
	ng.ProtoReflect().SetUnknown(g.ProtoReflect().GetUnknown())
	m := &pb.ModelProto{IrVersion: out.IrVersion, ProducerName: out.ProducerName, ProducerVersion: out.ProducerVersion,
		Domain: out.Domain, ModelVersion: out.ModelVersion, DocString: out.DocString, Graph: ng,
		MetadataProps: out.MetadataProps, TrainingInfo: out.TrainingInfo}
	m.ProtoReflect().SetUnknown(out.ProtoReflect().GetUnknown())
	m.Functions = usedFunctions(orig.GetFunctions(), nodes)
	m.OpsetImport = append([]*pb.OperatorSetIdProto(nil), out.GetOpsetImport()...)
	have := map[string]bool{}
	for _, o := range m.OpsetImport {
		have[o.GetDomain()] = true
	}
	for _, o := range orig.GetOpsetImport() {
		if !have[o.GetDomain()] {
			m.OpsetImport = append(m.OpsetImport, o)
		}
	}
	// Calls were appended last: sort into a topological order.
	ir, err := graph.FromModel(m)
	if err != nil {
		return nil, fmt.Errorf("refold: %w", err)
	}
	if err := ir.Sort(); err != nil {
		return nil, fmt.Errorf("refold: %w", err)
	}
	return ir.Model(), nil
}

// refoldCall checks that out kept site's nodes as inlined and returns the
// call with its inputs and outputs mapped to out's values; it marks the
// nodes in inSite.
func refoldCall(s onnx.CallSite, out *pb.ModelProto, byName map[string]int, inSite map[int]bool) (*pb.NodeProto, error) {
	val := map[string]string{}
	bind := func(from, to string) error {
		if from == "" && to == "" {
			return nil
		}
		if v, ok := val[from]; ok && v != to {
			return fmt.Errorf("value %q is %q and %q in the rewritten graph", from, v, to)
		}
		val[from] = to
		return nil
	}
	for _, bn := range s.Nodes {
		i := byName[bn.GetName()]
		n := out.GetGraph().GetNode()[i]
		inSite[i] = true
		if n.GetOpType() != bn.GetOpType() || n.GetDomain() != bn.GetDomain() || len(n.GetInput()) != len(bn.GetInput()) ||
			len(n.GetOutput()) != len(bn.GetOutput()) || !onnx.EqualMessages(n.GetAttribute(), bn.GetAttribute()) {
			return nil, fmt.Errorf("refold: call %q: node %q was changed", s.Call.GetName(), n.GetName())
		}
		for k, x := range bn.GetInput() {
			if err := bind(x, n.GetInput()[k]); err != nil {
				return nil, fmt.Errorf("refold: call %q: %w", s.Call.GetName(), err)
			}
		}
		for k, x := range bn.GetOutput() {
			if err := bind(x, n.GetOutput()[k]); err != nil {
				return nil, fmt.Errorf("refold: call %q: %w", s.Call.GetName(), err)
			}
		}
	}
	c := proto.Clone(s.Call).(*pb.NodeProto)
	for k, x := range c.GetInput() {
		if v, ok := val[x]; ok {
			c.Input[k] = v
		} else if x != "" {
			return nil, fmt.Errorf("refold: call %q: input %q is read by no node of its body", s.Call.GetName(), x)
		}
	}
	for k, x := range c.GetOutput() {
		if v, ok := val[x]; ok {
			c.Output[k] = v
		} else if x != "" {
			return nil, fmt.Errorf("refold: call %q: output %q is written by no node of its body", s.Call.GetName(), x)
		}
	}
	return c, nil
}

// usedFunctions returns the functions of fs that nodes call, directly or
// through other functions, in fs's order.
func usedFunctions(fs []*pb.FunctionProto, nodes []*pb.NodeProto) []*pb.FunctionProto {
	key := func(domain, name string) string { return domain + "::" + name }
	index := map[string]*pb.FunctionProto{}
	for _, f := range fs {
		index[key(f.GetDomain(), f.GetName())] = f
	}
	used := map[string]bool{}
	var visit func(ns []*pb.NodeProto)
	visit = func(ns []*pb.NodeProto) {
		for _, n := range ns {
			k := key(n.GetDomain(), n.GetOpType())
			if f := index[k]; f != nil && !used[k] {
				used[k] = true
				visit(f.GetNode())
			}
		}
	}
	visit(nodes)
	var out []*pb.FunctionProto
	for _, f := range fs {
		if used[key(f.GetDomain(), f.GetName())] {
			out = append(out, f)
		}
	}
	return out
}
