// Package distill trains one decoder layer's weights so that the layer
// reproduces a window of layers: given the residual stream entering the
// window (X) and leaving it (Y) on calibration rows, it fits the layer's
// matrices, norm gains and biases by gradient descent (gorgonia's autodiff
// and Adam) on the mean squared error of the layer's output against Y.
//
// It knows nothing of ONNX: a Layer is plain float32 weights in the
// exporter's layout (x·W, W stored [in, out]), so the caller reads them from
// the graph and writes the trained ones back. docs/design/recovery.md says
// why it works the way it does, with measurements.
package distill

import (
	"fmt"
	"math"
)

// Kind is the architecture of a decoder layer.
type Kind int

const (
	// Llama: x + o(attn(rope(q), rope(k), v)) with RMSNorm before each
	// block, grouped-query attention, rotary positions (rotate-half), and a
	// SwiGLU MLP down(silu(gate(x))·up(x)); biases optional on q/k/v/o.
	Llama Kind = iota
	// GPT2: LayerNormalization (gain and bias) before each block, attention
	// with biased q/k/v/o, and an MLP proj(gelu_tanh(fc(x)+b)) + b.
	GPT2
)

func (k Kind) String() string {
	switch k {
	case Llama:
		return "llama"
	case GPT2:
		return "gpt2"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Rotary holds the cos and sin tables of rotary position embeddings
// ([MaxPos, HeadDim] each, row p for position p), exactly as the model
// stores or computes them. Calibration rows start at position 0.
type Rotary struct {
	Cos, Sin []float32
}

// RotaryTables computes the rotate-half tables the way Hugging Face's Llama
// does in float32: inv_freq[i] = 1/theta^(2i/hd), angle = float32(p)·inv_freq,
// both halves of a row equal.
func RotaryTables(headDim, maxPos int, theta float64) Rotary {
	half := headDim / 2
	inv := make([]float32, half)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(theta, float64(2*i)/float64(headDim)))
	}
	r := Rotary{Cos: make([]float32, maxPos*headDim), Sin: make([]float32, maxPos*headDim)}
	for p := 0; p < maxPos; p++ {
		for j := 0; j < headDim; j++ {
			a := float64(float32(p) * inv[j%half])
			r.Cos[p*headDim+j] = float32(math.Cos(a))
			r.Sin[p*headDim+j] = float32(math.Sin(a))
		}
	}
	return r
}

// Layer is one decoder layer's weights, float32, matrices row-major
// [in, out] (the layer computes x·W). Absent optional tensors are nil.
type Layer struct {
	Kind                   Kind
	Hidden, Heads, KVHeads int
	HeadDim, FFN           int
	// Eps is the norm's epsilon (Llama RMSNorm 1e-6, GPT-2 LayerNorm 1e-5
	// in the shared models: read it from the graph).
	Eps float32
	// Scale divides the attention scores (the export's sqrt(HeadDim)
	// constant, as float32).
	Scale float32
	// Rotary tables (Llama); nil for none.
	Rotary *Rotary

	AttnNorm, AttnNormBias []float32 // [Hidden]; bias only for GPT2
	Q, K, V                []float32 // [Hidden, Heads·HeadDim], [Hidden, KVHeads·HeadDim] ×2
	QBias, KBias, VBias    []float32
	O                      []float32 // [Heads·HeadDim, Hidden]
	OBias                  []float32
	MLPNorm, MLPNormBias   []float32 // [Hidden]
	Gate                   []float32 // [Hidden, FFN], Llama only
	Up                     []float32 // [Hidden, FFN]: Llama up_proj, GPT-2 c_fc
	UpBias                 []float32
	Down                   []float32 // [FFN, Hidden]: Llama down_proj, GPT-2 mlp.c_proj
	DownBias               []float32
}

// Param is one named tensor of a layer, in a fixed order.
type Param struct {
	Name  string
	Shape []int
	Data  *[]float32
}

// Params lists the layer's tensors that are present, in a fixed order.
// The names are what Options.Train selects.
func (l *Layer) Params() []Param {
	d, q, kv, f := l.Hidden, l.Heads*l.HeadDim, l.KVHeads*l.HeadDim, l.FFN
	all := []Param{
		{"attn_norm", []int{d}, &l.AttnNorm},
		{"attn_norm_bias", []int{d}, &l.AttnNormBias},
		{"q", []int{d, q}, &l.Q}, {"q_bias", []int{q}, &l.QBias},
		{"k", []int{d, kv}, &l.K}, {"k_bias", []int{kv}, &l.KBias},
		{"v", []int{d, kv}, &l.V}, {"v_bias", []int{kv}, &l.VBias},
		{"o", []int{q, d}, &l.O}, {"o_bias", []int{d}, &l.OBias},
		{"mlp_norm", []int{d}, &l.MLPNorm},
		{"mlp_norm_bias", []int{d}, &l.MLPNormBias},
		{"gate", []int{d, f}, &l.Gate},
		{"up", []int{d, f}, &l.Up}, {"up_bias", []int{f}, &l.UpBias},
		{"down", []int{f, d}, &l.Down}, {"down_bias", []int{d}, &l.DownBias},
	}
	out := all[:0]
	for _, p := range all {
		if *p.Data != nil {
			out = append(out, p)
		}
	}
	return out
}

// Clone returns a deep copy of l (the rotary tables are shared: they are
// never trained).
func (l *Layer) Clone() *Layer {
	c := *l
	for _, p := range c.Params() {
		*p.Data = append([]float32(nil), *p.Data...)
	}
	return &c
}

// Validate checks the dimensions and that every tensor the kind needs is
// present with the right length.
func (l *Layer) Validate() error {
	if l.Hidden <= 0 || l.Heads <= 0 || l.KVHeads <= 0 || l.HeadDim <= 0 || l.FFN <= 0 {
		return fmt.Errorf("distill: layer dimensions must be positive (hidden %d, heads %d, kv heads %d, head dim %d, ffn %d)",
			l.Hidden, l.Heads, l.KVHeads, l.HeadDim, l.FFN)
	}
	if l.Heads%l.KVHeads != 0 {
		return fmt.Errorf("distill: %d heads is not a multiple of %d key/value heads", l.Heads, l.KVHeads)
	}
	if !(l.Scale > 0) || !(l.Eps >= 0) {
		return fmt.Errorf("distill: attention scale %v and norm epsilon %v must be positive", l.Scale, l.Eps)
	}
	need := []string{"attn_norm", "q", "k", "v", "o", "mlp_norm", "up", "down"}
	switch l.Kind {
	case Llama:
		need = append(need, "gate")
		if l.AttnNormBias != nil || l.MLPNormBias != nil || l.UpBias != nil || l.DownBias != nil {
			return fmt.Errorf("distill: a llama layer has no norm or MLP biases")
		}
	case GPT2:
		need = append(need, "attn_norm_bias", "mlp_norm_bias")
		if l.Gate != nil {
			return fmt.Errorf("distill: a gpt2 layer has no gate projection")
		}
		if l.Rotary != nil {
			return fmt.Errorf("distill: a gpt2 layer has no rotary embedding")
		}
	default:
		return fmt.Errorf("distill: unknown layer kind %v", l.Kind)
	}
	have := map[string]bool{}
	for _, p := range l.Params() {
		have[p.Name] = true
		n := 1
		for _, s := range p.Shape {
			n *= s
		}
		if len(*p.Data) != n {
			return fmt.Errorf("distill: %s has %d values, want %v = %d", p.Name, len(*p.Data), p.Shape, n)
		}
	}
	for _, n := range need {
		if !have[n] {
			return fmt.Errorf("distill: %s layer lacks %s", l.Kind, n)
		}
	}
	if r := l.Rotary; r != nil {
		if l.HeadDim%2 != 0 {
			return fmt.Errorf("distill: rotary needs an even head dim, not %d", l.HeadDim)
		}
		if len(r.Cos) != len(r.Sin) || len(r.Cos)%l.HeadDim != 0 {
			return fmt.Errorf("distill: rotary tables of %d and %d values for head dim %d", len(r.Cos), len(r.Sin), l.HeadDim)
		}
	}
	return nil
}

// maxPos is the longest row the rotary tables cover (unbounded without).
func (l *Layer) maxPos() int {
	if l.Rotary == nil {
		return math.MaxInt
	}
	return len(l.Rotary.Cos) / l.HeadDim
}

// SplitQKV splits GPT-2's fused c_attn weight [d, 3·d] (or its bias [3·d])
// into q, k and v parts, as the export's Split on the last axis does.
func SplitQKV(w []float32, rows, cols int) (q, k, v []float32) {
	parts := [3][]float32{}
	for i := range parts {
		parts[i] = make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			copy(parts[i][r*cols:(r+1)*cols], w[r*3*cols+i*cols:r*3*cols+(i+1)*cols])
		}
	}
	return parts[0], parts[1], parts[2]
}

// JoinQKV is SplitQKV's inverse.
func JoinQKV(q, k, v []float32, rows, cols int) []float32 {
	w := make([]float32, rows*3*cols)
	for i, p := range [][]float32{q, k, v} {
		for r := 0; r < rows; r++ {
			copy(w[r*3*cols+i*cols:r*3*cols+(i+1)*cols], p[r*cols:(r+1)*cols])
		}
	}
	return w
}
