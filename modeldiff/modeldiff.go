// Package modeldiff compares two ONNX models: interface, nodes, initializers,
// metadata, opsets and sizes, and, when both are decoder stacks, their layers:
// which were removed, where each kept layer came from and which were fused.
package modeldiff

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Diff is what differs between model A and model B. Lists are never nil, so
// that the JSON form always has every key. Tensors are compared by value, not
// by encoding: the same model stored inline or with external data is
// Identical (its Summary's files differ).
type Diff struct {
	A Summary `json:"a"`
	B Summary `json:"b"`
	// Identical reports that none of the fields below Identical (Decoder
	// aside) holds a difference.
	Identical bool `json:"identical"`
	// Header lists the model and graph fields that differ: ir_version,
	// producer_name, producer_version, domain, model_version, doc_string,
	// graph_name, graph_doc_string.
	Header []FieldChange `json:"header"`
	// Opsets lists the operator-set domains imported with different versions.
	Opsets       []OpsetChange    `json:"opsets"`
	Inputs       ValueDiff        `json:"inputs"`
	Outputs      ValueDiff        `json:"outputs"`
	Nodes        NodeDiff         `json:"nodes"`
	Initializers InitializerDiff  `json:"initializers"`
	Metadata     []MetadataChange `json:"metadata"`
	// Other names further parts that differ and are not itemized:
	// "value_info", "functions", "sparse_initializers", "training_info",
	// "node order".
	Other []string `json:"other"`
	// Decoder compares the layers; nil unless both models are decoder stacks.
	Decoder *DecoderDiff `json:"decoder,omitempty"`
	// Widths lists the layers whose MLP width changed; nil when none did (or
	// A is not a decoder stack).
	Widths *WidthDiff `json:"mlp_widths,omitempty"`
}

// Summary describes one model.
type Summary struct {
	// Path is the model file ("" for a model not read from a file).
	Path string `json:"path"`
	// Files are the model file and its external-data files with their sizes.
	Files []File `json:"files"`
	// FileBytes is the sum of Files' sizes; for a model not read from a file,
	// the size of its serialized proto.
	FileBytes       int64   `json:"file_bytes"`
	IRVersion       int64   `json:"ir_version"`
	ProducerName    string  `json:"producer_name"`
	ProducerVersion string  `json:"producer_version"`
	Opsets          []Opset `json:"opsets"`
	Nodes           int     `json:"nodes"`
	Initializers    int     `json:"initializers"`
	// Parameters and ParameterBytes count the floating-point initializers.
	Parameters     int64 `json:"parameters"`
	ParameterBytes int64 `json:"parameter_bytes"`
	// Layers is the number of decoder layers, 0 when the model is not a
	// decoder stack; NotDecoder then says why.
	Layers     int    `json:"layers"`
	NotDecoder string `json:"not_decoder,omitempty"`
}

// File is one file of a model on disk.
type File struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// Opset is one imported operator set; Domain "ai.onnx" is the default domain.
type Opset struct {
	Domain  string `json:"domain"`
	Version int64  `json:"version"`
}

// FieldChange is a scalar field that differs.
type FieldChange struct {
	Field string `json:"field"`
	A     string `json:"a"`
	B     string `json:"b"`
}

// OpsetChange is a domain imported at different versions; 0 means not
// imported.
type OpsetChange struct {
	Domain string `json:"domain"`
	A      int64  `json:"a"`
	B      int64  `json:"b"`
}

// Value is a graph input or output; Dim one of its axes.
type (
	Value = onnx.Value
	Dim   = onnx.Dim
)

// Lists is what each comparison by name holds: the items only in B (Added),
// those only in A (Removed) and those of both that differ (Changed).
type Lists[T, C any] struct {
	Added   []T `json:"added"`
	Removed []T `json:"removed"`
	Changed []C `json:"changed"`
}

// emptyLists returns Lists whose lists are empty, not nil, so that the JSON
// form has every key.
func emptyLists[T, C any]() Lists[T, C] {
	return Lists[T, C]{Added: []T{}, Removed: []T{}, Changed: []C{}}
}

// ValueDiff lists inputs (or outputs) only in A, only in B, and those with the
// same name whose dtype or shape differ.
type ValueDiff = Lists[Value, ValueChange]

// ValueChange is a value of both models whose type or shape differs.
type ValueChange struct {
	Name string `json:"name"`
	A    Value  `json:"a"`
	B    Value  `json:"b"`
}

// NodeDiff compares the graphs' nodes. Nodes are matched by name; an unnamed
// node by its op type and first output.
type NodeDiff struct {
	// Ops are the op types whose node count differs (a histogram difference),
	// sorted by op type.
	Ops []OpCount `json:"ops"`
	Lists[Node, NodeChange]
}

// OpCount is the number of nodes of one op type ("domain:Op" outside the
// default domain) in A and in B.
type OpCount struct {
	Op string `json:"op"`
	A  int    `json:"a"`
	B  int    `json:"b"`
}

// Node is a graph node.
type Node struct {
	Name    string   `json:"name"`
	Op      string   `json:"op"`
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`
}

// NodeChange is a node of both models that differs; Parts says how: "op",
// "inputs", "outputs", "attributes", "doc_string".
type NodeChange struct {
	Name  string   `json:"name"`
	Parts []string `json:"parts"`
	A     Node     `json:"a"`
	B     Node     `json:"b"`
}

// InitializerDiff compares the initializers (by name).
type InitializerDiff struct {
	Lists[Tensor, TensorChange]
	// Replaced pairs a removed initializer with an added one that a node of
	// both models reads in its place (a merged weight under a new name).
	// Both also appear in Removed and Added.
	Replaced []Replacement `json:"replaced"`
}

// Tensor describes an initializer.
type Tensor struct {
	Name     string  `json:"name"`
	DType    string  `json:"dtype"`
	Dims     []int64 `json:"dims"`
	Elements int64   `json:"elements"`
}

// TensorChange is an initializer of both models with a different dtype,
// shape or values.
type TensorChange struct {
	Name string `json:"name"`
	A    Tensor `json:"a"`
	B    Tensor `json:"b"`
	Change
}

// Change measures how much a tensor's values changed. Both are nil when
// the shapes differ or the values are not numbers (a change of numeric dtype
// alone, such as float32 → float16, is measured).
type Change struct {
	// RelChange is ‖b − a‖ / ‖a‖ (L2 norms over all elements); nil when ‖a‖ = 0.
	RelChange *float64 `json:"rel_change"`
	// AbsChange is ‖b − a‖.
	AbsChange *float64 `json:"abs_change"`
}

// Replacement is an initializer of A that a node reads in the input where B's
// same node reads a new initializer.
type Replacement struct {
	A     Tensor `json:"a"`
	B     Tensor `json:"b"`
	Node  string `json:"node"`
	Input int    `json:"input"`
	Change
}

// MetadataChange is a metadata_props key whose value differs; A (B) is nil
// when A (B) lacks the key.
type MetadataChange struct {
	Key string  `json:"key"`
	A   *string `json:"a"`
	B   *string `json:"b"`
}

// Compare returns what differs between a and b. Neither is modified.
func Compare(a, b *onnx.Model) (*Diff, error) {
	if a == nil || b == nil || a.Proto == nil || b.Proto == nil {
		return nil, fmt.Errorf("compare: a model is missing")
	}
	d := &Diff{
		Header:   []FieldChange{},
		Opsets:   []OpsetChange{},
		Metadata: []MetadataChange{},
		Other:    []string{},
	}
	var err error
	if d.A, err = summarize(a); err != nil {
		return nil, err
	}
	if d.B, err = summarize(b); err != nil {
		return nil, err
	}
	pa, pbm := a.Proto, b.Proto
	d.Header = header(pa, pbm)
	d.Opsets = opsetChanges(d.A.Opsets, d.B.Opsets)
	d.Inputs = valueDiff(graphInputs(pa.GetGraph()), graphInputs(pbm.GetGraph()))
	d.Outputs = valueDiff(pa.GetGraph().GetOutput(), pbm.GetGraph().GetOutput())
	ta, tb := newTensors(pa), newTensors(pbm)
	var order bool
	d.Nodes, order = nodeDiff(pa.GetGraph().GetNode(), pbm.GetGraph().GetNode())
	if d.Initializers, err = initializerDiff(pa.GetGraph(), pbm.GetGraph(), ta, tb, d.Nodes.Changed); err != nil {
		return nil, err
	}
	d.Metadata = metadataDiff(pa.GetMetadataProps(), pbm.GetMetadataProps())
	d.Other = otherDiff(pa, pbm, order)
	d.Identical = len(d.Header) == 0 && len(d.Opsets) == 0 && d.Inputs.empty() && d.Outputs.empty() &&
		d.Nodes.empty() && d.Initializers.empty() && len(d.Metadata) == 0 && len(d.Other) == 0

	sa, errA := discover.Find(pa)
	sb, errB := discover.Find(pbm)
	if errA != nil {
		d.A.NotDecoder = errA.Error()
	} else {
		d.A.Layers = sa.NumLayers()
	}
	if errB != nil {
		d.B.NotDecoder = errB.Error()
	} else {
		d.B.Layers = sb.NumLayers()
	}
	if errA == nil && errB == nil {
		if d.Decoder, err = decoderDiff(sa, sb, ta, tb, pbm.GetMetadataProps()); err != nil {
			return nil, err
		}
		d.Widths = widthDiff(sa, sb, d.Decoder.KeptFrom, nil)
	} else if errA == nil {
		d.Widths = widthDiff(sa, nil, nil, pbm.GetMetadataProps())
	}
	return d, nil
}

func (l Lists[T, C]) empty() bool { return len(l.Added)+len(l.Removed)+len(l.Changed) == 0 }
func (n NodeDiff) empty() bool    { return len(n.Ops) == 0 && n.Lists.empty() }

func summarize(m *onnx.Model) (Summary, error) {
	p := m.Proto
	s := Summary{
		Path:            m.Path,
		Files:           []File{},
		IRVersion:       p.GetIrVersion(),
		ProducerName:    p.GetProducerName(),
		ProducerVersion: p.GetProducerVersion(),
		Opsets:          []Opset{},
		Nodes:           len(p.GetGraph().GetNode()),
		Initializers:    len(p.GetGraph().GetInitializer()),
	}
	for _, o := range p.GetOpsetImport() {
		s.Opsets = append(s.Opsets, Opset{Domain: domainName(o.GetDomain()), Version: o.GetVersion()})
	}
	s.Parameters, s.ParameterBytes = onnx.Parameters(p)
	if m.Path == "" {
		s.FileBytes = int64(proto.Size(p))
		return s, nil
	}
	for _, f := range m.InputFiles() {
		fi, err := os.Stat(f)
		if err != nil {
			return Summary{}, fmt.Errorf("size of %s: %w", f, err)
		}
		s.Files = append(s.Files, File{Path: f, Bytes: fi.Size()})
		s.FileBytes += fi.Size()
	}
	return s, nil
}

func domainName(d string) string {
	if d == "" {
		return "ai.onnx"
	}
	return d
}

func header(a, b *pb.ModelProto) []FieldChange {
	out := []FieldChange{}
	add := func(field, x, y string) {
		if x != y {
			out = append(out, FieldChange{Field: field, A: x, B: y})
		}
	}
	add("ir_version", strconv.FormatInt(a.GetIrVersion(), 10), strconv.FormatInt(b.GetIrVersion(), 10))
	add("producer_name", a.GetProducerName(), b.GetProducerName())
	add("producer_version", a.GetProducerVersion(), b.GetProducerVersion())
	add("domain", a.GetDomain(), b.GetDomain())
	add("model_version", strconv.FormatInt(a.GetModelVersion(), 10), strconv.FormatInt(b.GetModelVersion(), 10))
	add("doc_string", a.GetDocString(), b.GetDocString())
	add("graph_name", a.GetGraph().GetName(), b.GetGraph().GetName())
	add("graph_doc_string", a.GetGraph().GetDocString(), b.GetGraph().GetDocString())
	return out
}

func opsetChanges(a, b []Opset) []OpsetChange {
	va, vb := map[string]int64{}, map[string]int64{}
	var domains []string
	for _, o := range a {
		if _, ok := va[o.Domain]; !ok {
			domains = append(domains, o.Domain)
		}
		va[o.Domain] = o.Version
	}
	for _, o := range b {
		if _, ok := va[o.Domain]; !ok {
			if _, ok := vb[o.Domain]; !ok {
				domains = append(domains, o.Domain)
			}
		}
		vb[o.Domain] = o.Version
	}
	sort.Strings(domains)
	out := []OpsetChange{}
	for _, dom := range domains {
		if va[dom] != vb[dom] {
			out = append(out, OpsetChange{Domain: dom, A: va[dom], B: vb[dom]})
		}
	}
	return out
}

// graphInputs lists the graph's inputs without initializers (IR < 4 lists
// initializers among the inputs).
func graphInputs(g *pb.GraphProto) []*pb.ValueInfoProto {
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var out []*pb.ValueInfoProto
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] {
			out = append(out, v)
		}
	}
	return out
}

func valueDiff(a, b []*pb.ValueInfoProto) ValueDiff {
	d := emptyLists[Value, ValueChange]()
	inA := map[string]Value{}
	for _, v := range a {
		inA[v.GetName()] = describeValue(v)
	}
	inB := map[string]bool{}
	for _, v := range b {
		vb := describeValue(v)
		inB[vb.Name] = true
		va, ok := inA[vb.Name]
		switch {
		case !ok:
			d.Added = append(d.Added, vb)
		case !sameValue(va, vb):
			d.Changed = append(d.Changed, ValueChange{Name: vb.Name, A: va, B: vb})
		}
	}
	for _, v := range a {
		if !inB[v.GetName()] {
			d.Removed = append(d.Removed, inA[v.GetName()])
		}
	}
	return d
}

func sameValue(a, b Value) bool {
	return a.DType == b.DType && (a.Shape == nil) == (b.Shape == nil) && slices.Equal(a.Shape, b.Shape)
}

func describeValue(v *pb.ValueInfoProto) Value { return onnx.DescribeValue(v) }

func metadataDiff(a, b []*pb.StringStringEntryProto) []MetadataChange {
	ma, mb := map[string]string{}, map[string]string{}
	for _, kv := range a {
		ma[kv.GetKey()] = kv.GetValue()
	}
	for _, kv := range b {
		mb[kv.GetKey()] = kv.GetValue()
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	out := []MetadataChange{}
	for _, k := range sorted {
		va, okA := ma[k]
		vb, okB := mb[k]
		if okA == okB && va == vb {
			continue
		}
		c := MetadataChange{Key: k}
		if okA {
			c.A = &va
		}
		if okB {
			c.B = &vb
		}
		out = append(out, c)
	}
	return out
}

// otherDiff names the parts that differ and that Diff does not itemize.
func otherDiff(a, b *pb.ModelProto, nodeOrder bool) []string {
	out := []string{}
	ga, gb := a.GetGraph(), b.GetGraph()
	if !onnx.EqualMessages(ga.GetValueInfo(), gb.GetValueInfo()) {
		out = append(out, "value_info")
	}
	if !onnx.EqualMessages(a.GetFunctions(), b.GetFunctions()) {
		out = append(out, "functions")
	}
	if !onnx.EqualMessages(ga.GetSparseInitializer(), gb.GetSparseInitializer()) {
		out = append(out, "sparse_initializers")
	}
	if !onnx.EqualMessages(a.GetTrainingInfo(), b.GetTrainingInfo()) {
		out = append(out, "training_info")
	}
	if nodeOrder {
		out = append(out, "node order")
	}
	return out
}
