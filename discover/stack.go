// Package discover finds the decoder layers of a language model exported to ONNX by
// the structure of its graph, not by its names.
package discover

import (
	"fmt"
	"strings"
)

// ParamKind is the role of a layer parameter.
type ParamKind int

// Parameter kinds.
const (
	// Other is a float tensor of two or more elements that is none of the below.
	Other ParamKind = iota
	// ProjWeight is a 2-D weight read by a MatMul or Gemm.
	ProjWeight
	// ProjBias is a bias added right after a projection (or Gemm's C input).
	ProjBias
	// NormWeight is the scale applied after a normalization.
	NormWeight
	// NormBias is the shift applied after a normalization's scale.
	NormBias
)

var kindNames = [...]string{"other", "proj_weight", "proj_bias", "norm_weight", "norm_bias"}

func (k ParamKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("ParamKind(%d)", int(k))
}

// IsProjection reports whether k is a projection weight or bias: the parameters
// that merge rules combine.
func (k ParamKind) IsProjection() bool { return k == ProjWeight || k == ProjBias }

// Use is one place where a layer reads a parameter.
type Use struct {
	// Node is the index, in the model's graph.node, of the layer node that reads it.
	Node int
	// Input is the input position of Node that reads it.
	Input int
	// Via lists the nodes (indices in graph.node) between the tensor and Node, from
	// the tensor's side: Identity (deduplicated weights), Transpose or Cast. Empty
	// when Node reads the tensor directly.
	Via []int
}

// Param is one parameter slot of a layer. Slot k of every layer plays the same
// structural role (the same projection, bias or norm).
type Param struct {
	// Slot is the index in Layer.Params, equal across layers for the same role.
	Slot int
	Kind ParamKind
	// Role is a short structural description of the slot, the same in every layer:
	// "attn.norm_weight", "attn.proj_weight.2", "mlp.proj_bias.0", ...
	Role string
	// Name is the initializer (or Constant node output) holding the tensor. Layers
	// whose weights an exporter deduplicated share a name.
	Name string
	// DType is the tensor's element type ("float32", "float16", ...).
	DType string
	Dims  []int64
	// Elements is the product of Dims.
	Elements int64
	// Transposed is set for a projection weight stored [out, in] (y = x·Wᵀ: Gemm
	// transB=1 or a Transpose node); unset for [in, out] (y = x·W).
	Transposed bool
	// Uses are the places where the layer reads the tensor.
	Uses []Use
	// Hint is what the exporter's node names say about the slot in this layer
	// ("self_attn/q_proj/MatMul"); for people only, may be empty or misleading.
	Hint string
}

// Layer is one decoder layer: the nodes between h_i and h_{i+1}.
type Layer struct {
	Index int
	// Input is h_i, the residual stream entering the layer; Output is h_{i+1}.
	// With fused residual adds (Stack.Branch), the layer's input norm adds
	// InputBranch to Input, and the layer leaves OutputBranch for the next norm
	// to add to Output; both are empty otherwise (and InputBranch for layer 0).
	Input, Output             string
	InputBranch, OutputBranch string
	// OutputBranchBias is Stack.BranchBias[Index+1]: the constant the next
	// norm adds with OutputBranch (a parameter slot of this layer), or "".
	OutputBranchBias string
	// Nodes are the layer's nodes as indices in the model's graph.node, ascending.
	Nodes []int
	// Params are the layer's parameter slots, aligned across layers.
	Params []Param
	// Projections are the layer's weight projections, in the order of their
	// weight slots, and Norms its normalizations, in the order of their scale
	// slots; both aligned across layers.
	Projections []Projection
	Norms       []Norm
	// Past are graph inputs only this layer reads (KV cache: past_key_values.i.*),
	// Present the graph outputs it produces (present.i.*), each in a structural
	// order that is the same for every layer (the names are only hints).
	Past, Present []string
	// Attention is how the layer's attention splits into heads, nil when the
	// graph does not say.
	Attention *Attention
}

// NumParams returns the number of parameter elements in the layer (a tensor shared
// by two slots counts once).
func (l *Layer) NumParams() int64 {
	seen := map[string]bool{}
	var n int64
	for _, p := range l.Params {
		if !seen[p.Name] {
			seen[p.Name] = true
			n += p.Elements
		}
	}
	return n
}

// Stack is the decoder stack of a model: the residual stream and its layers.
type Stack struct {
	// Tokens is the graph input holding token ids (the embedding's indices).
	Tokens string
	// Embedding is the output of the token-embedding lookup (a Gather).
	Embedding string
	// Hidden is the residual stream h_0 (embedding output, after any position
	// embedding or scaling) … h_L (output of the last layer, before the final norm).
	Hidden []string
	// Branch is set when the layout fuses each residual add into the next norm
	// (onnxruntime-genai's SkipSimplifiedLayerNormalization): Branch[i] is the
	// last residual branch of layer i−1, not yet added, so the stream entering
	// layer i is Hidden[i] + Branch[i], summed by layer i's input norm (by the
	// final norm for i = L). Branch[0] is empty. Nil for other layouts.
	Branch []string
	// BranchBias[i], on a fused stack whose norms also add the branch's bias
	// (onnxruntime's SkipLayerNormalization input 4, the transformer
	// optimizer's GPT-2), is the constant the norm at boundary i adds with
	// Branch[i]: the stream is then Hidden[i] + Branch[i] + BranchBias[i].
	// Nil when no boundary norm adds a bias.
	BranchBias []string
	Layers     []Layer
	// Period is the number of residual branches per layer: 2 for attention + MLP,
	// 1 for parallel attention/MLP blocks.
	Period int
	// FinalNorm is the value fed to the LM head: the final-normed hidden state.
	FinalNorm string
	// Logits is the graph output holding the logits.
	Logits string
	// LMHead is the index in graph.node of the LM head projection.
	LMHead int
	// LMHeadWeight is the initializer of the LM head's weight.
	LMHeadWeight string
	// TiedEmbeddings reports that the LM head's weight is the embedding table (the
	// same tensor, or a copy stored transposed).
	TiedEmbeddings bool
	// Shared are the values computed outside the layers that layers read other than
	// the stream and parameters: causal mask, RoPE tables, positions, constants
	// produced by nodes. Sorted.
	Shared []string
	// SharedNodes are the nodes that belong to no layer (indices in graph.node).
	SharedNodes []int
	// NumNodes is the number of nodes of the model's graph (a fingerprint that
	// rewrite checks).
	NumNodes int
}

// NumLayers returns the number of decoder layers.
func (s *Stack) NumLayers() int { return len(s.Layers) }

// String summarises the stack on one line.
func (s *Stack) String() string {
	return fmt.Sprintf("%d layers (%d residual branches each), h_0=%q, h_L=%q, lm_head input %q",
		len(s.Layers), s.Period, s.Hidden[0], s.Hidden[len(s.Hidden)-1], s.FinalNorm)
}

// NotDecoderError says why a model is not a stack of identical decoder layers.
type NotDecoderError struct {
	// Layer is the layer that differs from the others, or -1.
	Layer int
	// Reason is a sentence for people.
	Reason string
}

func (e *NotDecoderError) Error() string {
	return "not a stack of identical decoder layers: " + e.Reason
}

func notDecoder(layer int, format string, args ...any) *NotDecoderError {
	return &NotDecoderError{Layer: layer, Reason: fmt.Sprintf(format, args...)}
}

func joinLimited(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
}
