// Package modelgen builds small decoder-only language models as ONNX graphs
// that look like what torch.onnx.export and Hugging Face optimum produce, with
// seeded random weights, for tests of the other packages. The same Config gives
// a byte-identical model (proto.Marshal with Deterministic).
//
// See docs/design/modelgen.md for what each option changes in the graph.
package modelgen

import (
	"errors"
	"fmt"

	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// Architectures.
const (
	Llama = "llama" // RMSNorm, RoPE, grouped-query attention, SwiGLU, untied lm_head
	GPT2  = "gpt2"  // LayerNorm, learned positions, fused c_attn + Split, gelu(tanh), biases, tied lm_head
	// Negative fixtures: graphs that are not a stack of identical decoder layers.
	EncDec = "encdec" // an encoder stack and a decoder stack with cross-attention
	MLP    = "mlp"    // embedding → Layers × (MatMul, Add, Relu) → lm_head, no residual stream
)

// Config describes a model. Zero values of the optional fields take the
// defaults documented on each field.
type Config struct {
	Arch   string // Llama, GPT2, EncDec or MLP
	Layers int    // decoder layers (EncDec: layers per stack)
	Hidden int    // model width d
	Heads  int    // attention heads; Hidden must be a multiple
	// KVHeads < Heads gives grouped-query attention (Llama only). Default Heads.
	KVHeads int
	FFN     int // MLP inner width. Default 2·Hidden (Llama, EncDec, MLP), 4·Hidden (GPT2)
	Vocab   int // default 256 (byte-level, like ../shared/testmodels)
	MaxPos  int // RoPE table rows (Llama without KV cache), GPT-2 positions. Default 128

	// KVCache adds past_key_values.{i}.key/value inputs and present.{i}.key/value
	// outputs [batch_size, kv_heads, past/total_sequence_length, head_dim].
	KVCache bool
	// NoPastInputs (Llama, with KVCache) keeps the present outputs but
	// declares no past inputs: optimum's legacy decoder_model.onnx, exported
	// with use_past_in_inputs=False, the no-past half of a merged decoder
	// (BuildOptimumMerged). attention_mask is then [batch_size, sequence_length].
	NoPastInputs bool
	// AttentionMask adds the attention_mask input (int64, 1 = attend):
	// [batch_size, total_sequence_length] with a KV cache, else [batch_size, sequence_length].
	AttentionMask bool
	// PositionIDs adds the position_ids input [batch_size, sequence_length].
	// Without it positions are computed in the graph: from the attention mask
	// (CumSum) when there is a mask and a KV cache, else past_len + 0..seq-1.
	PositionIDs bool

	// Float16 stores every float initializer as float16, read through a Cast
	// to float; inputs, outputs and compute stay float32.
	Float16 bool
	// BFloat16 is Float16 with bfloat16 storage (the two are exclusive).
	BFloat16 bool
	// Opset is the default-domain opset, 13..21. Default 17.
	Opset int
	Seed  int64
	// TransposedWeights stores Llama projections (and a tied lm_head) as
	// [in, out] initializers named onnx::MatMul_N, as torch's constant folding
	// does. Without it they are PyTorch [out, in] parameters under their module
	// names, read through a Transpose node. GPT-2's Conv1D weights are [in, out]
	// under their module names either way.
	TransposedWeights bool
	// TiedEmbeddings makes lm_head use the embedding matrix: a transposed copy
	// stored as onnx::MatMul_N with TransposedWeights (what torch writes),
	// else a Transpose node reading the embedding initializer.
	TiedEmbeddings bool
	// DedupIdentity (Llama, GPT-2) gives every layer the same input-norm
	// weight (ln_1 for GPT-2), stored once; layers 1.. read it through
	// Identity nodes, as exporters that deduplicate equal initializers write.
	DedupIdentity bool

	// Odd makes one layer differ from the others (negative fixtures).
	Odd Odd
}

// Odd describes one layer that differs from the others.
type Odd struct {
	Layer int
	// Kind is "" (none), OddBias (Llama: the layer's q/k/v projections get
	// biases; GPT-2: its attention c_proj has none) or OddFFN (its MLP is
	// 1.5 times wider).
	Kind string
}

// Odd kinds.
const (
	OddBias = "bias"
	OddFFN  = "ffn"
)

// defaults returns c with zero optional fields filled in.
func (c Config) defaults() Config {
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.FFN == 0 {
		c.FFN = 2 * c.Hidden
		if c.Arch == GPT2 {
			c.FFN = 4 * c.Hidden
		}
	}
	if c.Vocab == 0 {
		c.Vocab = 256
	}
	if c.MaxPos == 0 {
		c.MaxPos = 128
	}
	if c.Opset == 0 {
		c.Opset = 17
	}
	return c
}

// Size limits: these are test models, built in memory.
const (
	maxDim    = 1 << 20
	maxParams = 1 << 26
)

func (c Config) validate() error { return c.validateMax(maxParams) }

// validateMax checks c with a limit on the (approximate) parameter count:
// maxParams for Build, which holds the model in memory, a larger one for
// Stream, which holds one tensor at a time.
func (c Config) validateMax(limit int) error {
	switch c.Arch {
	case Llama, GPT2, EncDec, MLP:
	default:
		return fmt.Errorf("arch %q: want %q, %q, %q or %q", c.Arch, Llama, GPT2, EncDec, MLP)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Layers", c.Layers}, {"Hidden", c.Hidden}, {"Heads", c.Heads}, {"KVHeads", c.KVHeads}, {"FFN", c.FFN}, {"Vocab", c.Vocab}, {"MaxPos", c.MaxPos}} {
		if f.v < 1 {
			return fmt.Errorf("%s = %d: must be positive", f.name, f.v)
		}
	}
	if c.Layers > 256 {
		return fmt.Errorf("Layers = %d: at most 256", c.Layers)
	}
	if c.Vocab < 2 {
		return fmt.Errorf("Vocab = %d: at least 2", c.Vocab)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Hidden", c.Hidden}, {"FFN", c.FFN}, {"Vocab", c.Vocab}, {"MaxPos", c.MaxPos}} {
		if f.v > maxDim {
			return fmt.Errorf("%s = %d: at most %d for a test model", f.name, f.v, maxDim)
		}
	}
	// Dims are at most 2^20 and Layers 256, so this cannot overflow.
	ffn := c.FFN + c.FFN/2
	params := c.Layers*(4*c.Hidden*c.Hidden+3*c.Hidden*ffn) + 2*c.Vocab*c.Hidden + c.MaxPos*c.Hidden + c.MaxPos*c.MaxPos
	if c.Arch == EncDec {
		params *= 2
	}
	if params > limit {
		return fmt.Errorf("about %d parameters: at most %d for a model built in memory (Stream writes larger ones)", params, limit)
	}
	if c.Float16 && c.BFloat16 {
		return errors.New("Float16 and BFloat16 are exclusive")
	}
	if c.Hidden%c.Heads != 0 {
		return fmt.Errorf("Hidden %d is not a multiple of Heads %d", c.Hidden, c.Heads)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("Heads %d is not a multiple of KVHeads %d", c.Heads, c.KVHeads)
	}
	if c.Arch != Llama && c.KVHeads != c.Heads {
		return fmt.Errorf("KVHeads %d != Heads %d: grouped-query attention is only built for %q", c.KVHeads, c.Heads, Llama)
	}
	if (c.Arch == Llama || c.Arch == EncDec) && (c.Hidden/c.Heads)%2 != 0 {
		return fmt.Errorf("head size %d must be even for RoPE", c.Hidden/c.Heads)
	}
	if c.Opset < 13 || c.Opset > 21 {
		return fmt.Errorf("Opset %d: want 13..21", c.Opset)
	}
	if c.NoPastInputs && (!c.KVCache || c.Arch != Llama) {
		return fmt.Errorf("NoPastInputs: only built for %q with KVCache", Llama)
	}
	if (c.Arch == EncDec || c.Arch == MLP) && (c.KVCache || c.AttentionMask || c.PositionIDs) {
		return fmt.Errorf("arch %q: KVCache, AttentionMask and PositionIDs are not built", c.Arch)
	}
	switch c.Odd.Kind {
	case "":
	case OddBias, OddFFN:
		if c.Arch != Llama && c.Arch != GPT2 {
			return fmt.Errorf("Odd: only built for %q and %q", Llama, GPT2)
		}
		if c.Odd.Layer < 0 || c.Odd.Layer >= c.Layers {
			return fmt.Errorf("Odd.Layer %d: want 0..%d", c.Odd.Layer, c.Layers-1)
		}
	default:
		return fmt.Errorf("Odd.Kind %q: want %q or %q", c.Odd.Kind, OddBias, OddFFN)
	}
	return nil
}

// irVersion is the lowest IR version that an opset is released with.
func irVersion(opset int) int64 {
	switch {
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	}
	return 10
}

// ErrConfig marks an invalid Config.
var ErrConfig = errors.New("modelgen: invalid config")

// Build returns the model described by cfg.
func Build(cfg Config) (*pb.ModelProto, error) { return build(cfg, maxParams, nil) }

// build is Build with a parameter limit and an initializer sink (see builder.sink).
func build(cfg Config, limit int, sink func(*pb.TensorProto) *pb.TensorProto) (*pb.ModelProto, error) {
	cfg = cfg.defaults()
	if err := cfg.validateMax(limit); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	b := newBuilder(cfg, "main_graph")
	b.sink = sink
	switch cfg.Arch {
	case Llama:
		buildLlama(b)
	case GPT2:
		buildGPT2(b)
	case EncDec:
		buildEncDec(b)
	case MLP:
		buildMLP(b)
	}
	return &pb.ModelProto{
		IrVersion:       proto.Int64(irVersion(cfg.Opset)),
		ProducerName:    proto.String("onnxslm-modelgen"),
		ProducerVersion: proto.String("1"),
		OpsetImport:     []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(int64(cfg.Opset))}},
		Graph:           b.finish(),
		DocString:       proto.String(cfg.String()),
	}, nil
}

// Marshal serializes m deterministically (byte-identical for equal models).
func Marshal(m *pb.ModelProto) ([]byte, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("modelgen: marshal model: %w", err)
	}
	return data, nil
}

// String describes the config in one line (stored as the model's doc_string).
func (c Config) String() string {
	s := fmt.Sprintf("modelgen %s layers=%d hidden=%d heads=%d kv_heads=%d ffn=%d vocab=%d max_pos=%d opset=%d seed=%d",
		c.Arch, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.FFN, c.Vocab, c.MaxPos, c.Opset, c.Seed)
	for _, f := range []struct {
		on   bool
		name string
	}{{c.KVCache, "kv_cache"}, {c.NoPastInputs, "no_past_inputs"}, {c.AttentionMask, "attention_mask"}, {c.PositionIDs, "position_ids"}, {c.Float16, "float16"}, {c.BFloat16, "bfloat16"},
		{c.TransposedWeights, "transposed_weights"}, {c.TiedEmbeddings, "tied_embeddings"}, {c.DedupIdentity, "dedup_identity"}} {
		if f.on {
			s += " " + f.name
		}
	}
	if c.Odd.Kind != "" {
		s += fmt.Sprintf(" odd_layer=%d:%s", c.Odd.Layer, c.Odd.Kind)
	}
	return s
}
