package discover

import "fmt"

// This file holds the exported description of what a layer's parameter slots
// are for: its projections (which node, which weight and bias slots, how the
// weight is stored, where its result goes) and its norms. Layer.Params say what
// each tensor is; Layer.Projections and Layer.Norms say how the layer uses them.
// Both are aligned across layers: entry i plays the same role in every layer.

// ProjRole is what a projection computes in its layer, found from the graph's
// structure (not from names).
type ProjRole int

// Projection roles. Later formats add roles (a packed gate/up projection, ...);
// RoleUnknown is the answer whenever the structure does not say.
const (
	// RoleUnknown: a projection whose role the structure does not tell (no
	// Softmax attention found in the layer, or an ambiguous pattern).
	RoleUnknown ProjRole = iota
	// RoleQ, RoleK and RoleV feed the attention's query (left of QKᵀ), key
	// (right of QKᵀ) and value (right of the attention-weighted sum).
	RoleQ
	RoleK
	RoleV
	// RoleQKV is a packed projection that feeds all three (GPT-2's c_attn).
	RoleQKV
	// RoleO reads the attention's result.
	RoleO
	// RoleGate and RoleUp read the MLP's input; the gate's result goes through
	// an activation before meeting the up projection's (SwiGLU, GeGLU). An MLP
	// with one input projection (GPT-2's c_fc) has only RoleUp.
	RoleGate
	RoleUp
	// RoleDown reads what the MLP's input projections computed.
	RoleDown
)

var roleNames = [...]string{"unknown", "q", "k", "v", "qkv", "o", "gate", "up", "down"}

func (r ProjRole) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("ProjRole(%d)", int(r))
}

// Storage is how a projection's weight is stored, which says what its weight
// inputs hold.
type Storage int

// Storage kinds. Quantized formats (MatMulNBits: packed 4-bit weight, scales,
// zero points) add kinds here and parts in WeightPart.
const (
	// Dense is a float matrix read by MatMul or Gemm: one weight input, stored
	// [in, out], or [out, in] when Projection.Transposed.
	Dense Storage = iota
	// NBits is com.microsoft.MatMulNBits: blockwise 4- or 8-bit values along
	// the input axis (Packed [out, blocks, block·bits/8]), one scale a block
	// (Scales), and optional ZeroPoints; Projection.Bits and BlockSize say how.
	// Package quant packs and unpacks it.
	NBits
	// Int8PerTensor is MatMulInteger over a DynamicQuantizeLinear of the input:
	// an 8-bit Matrix [in, out], its ZeroPoints and Scales (one each for the
	// tensor); the scale is applied to the product by the Muls after it
	// (onnxruntime's IntegerOps quantizer), and Projection.Output is theirs.
	Int8PerTensor
)

var storageNames = [...]string{"dense", "nbits", "int8"}

func (s Storage) String() string {
	if int(s) < len(storageNames) {
		return storageNames[s]
	}
	return fmt.Sprintf("Storage(%d)", int(s))
}

// MarshalText writes the storage's name (JSON output of inspect).
func (s Storage) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// WeightPart is what one weight input of a projection holds.
type WeightPart int

// Weight parts.
const (
	// Matrix is the weight matrix itself (for Dense storage, the whole weight).
	Matrix WeightPart = iota
	// Packed is MatMulNBits's packed quantized values.
	Packed
	// Scales are the quantization scales (one a block for NBits).
	Scales
	// ZeroPoints are the quantization zero points (packed for NBits).
	ZeroPoints
)

var partNames = [...]string{"matrix", "packed", "scales", "zero_points"}

func (p WeightPart) String() string {
	if int(p) < len(partNames) {
		return partNames[p]
	}
	return fmt.Sprintf("WeightPart(%d)", int(p))
}

// MarshalText writes the part's name (JSON output of inspect).
func (p WeightPart) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// WeightInput is one input of a projection node that holds (a part of) its
// weight.
type WeightInput struct {
	Part WeightPart
	// Node is the index in graph.node of the node reading it: Projection.Node,
	// or for Int8PerTensor's Scales the Mul that multiplies them with the
	// input's dynamic scale.
	Node int
	// Input is the input position of Node that reads it.
	Input int
	// Slot is the parameter slot (index in Layer.Params) of the tensor.
	Slot int
	// Name is the initializer (or Constant output) holding the tensor; equal to
	// Layer.Params[Slot].Name.
	Name string
}

// Projection is one weight projection of a layer: y = x·W (+ b).
type Projection struct {
	Role ProjRole
	// Node is the index in graph.node of the node computing the product; Op is
	// its op type ("MatMul", "Gemm").
	Node int
	Op   string
	// Storage says how the weight is stored and so what Weights hold.
	Storage Storage
	// Weights are the inputs that hold the weight (one Matrix for Dense;
	// Packed, Scales and ZeroPoints when present for NBits; Matrix, ZeroPoints
	// and Scales for Int8PerTensor).
	Weights []WeightInput
	// Bits and BlockSize are NBits's attributes (0 for other storage).
	Bits, BlockSize int
	// Transposed is set when the weight is read as [out, in] (Gemm transB=1 or a
	// Transpose node), as Param.Transposed of its Matrix slot.
	Transposed bool
	// In and Out are the numbers of input and output features (0 when the
	// weight is not a 2-D matrix).
	In, Out int64
	// Bias is the slot of the bias added to the product, -1 if none; BiasNode
	// the index in graph.node of the node adding it (the Gemm itself, an Add,
	// a FastGelu/BiasGelu that adds it before the activation, or a
	// SkipLayerNormalization that adds it with the residual branch: then
	// in the next layer, or the final norm, for the last branch), -1 if none.
	Bias, BiasNode int
	// Output is the value holding the product with its bias: the output of
	// BiasNode, or of Node when there is no bias or a skip norm adds it (no
	// value holds the sum then).
	Output string
	// Residual is set on the projection that writes the layer's last residual
	// branch: the value, Output or a reshape of it, that the node computing the
	// layer's output (h_{i+1} = h + Residual) reads. Empty otherwise.
	Residual string
}

// Matrix returns the slot of the projection's weight matrix (the packed values
// for NBits), -1 if it has none.
func (p *Projection) Matrix() int {
	for _, w := range p.Weights {
		if w.Part == Matrix || w.Part == Packed {
			return w.Slot
		}
	}
	return -1
}

// Part returns the weight input holding part, and whether there is one.
func (p *Projection) Part(part WeightPart) (WeightInput, bool) {
	for _, w := range p.Weights {
		if w.Part == part {
			return w, true
		}
	}
	return WeightInput{}, false
}

// Norm is one normalization's parameters in a layer.
type Norm struct {
	// Node is the index in graph.node of the node reading the scale: a
	// LayerNormalization-family op, or the Mul of a decomposed norm (RMSNorm,
	// LayerNorm written as ReduceMean, Sqrt, ...). Op is its op type.
	Node int
	Op   string
	// Scale and Shift are the slots of the scale and shift, -1 if none.
	Scale, Shift int
}
