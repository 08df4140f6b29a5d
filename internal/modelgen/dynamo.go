package modelgen

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Models in the layout of torch.onnx.export(..., dynamo=True) (torch ≥ 2.5:
// torch/onnx/_internal/exporter/_core.py, onnxscript's torchlib, then
// onnxscript.optimizer.optimize_ir) and of the older torch.onnx.dynamo_export
// (torch 2.1–2.4: one local function per module). docs/design/formats.md
// section 4 lists what each part follows. The weights are those of the plain
// Llama twin (DynamoConfig.Twin).

// DynamoConfig describes a dynamo export of a Llama decoder with a KV cache.
type DynamoConfig struct {
	Layers, Hidden, Heads int
	KVHeads               int // default Heads
	FFN                   int // default 2·Hidden
	Vocab                 int // default 256
	Seed                  int64
	// Opset is 18 (default: torchlib's opset, RMSNorm and attention
	// decomposed) or 23 (RMSNormalization for aten.rms_norm, Attention for
	// scaled_dot_product_attention).
	Opset int
	// Functions writes the dynamo_export layout of torch 2.1–2.4 (opset 18
	// only): each decoder layer a model-local function called from the main
	// graph, which calls a torchlib function with an attribute.
	Functions bool
}

// defaults fills the sizes as the plain Llama's (Config.defaults) and the
// opset.
func (d DynamoConfig) defaults() DynamoConfig {
	c := Config{Arch: Llama, Hidden: d.Hidden, Heads: d.Heads, KVHeads: d.KVHeads, FFN: d.FFN, Vocab: d.Vocab}.defaults()
	d.KVHeads, d.FFN, d.Vocab = c.KVHeads, c.FFN, c.Vocab
	d.Opset = cmp.Or(d.Opset, 18)
	return d
}

// Twin is the plain Llama model (torch/optimum layout, KV cache, attention
// mask, positions from the mask) with the same weights.
func (d DynamoConfig) Twin() Config {
	d = d.defaults()
	return Config{Arch: Llama, Layers: d.Layers, Hidden: d.Hidden, Heads: d.Heads, KVHeads: d.KVHeads,
		FFN: d.FFN, Vocab: d.Vocab, Seed: d.Seed, KVCache: true, AttentionMask: true,
		TransposedWeights: true, Opset: 17}
}

func (d DynamoConfig) validate() error {
	if err := d.Twin().defaults().validate(); err != nil {
		return err
	}
	if d.Opset != 18 && d.Opset != 23 {
		return fmt.Errorf("Opset %d: want 18 or 23", d.Opset)
	}
	if d.Functions && d.Opset != 18 {
		return fmt.Errorf("Functions: dynamo_export wrote opset 18, not %d", d.Opset)
	}
	return nil
}

// Domains of the legacy layout's functions: the module's package and
// version (PackageInfo.to_onnx_domain_string) and torchlib's.
const (
	dynamoModuleDomain   = "pkg.transformers.4.44.2"
	dynamoTorchlibDomain = "pkg.onnxscript.torch_lib"
)

// Module classes as nn_module_stack names them.
const (
	clsCausalLM = "transformers.models.llama.modeling_llama.LlamaForCausalLM"
	clsModel    = "transformers.models.llama.modeling_llama.LlamaModel"
	clsEmbed    = "torch.nn.modules.sparse.Embedding"
	clsRotary   = "transformers.models.llama.modeling_llama.LlamaRotaryEmbedding"
	clsLayer    = "transformers.models.llama.modeling_llama.LlamaDecoderLayer"
	clsNorm     = "transformers.models.llama.modeling_llama.LlamaRMSNorm"
	clsAttn     = "transformers.models.llama.modeling_llama.LlamaAttention"
	clsMLP      = "transformers.models.llama.modeling_llama.LlamaMLP"
	clsLinear   = "torch.nn.modules.linear.Linear"
	clsSiLU     = "torch.nn.modules.activation.SiLU"
)

type modScope struct{ name, class string }

// dynBuilder emits nodes as the exporter names them: onnx_ir's name
// authority gives nodes node_<Op>_<n> and values val_<n> (one counter each,
// model-wide); the last value of each aten op's lowering takes the FX node's
// name (linear, linear_1, mul_3, ...). Constants are initializers (the
// optimizer's LiftConstantsToInitializersPass), deduplicated.
type dynBuilder struct {
	d       DynamoConfig
	g       *pb.GraphProto
	nodes   *[]*pb.NodeProto
	nodeN   int
	valN    int
	fxN     map[string]int
	scopes  []modScope
	fx, tgt string
	consts  map[string]string
	noMeta  bool
	// cse maps a node's op, inputs and attributes to its outputs, per node
	// list (CommonSubexpressionEliminationPass: an equal node is not added).
	cse map[*[]*pb.NodeProto]map[string][]string
}

func (b *dynBuilder) push(name, class string) { b.scopes = append(b.scopes, modScope{name, class}) }
func (b *dynBuilder) pop()                    { b.scopes = b.scopes[:len(b.scopes)-1] }

func (b *dynBuilder) val() string { v := fmt.Sprintf("val_%d", b.valN); b.valN++; return v }

// emit appends one node with nout outputs named val_N (or returns the
// outputs of an equal node emitted before, as CSE would).
func (b *dynBuilder) emit(op, domain string, ins []string, nout int, attrs ...*pb.AttributeProto) []string {
	key := fmt.Sprint(op, domain, ins, nout)
	for _, a := range attrs {
		raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(a)
		key += string(raw)
	}
	if b.cse == nil {
		b.cse = map[*[]*pb.NodeProto]map[string][]string{}
	}
	seen := b.cse[b.nodes]
	if seen == nil {
		seen = map[string][]string{}
		b.cse[b.nodes] = seen
	}
	if outs, ok := seen[key]; ok {
		return outs
	}
	outs := make([]string, nout)
	for i := range outs {
		outs[i] = b.val()
	}
	n := &pb.NodeProto{Name: proto.String(fmt.Sprintf("node_%s_%d", op, b.nodeN)), OpType: proto.String(op),
		Input: ins, Output: outs, Attribute: attrs}
	b.nodeN++
	if domain != "" {
		n.Domain = proto.String(domain)
	}
	if !b.noMeta {
		setNodeMeta(n, b.meta()...)
	}
	*b.nodes = append(*b.nodes, n)
	seen[key] = outs
	return outs
}

func (b *dynBuilder) op(op string, ins []string, attrs ...*pb.AttributeProto) string {
	return b.emit(op, "", ins, 1, attrs...)[0]
}

// meta is _set_node_metadata's namespace, class hierarchy and name scopes.
func (b *dynBuilder) meta() [][2]string {
	var ns, classes, scopes []string
	for _, s := range b.scopes {
		ns = append(ns, s.name+": "+s.class)
		classes = append(classes, s.class)
		scopes = append(scopes, s.name)
	}
	ns = append(ns, b.fx+": "+b.tgt)
	classes = append(classes, b.tgt)
	scopes = append(scopes, b.fx)
	return [][2]string{
		{"namespace", strings.Join(ns, "/")},
		{"pkg.torch.onnx.class_hierarchy", pyList(classes)},
		{"pkg.torch.onnx.name_scopes", pyList(scopes)},
	}
}

// pyList is Python's repr of a list of str.
func pyList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = "'" + v + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// setNodeMeta writes NodeProto.metadata_props (field 9, IR 10), which the
// generated bindings (ONNX 1.12) keep as unknown fields.
func setNodeMeta(n *pb.NodeProto, kv ...[2]string) {
	raw := n.ProtoReflect().GetUnknown()
	for _, e := range kv {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, e[0])
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, e[1])
		raw = protowire.AppendTag(raw, 9, protowire.BytesType)
		raw = protowire.AppendBytes(raw, entry)
	}
	n.ProtoReflect().SetUnknown(raw)
}

// NodeMeta returns a node's metadata_props (field 9), read from its unknown fields.
func NodeMeta(n *pb.NodeProto) map[string]string {
	out := map[string]string{}
	raw := []byte(n.ProtoReflect().GetUnknown())
	for len(raw) > 0 {
		num, typ, l := protowire.ConsumeTag(raw)
		if l < 0 {
			return out
		}
		raw = raw[l:]
		if num != 9 || typ != protowire.BytesType {
			l = protowire.ConsumeFieldValue(num, typ, raw)
			if l < 0 {
				return out
			}
			raw = raw[l:]
			continue
		}
		entry, l := protowire.ConsumeBytes(raw)
		if l < 0 {
			return out
		}
		raw = raw[l:]
		e := &pb.StringStringEntryProto{}
		if proto.Unmarshal(entry, e) == nil {
			out[e.GetKey()] = e.GetValue()
		}
	}
	return out
}

// aten records one FX node: f emits its lowering, whose last node's output
// takes the FX name base, base_1, ... (or name, when not empty: a graph output).
func (b *dynBuilder) aten(base, target, name string, f func() string) string {
	n := b.fxN[base]
	b.fxN[base] = n + 1
	b.fx = base
	if n > 0 {
		b.fx = fmt.Sprintf("%s_%d", base, n)
	}
	b.tgt = target
	out := f()
	if name == "" {
		name = b.fx
	}
	last := (*b.nodes)[len(*b.nodes)-1]
	for i, o := range last.Output {
		if o == out {
			last.Output[i] = name
			b.rekey(out, name)
			return name
		}
	}
	if name != b.fx {
		panic("modelgen: a graph output's lowering was merged with another node") // programming error
	}
	return out // an equal node was emitted before (CSE): it keeps its name
}

// rekey renames a value in the CSE table after aten gave it its FX name.
func (b *dynBuilder) rekey(from, to string) {
	for _, outs := range b.cse[b.nodes] {
		for i, o := range outs {
			if o == from {
				outs[i] = to
			}
		}
	}
}

// constant is a lifted, deduplicated constant initializer.
func (b *dynBuilder) constant(t *pb.TensorProto) string {
	key := string(t.GetRawData()) + fmt.Sprint(t.GetDims(), t.GetDataType())
	if name, ok := b.consts[key]; ok {
		return name
	}
	name := b.val()
	t.Name = proto.String(name)
	b.g.Initializer = append(b.g.Initializer, t)
	b.consts[key] = name
	return name
}

func (b *dynBuilder) i64s(v ...int64) string { return b.constant(tensorI64("", []int{len(v)}, v)) }
func (b *dynBuilder) i64(v int64) string     { return b.constant(tensorI64("", nil, []int64{v})) }
func (b *dynBuilder) f32(v float32) string   { return b.constant(tensorF32("", nil, []float32{v})) }

func (b *dynBuilder) init(name string, dims []int, data []float32) string {
	b.g.Initializer = append(b.g.Initializer, tensorF32(name, dims, data))
	return name
}

// shapeOf is Shape(x, start, end): a 1-D slice of x's shape.
func (b *dynBuilder) shapeOf(x string, start, end int64) string {
	return b.op("Shape", []string{x}, onnx.AttrInt("start", start), onnx.AttrInt("end", end))
}

// linear is aten_linear with the Transpose of the weight folded into an
// initializer named after the Transpose's output (val_N, [in, out]).
func (b *dynBuilder) linear(scope, key, x string, in, out int, std float64) string {
	b.push(scope, clsLinear)
	defer b.pop()
	w := b.val()
	b.g.Initializer = append(b.g.Initializer, tensorF32(w, []int{in, out}, normals(b.d.Seed, key+".weight", in*out, 0, std)))
	return b.aten("linear", "aten.linear.default", "", func() string { return b.op("MatMul", []string{x, w}) })
}

// rmsNorm is LlamaRMSNorm: decomposed at opset 18 (pow, mean, add, rsqrt,
// mul, mul), aten.rms_norm → RMSNormalization at 23.
func (b *dynBuilder) rmsNorm(scope, key, x string) string {
	b.push(scope, clsNorm)
	defer b.pop()
	w := b.init(key, []int{b.d.Hidden}, normals(b.d.Seed, key, b.d.Hidden, 1, normStd))
	if b.d.Opset >= 23 {
		return b.aten("rms_norm", "aten.rms_norm.default", "", func() string {
			return b.op("RMSNormalization", []string{x, w}, onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", rmsEps))
		})
	}
	p := b.aten("pow", "aten.pow.Tensor_Scalar", "", func() string { return b.op("Pow", []string{x, b.f32(2)}) })
	m := b.aten("mean", "aten.mean.dim", "", func() string {
		return b.op("ReduceMean", []string{p, b.i64s(-1)}, onnx.AttrInt("keepdims", 1))
	})
	a := b.aten("add", "aten.add.Tensor", "", func() string { return b.op("Add", []string{m, b.f32(rmsEps)}) })
	r := b.aten("rsqrt", "aten.rsqrt.default", "", func() string {
		return b.op("Reciprocal", []string{b.op("Sqrt", []string{a})})
	})
	h := b.aten("mul", "aten.mul.Tensor", "", func() string { return b.op("Mul", []string{x, r}) })
	return b.aten("mul", "aten.mul.Tensor", "", func() string { return b.op("Mul", []string{w, h}) })
}
