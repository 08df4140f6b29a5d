package modelgen

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// configs are the fixtures plus variants that no fixture covers.
func configs() map[string]Config {
	out := map[string]Config{}
	for _, f := range Fixtures() {
		out[f.Name] = f.Config
	}
	base := Config{Arch: Llama, Layers: 3, Hidden: 16, Heads: 4, KVHeads: 2, Vocab: 64, MaxPos: 32, Seed: 9}
	v := base
	v.KVCache, v.AttentionMask = true, true // positions from CumSum(mask)
	out["llama_kv_cumsum"] = v
	v = base
	v.KVCache, v.Opset = true, 21 // no mask, no position ids; ReduceMean axes as input
	out["llama_kv_bare_op21"] = v
	v = base
	v.AttentionMask, v.PositionIDs, v.Float16, v.TiedEmbeddings = true, true, true, true
	out["llama_mask_fp16_tied"] = v
	g := Config{Arch: GPT2, Layers: 2, Hidden: 16, Heads: 2, Vocab: 64, MaxPos: 32, Seed: 8, TiedEmbeddings: true}
	v = g
	v.KVCache, v.AttentionMask, v.Opset = true, true, 16 // decomposed LayerNorm
	out["gpt2_kv_op16"] = v
	v = g
	v.TiedEmbeddings, v.DedupIdentity, v.Float16, v.Opset = false, true, true, 18
	out["gpt2_untied_dedup_fp16_op18"] = v
	v = g
	v.Odd = Odd{Layer: 1, Kind: OddBias}
	out["gpt2_odd_bias"] = v
	return out
}

func sortedNames(m map[string]Config) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// mustBuildWith returns build(c), failing t on an error.
func mustBuildWith[C any](t *testing.T, build func(C) (*pb.ModelProto, error), c C) *pb.ModelProto {
	t.Helper()
	m, err := build(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustBuild(t *testing.T, c Config) *pb.ModelProto {
	t.Helper()
	m, err := Build(c)
	if err != nil {
		t.Fatalf("Build(%s): %v", c, err)
	}
	return m
}

func TestDeterministic(t *testing.T) {
	for _, name := range sortedNames(configs()) {
		c := configs()[name]
		a, err := Marshal(mustBuild(t, c))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Marshal(mustBuild(t, c))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two builds of the same config differ (%d and %d bytes)", name, len(a), len(b))
		}
		c.Seed++
		d, _ := Marshal(mustBuild(t, c))
		if bytes.Equal(a, d) {
			t.Errorf("%s: seeds %d and %d give the same bytes", name, c.Seed-1, c.Seed)
		}
	}
}

func TestFixturesUpToDate(t *testing.T) {
	files, err := FixtureFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "models")
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%v (run go generate ./internal/modelgen)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/models/%s differs from what the generator writes (%d bytes, want %d): run go generate ./internal/modelgen", name, len(got), len(want))
		}
		if strings.HasSuffix(name, ".onnx") && len(want) >= 300<<10 {
			t.Errorf("fixture %s is %d bytes, want < 300 KiB", name, len(want))
		}
	}
}

// checkGraph verifies that g is a valid SSA graph in topological order: every
// input defined before use, every value produced once, unique node names,
// every output produced, no unused initializer and no dead node.
func checkGraph(g *pb.GraphProto) error {
	defined := map[string]bool{}
	for _, in := range g.Input {
		defined[in.GetName()] = true
	}
	for _, t := range g.Initializer {
		if defined[t.GetName()] {
			return fmt.Errorf("initializer %q defined twice", t.GetName())
		}
		defined[t.GetName()] = true
	}
	used := map[string]bool{}
	for _, o := range g.Output {
		used[o.GetName()] = true
	}
	names := map[string]bool{}
	for _, n := range g.Node {
		if n.GetName() == "" || names[n.GetName()] {
			return fmt.Errorf("node name %q empty or repeated", n.GetName())
		}
		names[n.GetName()] = true
		for _, in := range n.Input {
			if in != "" && !defined[in] {
				return fmt.Errorf("node %s (%s) reads %q before it is defined", n.GetName(), n.GetOpType(), in)
			}
			used[in] = true
		}
		for _, o := range n.Output {
			if defined[o] {
				return fmt.Errorf("node %s redefines %q", n.GetName(), o)
			}
			defined[o] = true
		}
	}
	for _, o := range g.Output {
		if !defined[o.GetName()] {
			return fmt.Errorf("graph output %q is not produced", o.GetName())
		}
	}
	for _, t := range g.Initializer {
		if !used[t.GetName()] {
			return fmt.Errorf("initializer %q is not used", t.GetName())
		}
	}
	for _, n := range g.Node {
		live := false
		for _, o := range n.Output {
			live = live || used[o]
		}
		if !live {
			return fmt.Errorf("node %s (%s): no output is used", n.GetName(), n.GetOpType())
		}
	}
	return nil
}

func dims(v *pb.ValueInfoProto) string {
	var parts []string
	for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
		if p := d.GetDimParam(); p != "" {
			parts = append(parts, p)
		} else {
			parts = append(parts, strconv.FormatInt(d.GetDimValue(), 10))
		}
	}
	return pb.TensorProto_DataType(v.GetType().GetTensorType().GetElemType()).String() + "[" + strings.Join(parts, ",") + "]"
}

// wantIO lists the interface a config must have, as "name FLOAT[dims]".
func wantIO(c Config) (inputs, outputs []string) {
	c = c.defaults()
	seq := "sequence_length"
	if c.Arch == EncDec {
		return []string{"input_ids INT64[batch_size,encoder_sequence_length]", "decoder_input_ids INT64[batch_size,decoder_sequence_length]"},
			[]string{fmt.Sprintf("logits FLOAT[batch_size,decoder_sequence_length,%d]", c.Vocab)}
	}
	inputs = []string{"input_ids INT64[batch_size," + seq + "]"}
	outputs = []string{fmt.Sprintf("logits FLOAT[batch_size,%s,%d]", seq, c.Vocab)}
	if c.AttentionMask {
		l := seq
		if c.KVCache {
			l = "total_sequence_length"
		}
		inputs = append(inputs, "attention_mask INT64[batch_size,"+l+"]")
	}
	if c.PositionIDs {
		inputs = append(inputs, "position_ids INT64[batch_size,"+seq+"]")
	}
	if c.KVCache {
		for i := 0; i < c.Layers; i++ {
			for _, s := range []string{"key", "value"} {
				inputs = append(inputs, fmt.Sprintf("past_key_values.%d.%s FLOAT[batch_size,%d,past_sequence_length,%d]", i, s, c.KVHeads, c.Hidden/c.Heads))
				outputs = append(outputs, fmt.Sprintf("present.%d.%s FLOAT[batch_size,%d,total_sequence_length,%d]", i, s, c.KVHeads, c.Hidden/c.Heads))
			}
		}
	}
	return inputs, outputs
}

// wantOps returns op counts that follow from the architecture: one entry per
// op type the test pins down.
func wantOps(c Config) map[string]int {
	c = c.defaults()
	L := c.Layers
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	switch c.Arch {
	case Llama:
		trilu := b2i(!c.AttentionMask && !c.KVCache && c.Opset >= 14)
		cumsum := b2i(c.KVCache && c.AttentionMask && !c.PositionIDs)
		return map[string]int{
			"MatMul":      9*L + 1 + b2i(c.KVCache), // 7 projections + 2 attention per layer, lm_head, rotary
			"Softmax":     L,
			"Pow":         2*L + 1,
			"ReduceMean":  2*L + 1,
			"Sqrt":        2*L + 1,
			"Sigmoid":     L,
			"Neg":         2*L + cumsum, // rotate_half of q and k; -seq for the last positions
			"Trilu":       trilu,
			"LessOrEqual": 1 - trilu,
			"Expand":      2 * L * b2i(c.KVHeads < c.Heads),
			"Cos":         b2i(c.KVCache),
			"CumSum":      cumsum,
			"Identity":    (L - 1) * b2i(c.DedupIdentity),
			"Gemm":        0,
		}
	case GPT2:
		ln := b2i(c.Opset >= 17)
		return map[string]int{
			"Gemm":               4 * L,
			"Split":              L,
			"Tanh":               L,
			"Softmax":            L,
			"MatMul":             2*L + 1,
			"LayerNormalization": (2*L + 1) * ln,
			"ReduceMean":         2 * (2*L + 1) * (1 - ln),
			"Identity":           (L - 1) * b2i(c.DedupIdentity),
			"CumSum":             b2i(c.KVCache && c.AttentionMask && !c.PositionIDs),
			"Trilu":              0,
		}
	case EncDec:
		// MatMul: encoder 7+2 per layer, decoder 7+2 + cross-attention 4+2, lm_head
		return map[string]int{"Softmax": 3 * L, "MatMul": 24*L + 1, "Trilu": 1}
	case MLP:
		return map[string]int{"MatMul": 2*L + 1, "Relu": 2 * L, "Add": 2 * L, "Softmax": 0}
	}
	return nil
}

func TestStructure(t *testing.T) {
	for _, name := range sortedNames(configs()) {
		c := configs()[name].defaults()
		t.Run(name, func(t *testing.T) {
			m := mustBuild(t, c)
			g := m.GetGraph()
			if err := checkGraph(g); err != nil {
				t.Fatal(err)
			}
			if got := m.GetOpsetImport()[0].GetVersion(); got != int64(c.Opset) {
				t.Errorf("opset %d, want %d", got, c.Opset)
			}
			if got, want := m.GetIrVersion(), irVersion(c.Opset); got != want {
				t.Errorf("IR version %d, want %d", got, want)
			}
			var ins, outs []string
			for _, v := range g.Input {
				ins = append(ins, v.GetName()+" "+dims(v))
			}
			for _, v := range g.Output {
				outs = append(outs, v.GetName()+" "+dims(v))
			}
			wi, wo := wantIO(c)
			if !slices.Equal(ins, wi) {
				t.Errorf("inputs\n got %q\nwant %q", ins, wi)
			}
			if !slices.Equal(outs, wo) {
				t.Errorf("outputs\n got %q\nwant %q", outs, wo)
			}
			ops := map[string]int{}
			for _, n := range g.Node {
				ops[n.GetOpType()]++
			}
			for op, want := range wantOps(c) {
				if ops[op] != want {
					t.Errorf("%d %s nodes, want %d", ops[op], op, want)
				}
			}
			checkOpsetForms(t, c, g)
			checkInitializers(t, c, g)
			checkNames(t, c, g)
		})
	}
}

// checkOpsetForms: ReduceMean's axes are an attribute before opset 18 and an
// input from 18; Reshape carries allowzero from opset 14.
func checkOpsetForms(t *testing.T, c Config, g *pb.GraphProto) {
	t.Helper()
	for _, n := range g.Node {
		attrs := map[string]bool{}
		for _, a := range n.Attribute {
			attrs[a.GetName()] = true
		}
		switch n.GetOpType() {
		case "ReduceMean":
			if (c.Opset >= 18) != (len(n.Input) == 2) || (c.Opset >= 18) == attrs["axes"] {
				t.Errorf("opset %d: %s has %d inputs, axes attribute %v", c.Opset, n.GetName(), len(n.Input), attrs["axes"])
			}
		case "Reshape":
			if attrs["allowzero"] != (c.Opset >= 14) {
				t.Errorf("opset %d: %s allowzero attribute %v", c.Opset, n.GetName(), attrs["allowzero"])
			}
		case "Unsqueeze", "Squeeze":
			if len(n.Input) != 2 || len(n.Attribute) != 0 {
				t.Errorf("%s: axes must be an input at opset ≥ 13", n.GetName())
			}
		}
	}
}

// checkInitializers: layout of the weights (onnx::MatMul_N [in,out] or
// module-named [out,in]), float16 storage behind Casts, deduplication.
func checkInitializers(t *testing.T, c Config, g *pb.GraphProto) {
	t.Helper()
	readers := map[string][]string{}
	for _, n := range g.Node {
		for _, in := range n.Input {
			readers[in] = append(readers[in], n.GetOpType())
		}
	}
	folded := 0
	maxOther := 0
	for _, n := range g.Node {
		for _, o := range append(slices.Clone(n.Output), n.GetName()) {
			if i := strings.LastIndex(o, "_"); i > 0 && (strings.HasPrefix(o, "onnx::") || strings.HasPrefix(o, "Constant_") || strings.HasPrefix(o, "Identity_")) {
				if v, err := strconv.Atoi(o[i+1:]); err == nil && v > maxOther {
					maxOther = v
				}
			}
		}
	}
	names := map[string]bool{}
	for _, init := range g.Initializer {
		name := init.GetName()
		names[name] = true
		if strings.HasPrefix(name, "onnx::MatMul_") {
			folded++
			if v, _ := strconv.Atoi(strings.TrimPrefix(name, "onnx::MatMul_")); v <= maxOther {
				t.Errorf("%s is numbered before other values (up to %d); torch numbers folded weights last", name, maxOther)
			}
		}
		wantType := pb.TensorProto_FLOAT
		if c.Float16 {
			wantType = pb.TensorProto_FLOAT16
			for _, r := range readers[name] {
				if r != "Cast" && r != "Identity" {
					t.Errorf("float16 initializer %s is read by %s, want Cast", name, r)
				}
			}
		}
		if got := pb.TensorProto_DataType(init.GetDataType()); got != wantType {
			t.Errorf("initializer %s is %s, want %s", name, got, wantType)
		}
	}
	if c.Arch == Llama {
		projections := 7 * c.Layers
		wantFolded := 0
		if c.TransposedWeights {
			wantFolded = projections + 1 // and lm_head, tied (transposed copy) or not
		}
		if folded != wantFolded {
			t.Errorf("%d onnx::MatMul_N initializers, want %d", folded, wantFolded)
		}
		q := "model.layers.0.self_attn.q_proj.weight"
		if names[q] == c.TransposedWeights {
			t.Errorf("initializer %s present = %v with TransposedWeights = %v", q, names[q], c.TransposedWeights)
		}
	}
	for i := 1; i < c.Layers; i++ {
		var norm string
		switch c.Arch {
		case Llama:
			norm = fmt.Sprintf(llamaNormFormat, i)
		case GPT2:
			norm = fmt.Sprintf(gpt2NormFormat, i)
		default:
			return
		}
		if names[norm] == c.DedupIdentity {
			t.Errorf("initializer %s present = %v with DedupIdentity = %v", norm, names[norm], c.DedupIdentity)
		}
	}
}

// checkNames: nodes are named after torch module scopes, and every layer has
// attention reshapes fed by Shape → Gather → Unsqueeze → Concat plumbing.
func checkNames(t *testing.T, c Config, g *pb.GraphProto) {
	t.Helper()
	producer := map[string]*pb.NodeProto{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			producer[o] = n
		}
	}
	prefix := map[string]string{Llama: "/model/layers.", GPT2: "/transformer/h.", MLP: "/model/layers.", EncDec: "/decoder/layers."}[c.Arch]
	plumbed := map[int]bool{}
	for _, n := range g.Node {
		name := n.GetName()
		if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "Constant_") && !strings.HasPrefix(name, "Identity_") {
			t.Errorf("node %q is not named like a torch export", name)
		}
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || n.GetOpType() != "Reshape" {
			continue
		}
		layer, err := strconv.Atoi(rest[:strings.Index(rest, "/")])
		if err != nil {
			t.Fatalf("node %q: layer number: %v", name, err)
		}
		if cat := producer[n.Input[1]]; cat != nil && cat.GetOpType() == "Concat" {
			for _, in := range cat.Input {
				u := producer[in]
				if u == nil || u.GetOpType() != "Unsqueeze" {
					continue
				}
				if ga := producer[u.Input[0]]; ga != nil && ga.GetOpType() == "Gather" {
					if sh := producer[ga.Input[0]]; sh != nil && sh.GetOpType() == "Shape" {
						plumbed[layer] = true
					}
				}
			}
		}
	}
	if c.Arch == MLP {
		return
	}
	for i := 0; i < c.Layers; i++ {
		if !plumbed[i] {
			t.Errorf("layer %d: no Reshape fed by Shape → Gather → Unsqueeze → Concat", i)
		}
	}
}

// floats decodes every float initializer (float16 widened) by name.
func floats(t *testing.T, g *pb.GraphProto) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, init := range g.Initializer {
		d, err := onnx.DecodeTensor(init)
		if err != nil {
			t.Fatal(err)
		}
		switch v := d.Data.(type) {
		case []float32:
			out[init.GetName()] = v
		case []uint16:
			f := make([]float32, len(v))
			for i, h := range v {
				f[i] = onnx.Float16ToFloat32(h)
			}
			out[init.GetName()] = f
		}
	}
	return out
}

func meanStd(x []float32) (float64, float64) {
	m, v := stats.MeanVar(x)
	return m, math.Sqrt(v)
}

func TestWeightScales(t *testing.T) {
	c := Config{Arch: Llama, Layers: 3, Hidden: 64, Heads: 4, FFN: 128, Vocab: 64, Seed: 1}
	w := floats(t, mustBuild(t, c).GetGraph())
	tests := []struct {
		name      string
		mean, std float64
	}{
		{"model.layers.0.input_layernorm.weight", 1, normStd},
		{"model.layers.2.post_attention_layernorm.weight", 1, normStd},
		{"model.layers.1.self_attn.q_proj.weight", 0, projStd(64)},
		{"model.layers.1.self_attn.o_proj.weight", 0, residStd(64)},
		{"model.layers.1.mlp.down_proj.weight", 0, residStd(128)},
		{"model.embed_tokens.weight", 0, embStd},
	}
	for _, tt := range tests {
		m, s := meanStd(w[tt.name])
		if math.Abs(m-tt.mean) > 0.2*tt.std+0.01 || math.Abs(s-tt.std) > 0.15*tt.std {
			t.Errorf("%s: mean %.3f std %.3f, want about %.3f and %.3f", tt.name, m, s, tt.mean, tt.std)
		}
	}
	// Layers are different: the same slot in two layers is uncorrelated.
	a, b := w["model.layers.0.self_attn.q_proj.weight"], w["model.layers.1.self_attn.q_proj.weight"]
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if r := dot / math.Sqrt(na*nb); math.Abs(r) > 0.1 {
		t.Errorf("q_proj of layers 0 and 1 correlate (%.3f): layers must differ", r)
	}
}

// TestLayoutsShareWeights: TransposedWeights changes where the numbers are
// stored, not the numbers: both layouts hold the same multiset of values.
func TestLayoutsShareWeights(t *testing.T) {
	for _, c := range []Config{configs()["tiny_llama"], configs()["tiny_llama_kv"]} {
		values := func(c Config) []float32 {
			var all []float32
			for _, v := range floats(t, mustBuild(t, c).GetGraph()) {
				all = append(all, v...)
			}
			slices.Sort(all)
			return all
		}
		a := values(c)
		c.TransposedWeights = !c.TransposedWeights
		if b := values(c); !slices.Equal(a, b) {
			t.Errorf("%s: TransposedWeights on and off store different values (%d and %d)", c, len(a), len(b))
		}
	}
}

// TestBuildRandomConfigs: any config either is refused with ErrConfig or
// gives a valid graph; none panics.
func TestBuildRandomConfigs(t *testing.T) {
	r := newRNG(1, "random configs")
	pick := func(vals ...int) int { return vals[r.next()%uint64(len(vals))] }
	archs := []string{Llama, Llama, GPT2, GPT2, EncDec, MLP, "x"}
	built := 0
	for i := 0; i < 300; i++ {
		// Mostly valid values, with a few invalid ones mixed in.
		c := Config{
			Arch: archs[r.next()%uint64(len(archs))], Layers: pick(0, 1, 2, 3, 3), Hidden: pick(8, 16, 16, 12),
			Heads: pick(1, 2, 4, 4), KVHeads: pick(0, 0, 0, 1, 2), FFN: pick(0, 8, 20), Vocab: pick(0, 2, 17, 1),
			MaxPos: pick(0, 8, 16), Opset: pick(0, 13, 14, 16, 17, 18, 21, 12), Seed: int64(i),
			KVCache: r.next()%2 == 0, AttentionMask: r.next()%2 == 0, PositionIDs: r.next()%2 == 0,
			Float16: r.next()%2 == 0, TransposedWeights: r.next()%2 == 0, TiedEmbeddings: r.next()%2 == 0,
			DedupIdentity: r.next()%2 == 0, Odd: Odd{Layer: pick(0, 1, 2, -1), Kind: []string{"", "", "", OddBias, OddFFN, "z"}[r.next()%6]},
		}
		if c.Arch == "x" && r.next()%2 == 0 {
			c.Arch = Llama
		}
		m, err := Build(c)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("Build(%s): error %v does not wrap ErrConfig", c, err)
			}
			continue
		}
		built++
		if err := checkGraph(m.GetGraph()); err != nil {
			t.Errorf("Build(%s): %v", c, err)
		}
	}
	if built < 40 {
		t.Errorf("only %d of 300 random configs were valid: the sample tests too little", built)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Arch: Llama, Layers: 2, Hidden: 16, Heads: 4}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"arch", func(c *Config) { c.Arch = "bert" }, `arch "bert"`},
		{"layers", func(c *Config) { c.Layers = 0 }, "Layers = 0"},
		{"negative hidden", func(c *Config) { c.Hidden = -16 }, "Hidden = -16"},
		{"heads divide hidden", func(c *Config) { c.Heads = 3 }, "not a multiple of Heads 3"},
		{"kv heads divide heads", func(c *Config) { c.KVHeads = 3 }, "not a multiple of KVHeads 3"},
		{"odd head size", func(c *Config) { c.Hidden, c.Heads = 12, 4 }, "head size 3 must be even"},
		{"gqa gpt2", func(c *Config) { c.Arch, c.KVHeads = GPT2, 2 }, "grouped-query"},
		{"opset low", func(c *Config) { c.Opset = 12 }, "Opset 12"},
		{"opset high", func(c *Config) { c.Opset = 22 }, "Opset 22"},
		{"huge dim", func(c *Config) { c.Vocab = 1 << 30 }, "Vocab = 1073741824: at most"},
		{"huge model", func(c *Config) { c.Hidden, c.Heads, c.Layers = 4096, 32, 64 }, "parameters: at most"},
		{"many layers", func(c *Config) { c.Layers = 1000 }, "at most 256"},
		{"odd kind", func(c *Config) { c.Odd.Kind = "wide" }, `Odd.Kind "wide"`},
		{"odd layer", func(c *Config) { c.Odd = Odd{Layer: 2, Kind: OddFFN} }, "Odd.Layer 2"},
		{"mlp kv", func(c *Config) { c.Arch, c.KVCache = MLP, true }, "not built"},
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		m, err := Build(c)
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Build = %v, %v; want an ErrConfig mentioning %q", tt.name, m != nil, err, tt.want)
		}
	}
	if _, err := Build(ok); err != nil {
		t.Errorf("Build(%s) = %v, want no error", ok, err)
	}
}
