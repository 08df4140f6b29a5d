package prune

import (
	"fmt"
	"math"
	"slices"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/distill"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/internal/rowmajor"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
)

// This file moves one decoder layer's weights between an ONNX graph and a
// distill.Layer, through discover's aligned slots (the roles of the
// projections and the order of the norms; never the exporter's names), and
// finds the layer's hyper-parameters that the slots do not carry (heads,
// norm epsilon, rotary base) by asking which of a few candidates makes
// distill.Forward reproduce the runtime on a calibration boundary.

// layerArch is what distill needs besides the weights.
type layerArch struct {
	Kind          distill.Kind
	Heads, KVHead int
	HeadDim       int
	Eps           float32
	Theta         float64 // rotary base; 0: no rotary
	// Err is how far Forward is from the runtime on the probe (relative to
	// the largest |y|).
	Err float64
}

func (a layerArch) String() string {
	s := fmt.Sprintf("%s, %d heads (%d kv) of %d, eps %g", a.Kind, a.Heads, a.KVHead, a.HeadDim, a.Eps)
	if a.Theta > 0 {
		s += fmt.Sprintf(", rotary base %g", a.Theta)
	}
	return s + fmt.Sprintf("; matches the runtime to %.1e", a.Err)
}

// slotRef says where a distill parameter lives in the graph: a slot, and for
// a packed q/k/v projection which third of it.
type slotRef struct {
	slot  int
	part  int // -1: the whole tensor; 0..2: q, k, v third of a packed projection
	trans bool
	rows  int // rows of the [in, out] matrix (1 for a bias)
}

// layerWeights is a layer read from a graph.
type layerWeights struct {
	l    *distill.Layer // dimensions other than Hidden/FFN/projection widths unset
	refs map[string]slotRef
	qOut int // width of q (or of a packed q/k/v's third)
	kOut int
}

// tensorTable finds the float tensors of a model by value name: initializers
// and Constant outputs.
type tensorTable map[string]*pb.TensorProto

func newTensorTable(m *pb.ModelProto) tensorTable {
	t := tensorTable{}
	for _, in := range m.GetGraph().GetInitializer() {
		t[in.GetName()] = in
	}
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() != "Constant" || len(n.GetOutput()) != 1 {
			continue
		}
		for _, a := range n.GetAttribute() {
			if a.GetName() == "value" && a.GetT() != nil {
				t[n.GetOutput()[0]] = a.GetT()
			}
		}
	}
	return t
}

func (t tensorTable) floats(name string) ([]float32, error) {
	tp := t[name]
	if tp == nil {
		return nil, fmt.Errorf("tensor %q not found", name)
	}
	v, err := onnx.Float32s(tp)
	if err != nil {
		return nil, err
	}
	return slices.Clone(v), nil
}

// readLayer reads layer l's weights from tensors, by the roles discover
// gives its projections and the order of its norms (attention's first).
func readLayer(tensors tensorTable, l *discover.Layer) (*layerWeights, error) {
	lw := &layerWeights{l: &distill.Layer{}, refs: map[string]slotRef{}}
	dl := lw.l
	read := func(name string, slot int, trans bool, part int) error {
		p := l.Params[slot]
		v, err := tensors.floats(p.Name)
		if err != nil {
			return fmt.Errorf("%s (slot %d): %w", name, slot, err)
		}
		rows, cols := 1, len(v)
		if len(p.Dims) == 2 {
			rows, cols = int(p.Dims[0]), int(p.Dims[1])
			if trans {
				v = rowmajor.Transpose(v, rows, cols)
				rows, cols = cols, rows
			}
		}
		if part >= 0 {
			if cols%3 != 0 {
				return fmt.Errorf("%s (slot %d): a packed q/k/v of %d columns", name, slot, cols)
			}
			q, k, vv := distill.SplitQKV(v, rows, cols/3)
			v = [][]float32{q, k, vv}[part]
		}
		*paramData(dl, name) = v
		lw.refs[name] = slotRef{slot: slot, part: part, trans: trans, rows: rows}
		return nil
	}
	names := map[discover.ProjRole][2]string{
		discover.RoleQ: {"q", "q_bias"}, discover.RoleK: {"k", "k_bias"}, discover.RoleV: {"v", "v_bias"},
		discover.RoleO: {"o", "o_bias"}, discover.RoleGate: {"gate", ""}, discover.RoleUp: {"up", "up_bias"},
		discover.RoleDown: {"down", "down_bias"},
	}
	for i := range l.Projections {
		p := &l.Projections[i]
		if p.Storage != discover.Dense || p.Matrix() < 0 {
			return nil, fmt.Errorf("projection %d (%s) is not a dense matrix", i, p.Role)
		}
		if p.Role == discover.RoleQKV {
			for part, n := range []string{"q", "k", "v"} {
				if err := read(n, p.Matrix(), p.Transposed, part); err != nil {
					return nil, err
				}
				if p.Bias >= 0 {
					if err := read(n+"_bias", p.Bias, false, part); err != nil {
						return nil, err
					}
				}
			}
			continue
		}
		n, ok := names[p.Role]
		if !ok {
			return nil, fmt.Errorf("projection %d has a role (%s) distillation does not know", i, p.Role)
		}
		if _, dup := lw.refs[n[0]]; dup {
			return nil, fmt.Errorf("two %s projections", p.Role)
		}
		if err := read(n[0], p.Matrix(), p.Transposed, -1); err != nil {
			return nil, err
		}
		if p.Bias >= 0 {
			if n[1] == "" {
				return nil, fmt.Errorf("a bias on the %s projection", p.Role)
			}
			if err := read(n[1], p.Bias, false, -1); err != nil {
				return nil, err
			}
		}
	}
	if len(l.Norms) != 2 {
		return nil, fmt.Errorf("%d norms, want 2 (attention's and the MLP's)", len(l.Norms))
	}
	for i, prefix := range []string{"attn_norm", "mlp_norm"} {
		nm := l.Norms[i]
		if nm.Scale < 0 {
			return nil, fmt.Errorf("the %s has no scale", prefix)
		}
		if err := read(prefix, nm.Scale, false, -1); err != nil {
			return nil, err
		}
		if nm.Shift >= 0 {
			if err := read(prefix+"_bias", nm.Shift, false, -1); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range []string{"q", "k", "v", "o", "up", "down"} {
		if _, ok := lw.refs[n]; !ok {
			return nil, fmt.Errorf("no %s projection found", n)
		}
	}
	dl.Kind = distill.GPT2
	if dl.Gate != nil {
		dl.Kind = distill.Llama
	}
	dl.Hidden = len(dl.AttnNorm)
	dl.FFN = len(dl.Up) / dl.Hidden
	lw.qOut = len(dl.Q) / dl.Hidden
	lw.kOut = len(dl.K) / dl.Hidden
	return lw, nil
}

// paramData returns the field of l that holds the parameter name.
func paramData(l *distill.Layer, name string) *[]float32 {
	fields := map[string]*[]float32{
		"attn_norm": &l.AttnNorm, "attn_norm_bias": &l.AttnNormBias, "q": &l.Q, "q_bias": &l.QBias,
		"k": &l.K, "k_bias": &l.KBias, "v": &l.V, "v_bias": &l.VBias, "o": &l.O, "o_bias": &l.OBias,
		"mlp_norm": &l.MLPNorm, "mlp_norm_bias": &l.MLPNormBias, "gate": &l.Gate, "up": &l.Up,
		"up_bias": &l.UpBias, "down": &l.Down, "down_bias": &l.DownBias,
	}
	return fields[name]
}

// withArch returns lw's layer with a's hyper-parameters for rows of t tokens.
func (lw *layerWeights) withArch(a layerArch, t int) *distill.Layer {
	l := *lw.l
	l.Kind, l.Heads, l.KVHeads, l.HeadDim, l.Eps = a.Kind, a.Heads, a.KVHead, a.HeadDim, a.Eps
	l.Scale = float32(math.Sqrt(float64(a.HeadDim)))
	if a.Theta > 0 {
		r := distill.RotaryTables(a.HeadDim, t, a.Theta)
		l.Rotary = &r
	}
	return &l
}

// probeArch finds the heads, epsilon and rotary base under which Forward of
// lw maps x to y (a prefix of a calibration row: attention is causal, so a
// prefix's outputs do not depend on what follows). It tries the usual
// values and keeps the closest; it fails when none comes within tol.
func probeArch(lw *layerWeights, x, y []float32, t int, tol float64) (layerArch, error) {
	best := layerArch{Err: math.Inf(1)}
	ymax := stats.MaxAbs(y)
	thetas := []float64{0}
	if lw.l.Kind == distill.Llama {
		thetas = []float64{10000, 500000, 1e6, 0}
	}
	for _, hd := range []int{64, 128, 32, 80, 96, 256, 16, 8} {
		if lw.qOut%hd != 0 || lw.kOut%hd != 0 || (lw.qOut/hd)%(lw.kOut/hd) != 0 {
			continue
		}
		for _, eps := range []float32{1e-5, 1e-6} {
			for _, th := range thetas {
				a := layerArch{Kind: lw.l.Kind, Heads: lw.qOut / hd, KVHead: lw.kOut / hd, HeadDim: hd, Eps: eps, Theta: th}
				got, err := distill.Forward(lw.withArch(a, t), x, t)
				if err != nil {
					continue
				}
				if a.Err = stats.MaxAbsDiff(y, got) / math.Max(ymax, 1e-30); a.Err < best.Err {
					best = a
				}
			}
		}
		if best.Err <= tol {
			// A wrong head size is off by far more than a wrong epsilon or
			// rotary base, all of which were compared for this one.
			return best, nil
		}
	}
	if !(best.Err <= tol) {
		return best, fmt.Errorf("no head count, norm epsilon or rotary base tried makes the layer compute what the model does (closest: %.2g of the largest value)", best.Err)
	}
	return best, nil
}

// writeLayer stores trained's tensors in g as new initializers (in the
// dtype and layout of the ones they replace) and points layer l's uses at
// them. Tensors of l are never modified: they may be shared with the
// original model.
func writeLayer(g *graph.Graph, l *discover.Layer, lw *layerWeights, trained *distill.Layer, suffix string) error {
	byIndex := map[int]*graph.Node{}
	for _, n := range g.Nodes {
		if n.Index >= 0 {
			byIndex[n.Index] = n
		}
	}
	node := func(i int) *graph.Node { return byIndex[i] }
	// Gather each slot's new contents (a packed q/k/v takes three params).
	type slotData struct {
		parts [3][]float32
		whole []float32
		ref   slotRef
	}
	slots := map[int]*slotData{}
	var order []int
	for _, p := range trained.Params() {
		ref, ok := lw.refs[p.Name]
		if !ok {
			return fmt.Errorf("trained %s has no slot", p.Name)
		}
		sd := slots[ref.slot]
		if sd == nil {
			sd = &slotData{ref: ref}
			slots[ref.slot] = sd
			order = append(order, ref.slot)
		}
		if ref.part >= 0 {
			sd.parts[ref.part] = *p.Data
		} else {
			sd.whole = *p.Data
		}
	}
	slices.Sort(order)
	for _, slot := range order {
		sd := slots[slot]
		p := l.Params[slot]
		data := sd.whole
		if sd.ref.part >= 0 {
			if sd.parts[0] == nil || sd.parts[1] == nil || sd.parts[2] == nil {
				return fmt.Errorf("slot %d: a packed q/k/v lacks a part", slot)
			}
			data = distill.JoinQKV(sd.parts[0], sd.parts[1], sd.parts[2], sd.ref.rows, len(sd.parts[0])/sd.ref.rows)
		}
		if sd.ref.trans {
			data = rowmajor.Transpose(data, sd.ref.rows, len(data)/sd.ref.rows)
		}
		old := graph.Constant(g.Value(p.Name))
		if old == nil {
			return fmt.Errorf("slot %d (%s): %q is not a constant tensor", slot, p.Role, p.Name)
		}
		t, err := onnx.EncodeLike(g.UniqueName(p.Name+suffix), old, data)
		if err != nil {
			return fmt.Errorf("slot %d (%s): %w", slot, p.Role, err)
		}
		v, err := g.AddInitializer(t)
		if err != nil {
			return err
		}
		// A Transpose or Cast the tensor is read through is rewired when
		// only this use reads it, and copied otherwise.
		copyNode := func(n *graph.Node) (*graph.Node, error) { return rewrite.CopyNode(g, n, n.Name+suffix, suffix) }
		if err := rewrite.PointUses(g, node, p, v, rewrite.OnlyReader, copyNode); err != nil {
			return fmt.Errorf("slot %d (%s): %w", slot, p.Role, err)
		}
	}
	return nil
}
