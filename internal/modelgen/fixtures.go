package modelgen

//go:generate go run ./genfixtures -out ../../testdata/models

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Fixture is a model committed under testdata/models.
type Fixture struct {
	Name string // file name without .onnx
	Doc  string // one line for the README
	// Negative fixtures are not a stack of identical decoder layers: layer
	// discovery must refuse them.
	Negative bool
	Config   Config
}

// Fixtures lists the committed models, in README order.
func Fixtures() []Fixture {
	llama := Config{Arch: Llama, Layers: 4, Hidden: 32, Heads: 4, FFN: 40, Vocab: 256, MaxPos: 128,
		Opset: 14, Seed: 1, TransposedWeights: true}
	kv := Config{Arch: Llama, Layers: 4, Hidden: 32, Heads: 4, KVHeads: 2, FFN: 40, Vocab: 256,
		KVCache: true, AttentionMask: true, PositionIDs: true, Opset: 17, Seed: 2, TransposedWeights: true}
	alt := llama
	alt.Opset, alt.Seed, alt.TransposedWeights, alt.TiedEmbeddings, alt.DedupIdentity = 13, 5, false, true, true
	fp16 := llama
	fp16.Float16 = true
	gpt2 := Config{Arch: GPT2, Layers: 3, Hidden: 32, Heads: 4, FFN: 64, Vocab: 256, MaxPos: 128,
		Opset: 17, Seed: 3, TiedEmbeddings: true, TransposedWeights: true}
	// Negative fixtures are smaller: nothing runs them at length.
	small := Config{Arch: Llama, Layers: 4, Hidden: 16, Heads: 2, FFN: 32, Vocab: 64, MaxPos: 64,
		Opset: 17, Seed: 4, TransposedWeights: true}
	encdec := small
	encdec.Arch, encdec.Layers = EncDec, 2
	oddFFN := small
	oddFFN.Odd = Odd{Layer: 2, Kind: OddFFN}
	oddBias := small
	oddBias.Odd = Odd{Layer: 2, Kind: OddBias}
	mlp := small
	mlp.Arch = MLP
	return []Fixture{
		{Name: "tiny_llama", Config: llama, Doc: "Llama like ../shared/testmodels/llama8.onnx (torch 1.13 export): RoPE tables, Trilu mask, onnx::MatMul_N weights; input_ids → logits"},
		{Name: "tiny_llama_kv", Config: kv, Doc: "optimum-style Llama with KV cache: GQA 4 heads / 2 kv heads, attention_mask, position_ids, past_key_values.{i}.key/value → logits, present.{i}.key/value; RoPE from Cos/Sin"},
		{Name: "tiny_llama_fp16", Config: fp16, Doc: "tiny_llama with float16 weights (same seed, so logits ≈ tiny_llama's), each read through Cast to float; fp32 interface and compute"},
		{Name: "tiny_llama_alt", Config: alt, Doc: "opset 13 (no Trilu), PyTorch [out,in] weights under module names read through Transpose, tied lm_head = Transpose(embedding), input-norm weights deduplicated through Identity nodes"},
		{Name: "tiny_gpt2", Config: gpt2, Doc: "GPT-2 like ../shared/testmodels/gpt2_6.onnx: LayerNormalization, learned positions, c_attn Gemm + Split, gelu(tanh), shared bool causal constant, lm_head tied (transposed copy)"},
		{Name: "neg_encdec", Config: encdec, Negative: true, Doc: "encoder-decoder: two stacks (encoder self-attention; decoder self- and cross-attention); inputs input_ids, decoder_input_ids"},
		{Name: "neg_llama_odd_ffn", Config: oddFFN, Negative: true, Doc: "Llama whose layer 2 has a 1.5× wider MLP"},
		{Name: "neg_llama_odd_bias", Config: oddBias, Negative: true, Doc: "Llama whose layer 2 alone has q/k/v biases"},
		{Name: "neg_mlp", Config: mlp, Negative: true, Doc: "plain MLP stack (fc1, Relu, fc2, Relu) × 4 with no residual stream"},
	}
}

// FixtureFiles returns the contents of every file WriteFixtures writes, by
// file name: NAME.onnx for each fixture and README.md.
func FixtureFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	var readme bytes.Buffer
	readme.WriteString(readmeHead)
	for _, f := range Fixtures() {
		m, err := Build(f.Config)
		if err != nil {
			return nil, fmt.Errorf("fixture %s: %w", f.Name, err)
		}
		data, err := Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("fixture %s: %w", f.Name, err)
		}
		files[f.Name+".onnx"] = data
		ops := map[string]int{}
		for _, n := range m.Graph.Node {
			ops[n.GetOpType()]++
		}
		kind := "decoder"
		if f.Negative {
			kind = "negative"
		}
		fmt.Fprintf(&readme, "| `%s.onnx` | %s | %s | %d | %d | %d | %s |\n", f.Name, kind, f.Doc,
			len(m.Graph.Node), ops["Constant"], len(data), topOps(ops))
	}
	readme.WriteString("\nConfigs (each model's doc_string says the same):\n\n")
	for _, f := range Fixtures() {
		fmt.Fprintf(&readme, "- `%s`: %s\n", f.Name, f.Config.defaults())
	}
	readme.WriteString(readmeTail)
	files["README.md"] = readme.Bytes()
	return files, nil
}

// WriteFixtures writes the files of FixtureFiles into dir.
func WriteFixtures(dir string) error {
	files, err := FixtureFiles()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fixtures: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return fmt.Errorf("fixtures: %w", err)
		}
	}
	return nil
}

// topOps lists the op types other than Constant by count, most frequent first.
func topOps(ops map[string]int) string {
	type kv struct {
		op string
		n  int
	}
	var l []kv
	for op, n := range ops {
		if op != "Constant" {
			l = append(l, kv{op, n})
		}
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].n != l[j].n {
			return l[i].n > l[j].n
		}
		return l[i].op < l[j].op
	})
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%s %d", e.op, e.n))
	}
	return strings.Join(parts, ", ")
}

const readmeHead = `# Generated test models

Small ONNX models built in Go by internal/modelgen (no Python), with seeded random
weights, shaped like torch.onnx.export / optimum exports of decoder-only LLMs. Do not
edit: regenerate with ` + "`go generate ./internal/modelgen`" + ` (the bytes are deterministic;
TestFixturesUpToDate fails when a file differs from what the generator writes).
All are byte-level sized (vocab 256) unless noted, inline weights, float32 interface.
Design notes: docs/design/modelgen.md.

| file | kind | model | nodes | Constant nodes | bytes | other ops |
|---|---|---|---|---|---|---|
`

const readmeTail = `
Interfaces: ` + "`input_ids`" + ` int64 [batch_size, sequence_length] → ` + "`logits`" + ` float
[batch_size, sequence_length, vocab]. tiny_llama_kv adds ` + "`attention_mask`" + ` int64
[batch_size, total_sequence_length], ` + "`position_ids`" + ` int64 [batch_size, sequence_length],
` + "`past_key_values.{i}.key/value`" + ` float [batch_size, 2, past_sequence_length, 8] and outputs
` + "`present.{i}.key/value`" + ` [batch_size, 2, total_sequence_length, 8] (past concatenated with the
new keys/values; a fresh sequence feeds past with past_sequence_length 0).

Negative fixtures (` + "`neg_*`" + `) are not a stack of identical decoder layers; layer discovery
must refuse them, naming what differs.
`
