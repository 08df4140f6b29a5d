package onnx

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// InlineFunctions returns m with every call of a model-local function
// (ModelProto.functions: torch.onnx.dynamo_export's one function per
// module, torchlib's functions) replaced by the function's body, so that
// the rest of onnxslm sees one flat graph. It returns m itself when m has no
// functions; otherwise a new model that shares m's initializers and the
// nodes it did not change, with no functions and no opset import of a
// domain only the functions used.
//
// In the body, the formal inputs and outputs become the call's values;
// every other value and node name gets the call's name as a prefix (made
// unique in the graph); an attribute that refers to a function attribute
// (ref_attr_name) takes the call's value, else the function's default
// (FunctionProto.attribute_proto), else is left out. Calls inside function
// bodies and in subgraphs (If, Loop) are inlined too. Refused, with the
// function named: recursion, an opset import that differs from the model's
// for the same domain, subgraph attributes inside a body.
func InlineFunctions(m *pb.ModelProto) (*pb.ModelProto, error) {
	flat, _, err := InlineFunctionsSites(m)
	return flat, err
}

// CallSite is one call of a local function in the main graph and the nodes
// its inlined body became, in order (nested calls expanded).
type CallSite struct {
	Call  *pb.NodeProto
	Nodes []*pb.NodeProto
}

// InlineFunctionsSites is InlineFunctions that also returns the main
// graph's call sites (what rewrite.RefoldFunctions folds back).
func InlineFunctionsSites(m *pb.ModelProto) (*pb.ModelProto, []CallSite, error) {
	if len(m.GetFunctions()) == 0 || m.GetGraph() == nil {
		return m, nil, nil
	}
	in := &inliner{funcs: map[string]*localFunc{}, names: map[string]bool{}, opsets: map[string]int64{}, sites: &[]CallSite{}}
	for _, o := range m.GetOpsetImport() {
		in.opsets[normDomain(o.GetDomain())] = o.GetVersion()
	}
	opsets := append([]*pb.OperatorSetIdProto(nil), m.GetOpsetImport()...)
	funcDomains := map[string]bool{}
	for _, f := range m.GetFunctions() {
		key := funcKey(f.GetDomain(), f.GetName())
		if in.funcs[key] != nil {
			return nil, nil, fmt.Errorf("function %s: defined twice", key)
		}
		defaults, err := functionDefaults(f)
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: %w", key, err)
		}
		in.funcs[key] = &localFunc{f: f, defaults: defaults}
		funcDomains[normDomain(f.GetDomain())] = true
		for _, o := range f.GetOpsetImport() {
			d := normDomain(o.GetDomain())
			if v, ok := in.opsets[d]; ok {
				if v != o.GetVersion() {
					return nil, nil, fmt.Errorf("function %s imports %s opset %d, the model opset %d: not supported", key, domainName(d), o.GetVersion(), v)
				}
				continue
			}
			in.opsets[d] = o.GetVersion()
			opsets = append(opsets, o)
		}
	}
	g := m.GetGraph()
	in.collect(g)
	nodes, err := in.nodes(g.GetNode(), 0)
	if err != nil {
		return nil, nil, err
	}
	// Drop the imports of domains that only the functions were in.
	used := map[string]bool{}
	var mark func(ns []*pb.NodeProto)
	mark = func(ns []*pb.NodeProto) {
		for _, n := range ns {
			used[normDomain(n.GetDomain())] = true
			for _, a := range n.GetAttribute() {
				for _, sub := range attrGraphs(a) {
					mark(sub.GetNode())
				}
			}
		}
	}
	mark(nodes)
	var keep []*pb.OperatorSetIdProto
	for _, o := range opsets {
		if d := normDomain(o.GetDomain()); !funcDomains[d] || used[d] {
			keep = append(keep, o)
		}
	}
	ng := &pb.GraphProto{
		Node: nodes, Name: g.Name, Initializer: g.Initializer, SparseInitializer: g.SparseInitializer,
		DocString: g.DocString, Input: g.Input, Output: g.Output, ValueInfo: g.ValueInfo,
		QuantizationAnnotation: g.QuantizationAnnotation,
	}
	ng.ProtoReflect().SetUnknown(g.ProtoReflect().GetUnknown())
	nm := &pb.ModelProto{
		IrVersion: m.IrVersion, OpsetImport: keep, ProducerName: m.ProducerName, ProducerVersion: m.ProducerVersion,
		Domain: m.Domain, ModelVersion: m.ModelVersion, DocString: m.DocString, Graph: ng,
		MetadataProps: m.MetadataProps, TrainingInfo: m.TrainingInfo,
	}
	nm.ProtoReflect().SetUnknown(m.ProtoReflect().GetUnknown())
	return nm, *in.sites, nil
}

type localFunc struct {
	f        *pb.FunctionProto
	defaults map[string]*pb.AttributeProto
}

type inliner struct {
	funcs  map[string]*localFunc
	names  map[string]bool // value and node names in use
	opsets map[string]int64
	sites  *[]CallSite // the main graph's calls; nil inside subgraphs
}

// maxInlineDepth bounds nested calls (a function that calls itself).
const maxInlineDepth = 64

func funcKey(domain, name string) string { return normDomain(domain) + "::" + name }

func normDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

func domainName(d string) string {
	if d == "" {
		return "ai.onnx"
	}
	return d
}

func attrGraphs(a *pb.AttributeProto) []*pb.GraphProto {
	gs := append([]*pb.GraphProto(nil), a.GetGraphs()...)
	if a.GetG() != nil {
		gs = append(gs, a.GetG())
	}
	return gs
}

// collect records every value and node name of g and its subgraphs.
func (in *inliner) collect(g *pb.GraphProto) {
	for _, t := range g.GetInitializer() {
		in.names[t.GetName()] = true
	}
	for _, v := range g.GetInput() {
		in.names[v.GetName()] = true
	}
	for _, n := range g.GetNode() {
		in.names[n.GetName()] = true
		for _, o := range n.GetOutput() {
			in.names[o] = true
		}
		for _, a := range n.GetAttribute() {
			for _, sub := range attrGraphs(a) {
				in.collect(sub)
			}
		}
	}
}

// fresh returns base, or base_1, base_2, ... when taken, and takes it.
func (in *inliner) fresh(base string) string {
	name := base
	for i := 1; in.names[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	in.names[name] = true
	return name
}

// nodes returns ns with every call expanded; a node whose subgraphs call a
// function is copied with its subgraphs rewritten.
func (in *inliner) nodes(ns []*pb.NodeProto, depth int) ([]*pb.NodeProto, error) {
	var out []*pb.NodeProto
	for _, n := range ns {
		if lf := in.funcs[funcKey(n.GetDomain(), n.GetOpType())]; lf != nil {
			body, err := in.expand(n, lf, depth)
			if err != nil {
				return nil, err
			}
			if in.sites != nil {
				*in.sites = append(*in.sites, CallSite{Call: n, Nodes: body})
			}
			out = append(out, body...)
			continue
		}
		if !in.callsInside(n) {
			out = append(out, n)
			continue
		}
		c := proto.Clone(n).(*pb.NodeProto)
		sites := in.sites
		in.sites = nil // calls in subgraphs are not the main graph's
		for _, a := range c.GetAttribute() {
			for _, sub := range attrGraphs(a) {
				sn, err := in.nodes(sub.GetNode(), depth)
				if err != nil {
					return nil, err
				}
				sub.Node = sn
			}
		}
		in.sites = sites
		out = append(out, c)
	}
	return out, nil
}

// callsInside reports whether n's subgraphs call a local function.
func (in *inliner) callsInside(n *pb.NodeProto) bool {
	for _, a := range n.GetAttribute() {
		for _, sub := range attrGraphs(a) {
			for _, sn := range sub.GetNode() {
				if in.funcs[funcKey(sn.GetDomain(), sn.GetOpType())] != nil || in.callsInside(sn) {
					return true
				}
			}
		}
	}
	return false
}

// expand returns the body of lf as called by call.
func (in *inliner) expand(call *pb.NodeProto, lf *localFunc, depth int) ([]*pb.NodeProto, error) {
	f := lf.f
	key := funcKey(f.GetDomain(), f.GetName())
	if depth >= maxInlineDepth {
		return nil, fmt.Errorf("function %s: calls nested deeper than %d (recursive?)", key, maxInlineDepth)
	}
	if len(call.GetInput()) > len(f.GetInput()) || len(call.GetOutput()) > len(f.GetOutput()) {
		return nil, fmt.Errorf("node %q calls function %s with %d inputs and %d outputs; it has %d and %d",
			call.GetName(), key, len(call.GetInput()), len(call.GetOutput()), len(f.GetInput()), len(f.GetOutput()))
	}
	prefix := call.GetName()
	if prefix == "" {
		prefix = f.GetName()
	}
	rename := map[string]string{"": ""}
	for i, formal := range f.GetInput() {
		actual := ""
		if i < len(call.GetInput()) {
			actual = call.GetInput()[i]
		}
		rename[formal] = actual
	}
	for i, formal := range f.GetOutput() {
		if i < len(call.GetOutput()) && call.GetOutput()[i] != "" {
			rename[formal] = call.GetOutput()[i]
		}
	}
	val := func(v string) string {
		if r, ok := rename[v]; ok {
			return r
		}
		r := in.fresh(prefix + "/" + v)
		rename[v] = r
		return r
	}
	attrs := map[string]*pb.AttributeProto{}
	for _, a := range call.GetAttribute() {
		attrs[a.GetName()] = a
	}
	var out []*pb.NodeProto
	for _, bn := range f.GetNode() {
		n := &pb.NodeProto{
			Name: proto.String(in.fresh(prefix + "/" + bn.GetName())), OpType: bn.OpType, Domain: bn.Domain,
			DocString: bn.DocString, Input: make([]string, len(bn.GetInput())), Output: make([]string, len(bn.GetOutput())),
		}
		n.ProtoReflect().SetUnknown(bn.ProtoReflect().GetUnknown())
		for i, v := range bn.GetInput() {
			n.Input[i] = val(v)
		}
		for i, v := range bn.GetOutput() {
			n.Output[i] = val(v)
		}
		for _, a := range bn.GetAttribute() {
			if len(attrGraphs(a)) > 0 {
				return nil, fmt.Errorf("function %s: node %q: subgraph attributes inside functions are not supported", key, bn.GetName())
			}
			ref := a.GetRefAttrName()
			if ref == "" {
				n.Attribute = append(n.Attribute, a)
				continue
			}
			src := attrs[ref]
			if src == nil {
				src = lf.defaults[ref]
			}
			if src == nil {
				continue // neither given nor defaulted: the op's own default applies
			}
			c := proto.Clone(src).(*pb.AttributeProto)
			c.Name = proto.String(a.GetName())
			c.RefAttrName = nil
			n.Attribute = append(n.Attribute, c)
		}
		if sub := in.funcs[funcKey(n.GetDomain(), n.GetOpType())]; sub != nil {
			body, err := in.expand(n, sub, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, body...)
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// functionDefaults reads FunctionProto.attribute_proto (field 11, IR 9:
// attributes with default values), which the generated bindings (ONNX
// 1.12) keep as unknown fields.
func functionDefaults(f *pb.FunctionProto) (map[string]*pb.AttributeProto, error) {
	out := map[string]*pb.AttributeProto{}
	raw := []byte(f.ProtoReflect().GetUnknown())
	for len(raw) > 0 {
		num, typ, l := protowire.ConsumeTag(raw)
		if l < 0 {
			return nil, fmt.Errorf("unknown fields: %w", protowire.ParseError(l))
		}
		raw = raw[l:]
		if num != 11 || typ != protowire.BytesType {
			l = protowire.ConsumeFieldValue(num, typ, raw)
			if l < 0 {
				return nil, fmt.Errorf("unknown fields: %w", protowire.ParseError(l))
			}
			raw = raw[l:]
			continue
		}
		b, l := protowire.ConsumeBytes(raw)
		if l < 0 {
			return nil, fmt.Errorf("attribute_proto: %w", protowire.ParseError(l))
		}
		raw = raw[l:]
		a := &pb.AttributeProto{}
		if err := proto.Unmarshal(b, a); err != nil {
			return nil, fmt.Errorf("attribute_proto: %w", err)
		}
		out[a.GetName()] = a
	}
	return out, nil
}
