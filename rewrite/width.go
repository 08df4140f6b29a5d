package rewrite

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// This file is the width pass: it removes intermediate channels of layers'
// MLPs (columns of the gate and up projections, the matching rows of the down
// projection, and the matching entries of their biases), folds the removed
// channels' mean contribution into the down projection's bias (FLAP's
// compensation), and rewrites the shape constants the exporter baked in that
// name the MLP's width. Which projection is which comes from discover's
// Projection slots (roles gate, up, down), never from node names.

// MLPChannels says which intermediate channels of one layer's MLP stay.
type MLPChannels struct {
	// Layer is the layer's index in the stack given to Width.
	Layer int
	// Keep are the channels kept (indices into the MLP's width), ascending,
	// at least one.
	Keep []int
	// Mean, when set (one value per channel of the original width), is the
	// mean over calibration tokens of each channel's value as the down
	// projection reads it. The removed channels' mean contribution,
	// Σ_{j removed} Mean[j]·W_down[j,:], is then added to the down
	// projection's bias; a down projection without a bias gets one (an Add
	// after it).
	Mean []float32
	// Down, when set, is the down projection's new weight for the kept
	// channels, len(Keep)×out in the [in, out] orientation (row k is kept
	// channel Keep[k]), instead of the original rows: a refit of the down
	// projection on the kept channels (prune's least-squares refit).
	Down []float32
	// Offset, when set (out values), is added to the down projection's bias
	// (one is added where there is none), in place of Mean's compensation.
	Offset []float32
}

// WidthPlan lists the layers whose MLPs lose channels; a layer not listed is
// unchanged.
type WidthPlan struct {
	MLP []MLPChannels
	// Heads lists the layers whose attentions lose query heads (heads.go).
	Heads []AttnHeads
}

// WidthChange is what Width did to one layer.
type WidthChange struct {
	Layer int `json:"layer"`
	// Before and After are the MLP's widths.
	Before int `json:"mlp_before"`
	After  int `json:"mlp_after"`
	// Compensated is set when the removed channels' mean went into a bias;
	// AddedBias when that bias is new (the down projection had none).
	Compensated bool `json:"compensated"`
	AddedBias   bool `json:"added_bias,omitempty"`
	// Refit is set when the down weight was replaced (MLPChannels.Down).
	Refit bool `json:"refit,omitempty"`
	// Shapes counts the shape constants rewritten (Reshape targets).
	Shapes int `json:"shapes_rewritten"`
	// Heads is what was done to the layer's attention heads, nil when nothing.
	Heads *HeadChange `json:"heads,omitempty"`
}

// WidthResult is a width-pruned model and what was done.
type WidthResult struct {
	Model   *pb.ModelProto
	Changes []WidthChange
}

// widther holds one width rewrite.
type widther struct {
	g       *graph.Graph
	s       *discover.Stack
	byIndex []*graph.Node
}

// Width returns a copy of m whose listed layers' MLPs keep only plan's
// channels. s must be discover.Find(m). m is not modified; untouched tensors
// are shared with it. Only opt.Meta (an "onnxslm.mlp_widths" entry unless
// Omit) and opt.Check are used.
func Width(m *pb.ModelProto, s *discover.Stack, plan WidthPlan, opt Options) (*WidthResult, error) {
	g, err := stackGraph(m, s)
	if err != nil {
		return nil, err
	}
	w := &widther{g: g, s: s, byIndex: slices.Clone(g.Nodes)}
	res := &WidthResult{}
	at := map[int]int{} // layer → index in res.Changes
	seen := map[int]bool{}
	for _, c := range plan.MLP {
		if err := w.layerOnce(seen, c.Layer, "width"); err != nil {
			return nil, err
		}
		ch, err := w.mlp(c)
		if err != nil {
			return nil, fmt.Errorf("rewrite: MLP width of layer %d: %w", c.Layer, err)
		}
		at[c.Layer] = len(res.Changes)
		res.Changes = append(res.Changes, ch)
		if err := w.check(opt, "the MLP width", c.Layer); err != nil {
			return nil, err
		}
	}
	seen = map[int]bool{}
	for _, c := range plan.Heads {
		if err := w.layerOnce(seen, c.Layer, "heads"); err != nil {
			return nil, err
		}
		hc, err := w.heads(c)
		if err != nil {
			return nil, fmt.Errorf("rewrite: attention heads of layer %d: %w", c.Layer, err)
		}
		i, ok := at[c.Layer]
		if !ok {
			mw := MLPWidth(&s.Layers[c.Layer])
			i = len(res.Changes)
			res.Changes = append(res.Changes, WidthChange{Layer: c.Layer, Before: mw, After: mw})
		}
		res.Changes[i].Heads = &hc
		if err := w.check(opt, "the attention heads", c.Layer); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(res.Changes, func(a, b WidthChange) int { return a.Layer - b.Layer })
	g.RemoveDead()
	if err := g.Sort(); err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	if !opt.Meta.Omit && len(res.Changes) > 0 {
		widths := make([]int, len(s.Layers))
		heads := make([]int, len(s.Layers))
		for i, l := range s.Layers {
			widths[i] = MLPWidth(&l)
			if l.Attention != nil {
				heads[i] = l.Attention.Heads
			}
		}
		for _, c := range res.Changes {
			widths[c.Layer] = c.After
			if c.Heads != nil {
				heads[c.Layer] = c.Heads.After
			}
		}
		setMeta(g, "onnxslm.mlp_widths", widths)
		if len(plan.Heads) > 0 {
			setMeta(g, "onnxslm.attn_heads", heads)
		}
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	res.Model = g.Model()
	return res, nil
}

// setMeta sets the metadata entry key to v in JSON.
func setMeta(g *graph.Graph, key string, v any) {
	b, _ := json.Marshal(v)
	g.Meta = slices.DeleteFunc(slices.Clone(g.Meta), func(kv *pb.StringStringEntryProto) bool { return kv.GetKey() == key })
	g.Meta = append(g.Meta, &pb.StringStringEntryProto{Key: proto.String(key), Value: proto.String(string(b))})
}

// layerOnce checks that layer is in the stack and not given twice.
func (w *widther) layerOnce(seen map[int]bool, layer int, what string) error {
	if layer < 0 || layer >= len(w.s.Layers) {
		return fmt.Errorf("rewrite: %s of layer %d: the model has %d layers", what, layer, len(w.s.Layers))
	}
	if seen[layer] {
		return fmt.Errorf("rewrite: %s of layer %d given twice", what, layer)
	}
	seen[layer] = true
	return nil
}

// check validates the graph after a layer's change when opt.Check asks.
func (w *widther) check(opt Options, what string, layer int) error {
	if !opt.Check {
		return nil
	}
	if err := w.g.Validate(); err != nil {
		return fmt.Errorf("rewrite: after %s of layer %d: %w", what, layer, err)
	}
	return nil
}

// MLPProjections returns layer l's MLP projections: the gate (nil when the MLP
// has none), up and down, found by their roles. It fails when the layer has no
// up and down projection of one width, or one that is not a dense matrix.
func MLPProjections(l *discover.Layer) (gate, up, down *discover.Projection, err error) {
	for i := range l.Projections {
		p := &l.Projections[i]
		var dst **discover.Projection
		switch p.Role {
		case discover.RoleGate:
			dst = &gate
		case discover.RoleUp:
			dst = &up
		case discover.RoleDown:
			dst = &down
		default:
			continue
		}
		if *dst != nil {
			return nil, nil, nil, fmt.Errorf("two %s projections", p.Role)
		}
		*dst = p
	}
	if up == nil || down == nil {
		return nil, nil, nil, fmt.Errorf("no up and down projections found (the layer's %d projections have no MLP roles)", len(l.Projections))
	}
	for _, p := range []*discover.Projection{gate, up, down} {
		if p == nil {
			continue
		}
		if err := denseErr(p); err != nil {
			return nil, nil, nil, err
		}
	}
	if up.Out != down.In || (gate != nil && gate.Out != down.In) {
		return nil, nil, nil, fmt.Errorf("the MLP's projections disagree on its width (up %d, down %d)", up.Out, down.In)
	}
	return gate, up, down, nil
}

// denseErr is nil when projection p is a dense matrix Width can slice, else
// the refusal naming its op and storage (quantized weights are not sliced:
// MatMulNBits blocks run along the input features, and neither it nor
// MatMulInteger is re-quantized here).
func denseErr(p *discover.Projection) error {
	switch {
	case p.Storage != discover.Dense:
		return fmt.Errorf("the %s projection is a %s of %s weights: width pruning of quantized layouts is not supported", p.Role, p.Op, p.Storage)
	case p.Matrix() < 0 || p.In <= 0 || p.Out <= 0:
		return fmt.Errorf("the %s projection (%s) is not a dense matrix", p.Role, p.Op)
	}
	return nil
}

// MLPWidth is layer l's MLP width, 0 when it has no MLP Width understands.
func MLPWidth(l *discover.Layer) int {
	_, _, down, err := MLPProjections(l)
	if err != nil {
		return 0
	}
	return int(down.In)
}

// MLPChannelParams is the number of parameters one intermediate channel of
// layer l's MLP holds: a column of the gate and up weights, a row of the down
// weight, and an entry of the gate and up biases.
func MLPChannelParams(l *discover.Layer) (int64, error) {
	gate, up, down, err := MLPProjections(l)
	if err != nil {
		return 0, err
	}
	n := up.In + down.Out
	if up.Bias >= 0 {
		n++
	}
	if gate != nil {
		n += gate.In
		if gate.Bias >= 0 {
			n++
		}
	}
	return n, nil
}

func (w *widther) mlp(c MLPChannels) (WidthChange, error) {
	l := &w.s.Layers[c.Layer]
	gate, up, down, err := MLPProjections(l)
	if err != nil {
		return WidthChange{}, err
	}
	F := int(down.In)
	ch := WidthChange{Layer: c.Layer, Before: F, After: len(c.Keep)}
	if len(c.Keep) == 0 {
		return ch, fmt.Errorf("keeps no channel")
	}
	for i, k := range c.Keep {
		if k < 0 || k >= F || (i > 0 && k <= c.Keep[i-1]) {
			return ch, fmt.Errorf("kept channels must be ascending and in [0, %d)", F)
		}
	}
	if err := checkInputs(F, int(down.Out), len(c.Keep), c.Mean, c.Down, c.Offset); err != nil {
		return ch, err
	}
	if len(c.Keep) == F {
		return ch, nil
	}
	for _, p := range []*discover.Projection{gate, up} {
		if p == nil {
			continue
		}
		if err := w.slice(l, p, c.Keep, false); err != nil {
			return ch, err
		}
	}
	refit, comp, added, err := w.inputs(l, down, c.Keep, c.Mean, c.Down, c.Offset)
	if err != nil {
		return ch, err
	}
	ch.Refit, ch.Compensated, ch.AddedBias = refit, comp, added
	n, err := w.shapes(l, []*discover.Projection{gate, up}, down, int64(F), int64(len(c.Keep)))
	if err != nil {
		return ch, err
	}
	ch.Shapes = n
	return ch, nil
}

// compensation is Σ_{j not kept} mean[j]·W[j,:] for a down weight W of in
// rows (the MLP's width) and out columns, stored [in, out] or, transposed,
// [out, in]; accumulated in float64.
func compensation(wt []float32, transposed bool, in, out int, keep []int, mean []float32) []float32 {
	kept := make([]bool, in)
	for _, k := range keep {
		kept[k] = true
	}
	acc := make([]float64, out)
	for j := 0; j < in; j++ {
		if kept[j] || mean[j] == 0 {
			continue
		}
		m := float64(mean[j])
		for o := 0; o < out; o++ {
			x := wt[j*out+o]
			if transposed {
				x = wt[o*in+j]
			}
			acc[o] += m * float64(x)
		}
	}
	res := make([]float32, out)
	for o, a := range acc {
		res[o] = float32(a)
	}
	return res
}

// checkInputs checks the sizes of what replaces a projection's input
// features (in of them, out outputs, kept of them kept) for inputs.
func checkInputs(in, out, kept int, mean, newW, offset []float32) error {
	if mean != nil && len(mean) != in {
		return fmt.Errorf("%d means for %d input features", len(mean), in)
	}
	if newW != nil && len(newW) != kept*out {
		return fmt.Errorf("new weight of %d values for %d kept features and %d outputs", len(newW), kept, out)
	}
	if offset != nil && (len(offset) != out || mean != nil) {
		return fmt.Errorf("an offset of %d values for %d outputs (and no means)", len(offset), out)
	}
	return nil
}

// inputs gives projection p (o or down) of layer l only the kept input
// features: its original rows for them, or newW (len(keep)×out, [in, out]
// orientation) when set; the removed features' mean contribution (mean, one
// per input feature) or offset, when set, goes into its bias (a new one where
// it has none). It reports whether the weight was replaced, a bias
// compensated and a bias added.
func (w *widther) inputs(l *discover.Layer, p *discover.Projection, keep []int, mean, newW, offset []float32) (refit, compensated, added bool, err error) {
	in, out := int(p.In), int(p.Out)
	var comp []float32
	if mean != nil {
		// The compensation reads the weight before it is sliced.
		wt, err := w.floats(l.Params[p.Matrix()].Name)
		if err != nil {
			return false, false, false, err
		}
		comp = compensation(wt, p.Transposed, in, out, keep, mean)
	}
	if offset != nil {
		comp = offset
	}
	if newW != nil {
		data, dims := newW, []int64{int64(len(keep)), int64(out)}
		if p.Transposed {
			data = make([]float32, len(newW))
			for k := range keep {
				for o := 0; o < out; o++ {
					data[o*len(keep)+k] = newW[k*out+o]
				}
			}
			dims = []int64{int64(out), int64(len(keep))}
		}
		if err := w.replace(l.Params[p.Matrix()], dims, data, "_w"); err != nil {
			return false, false, false, err
		}
		refit = true
	} else if err := w.slice(l, p, keep, true); err != nil {
		return false, false, false, err
	}
	if comp != nil {
		if added, err = w.addBias(l, p, comp); err != nil {
			return refit, false, false, err
		}
		compensated = true
	}
	return refit, compensated, added, nil
}

// slice gives projection p of layer l a weight (and bias) with only the kept
// channels: its output features when inSide is false (gate, up), its input
// features when set (down).
func (w *widther) slice(l *discover.Layer, p *discover.Projection, keep []int, inSide bool) error {
	wp := l.Params[p.Matrix()]
	wt, err := w.floats(wp.Name)
	if err != nil {
		return err
	}
	rows, cols := int(wp.Dims[0]), int(wp.Dims[1])
	// Stored [in, out]: output features are columns; transposed, rows.
	byRows := inSide != p.Transposed
	var data []float32
	var dims []int64
	if byRows {
		data = make([]float32, 0, len(keep)*cols)
		for _, k := range keep {
			data = append(data, wt[k*cols:(k+1)*cols]...)
		}
		dims = []int64{int64(len(keep)), int64(cols)}
	} else {
		data = make([]float32, 0, rows*len(keep))
		for r := 0; r < rows; r++ {
			for _, k := range keep {
				data = append(data, wt[r*cols+k])
			}
		}
		dims = []int64{int64(rows), int64(len(keep))}
	}
	if err := w.replace(wp, dims, data, "_w"); err != nil {
		return err
	}
	if p.Bias < 0 || inSide {
		return nil
	}
	bp := l.Params[p.Bias]
	b, err := w.floats(bp.Name)
	if err != nil {
		return err
	}
	if len(b) != int(p.Out) {
		return fmt.Errorf("bias %q of %d values for %d outputs", bp.Name, len(b), p.Out)
	}
	nb := make([]float32, len(keep))
	for i, k := range keep {
		nb[i] = b[k]
	}
	return w.replace(bp, []int64{int64(len(keep))}, nb, "_b")
}

// replace adds a tensor holding data in param p's type with dims, and makes
// every use of p in its layer read it.
func (w *widther) replace(p discover.Param, dims []int64, data []float32, suffix string) error {
	like := w.tensor(p.Name)
	if like == nil {
		return fmt.Errorf("%q is not a constant tensor", p.Name)
	}
	if graph.NumElements(dims) != int64(len(data)) {
		return fmt.Errorf("internal: %d values for dims %v", len(data), dims)
	}
	t, err := onnx.EncodeLike(w.g.UniqueName(p.Name+suffix), &pb.TensorProto{DataType: like.DataType, Dims: dims, Name: like.Name}, data)
	if err != nil {
		return err
	}
	v, err := w.g.AddInitializer(t)
	if err != nil {
		return err
	}
	// A Transpose or Cast the tensor was read through is copied to read the
	// new tensor (the original may be shared); Identity is skipped.
	return PointUses(w.g, nodeAt(w.byIndex), p, v, nil, func(n *graph.Node) (*graph.Node, error) {
		if len(n.Outputs) != 1 || n.Outputs[0] == nil {
			return nil, fmt.Errorf("tensor %q is read through %s: not supported", p.Name, n)
		}
		name := n.Name
		if name != "" {
			name = w.g.UniqueName(name + suffix)
		}
		return CopyNode(w.g, n, name, suffix)
	})
}

// computeType is the element type a projection computes in: the type a Cast
// on the way from its weight converts to, else the weight's own.
func (w *widther) computeType(p discover.Param, like *pb.TensorProto) int32 {
	for _, u := range p.Uses {
		for _, vi := range u.Via {
			if n := w.byIndex[vi]; n.Op == "Cast" {
				return int32(n.AttrInt("to", int64(like.GetDataType())))
			}
		}
	}
	return like.GetDataType()
}

// addBias adds comp to projection down's bias (the down or o projection), or
// gives it one (an Add after its output) when it has none; it reports whether
// the bias is new.
func (w *widther) addBias(l *discover.Layer, down *discover.Projection, comp []float32) (bool, error) {
	if down.Bias >= 0 {
		bp := l.Params[down.Bias]
		b, err := w.floats(bp.Name)
		if err != nil {
			return false, err
		}
		if len(b) != len(comp) {
			return false, fmt.Errorf("bias %q of %d values for %d outputs", bp.Name, len(b), len(comp))
		}
		nb := make([]float32, len(b))
		for i := range b {
			nb[i] = b[i] + comp[i]
		}
		return false, w.replace(bp, []int64{int64(len(nb))}, nb, "_b")
	}
	wp := l.Params[down.Matrix()]
	like := w.tensor(wp.Name)
	out := w.g.Value(down.Output)
	if like == nil || out == nil {
		return false, fmt.Errorf("down projection's output %q not found", down.Output)
	}
	t, err := onnx.EncodeLike(w.g.UniqueName(wp.Name+"_bias"), &pb.TensorProto{DataType: proto.Int32(w.computeType(wp, like)), Dims: []int64{int64(len(comp))}, Name: proto.String(wp.Name)}, comp)
	if err != nil {
		return false, err
	}
	if _, err := w.g.AddInitializer(t); err != nil {
		return false, err
	}
	readers := slices.Clone(out.Consumers)
	wasOutput := out.IsOutput()
	name := w.g.UniqueName(down.Output + "_bias")
	add, err := w.g.AddNode("Add", w.g.UniqueName(w.byIndex[down.Node].Name+"_bias"), []string{down.Output, t.GetName()}, []string{name})
	if err != nil {
		return false, err
	}
	for _, n := range readers {
		for i, v := range n.Inputs {
			if v == out {
				w.g.SetInput(n, i, add.Outputs[0])
			}
		}
	}
	if wasOutput {
		return false, fmt.Errorf("down projection's output %q is a graph output", down.Output)
	}
	return true, nil
}

// shapes rewrites the shape constants on the way from the gate and up
// projections to the down projection that name the old width F: the last
// entry of a Reshape target, constant or the last constant input of a Concat
// building it. It also drops declared types of the values on that way, whose
// last dimension changed. It returns the number of constants rewritten.
func (w *widther) shapes(l *discover.Layer, ins []*discover.Projection, down *discover.Projection, F, newF int64) (int, error) {
	inLayer := map[*graph.Node]bool{}
	for _, i := range l.Nodes {
		inLayer[w.byIndex[i]] = true
	}
	stop := w.byIndex[down.Node]
	var queue []*graph.Value
	for _, p := range ins {
		if p == nil {
			continue
		}
		n := w.byIndex[p.Node]
		queue = append(queue, n.Outputs...)
		if v := w.g.Value(p.Output); v != nil {
			queue = append(queue, v)
		}
	}
	seen := map[*graph.Value]bool{}
	count := 0
	for len(queue) > 0 && len(seen) < 256 {
		v := queue[0]
		queue = queue[1:]
		if v == nil || seen[v] {
			continue
		}
		seen[v] = true
		v.Info = nil // its last dimension was the old width
		for _, n := range slices.Clone(v.Consumers) {
			if n == stop || !(inLayer[n] || n.Index < 0) {
				continue
			}
			if n.Op == "Reshape" && len(n.Inputs) > 1 && n.Inputs[0] == v {
				ok, err := w.reshapeTarget(n, F, newF)
				if err != nil {
					return count, err
				}
				if ok {
					count++
				}
			}
			if n.Op == "Shape" || n.Op == "Size" {
				continue
			}
			queue = append(queue, n.Outputs...)
		}
	}
	return count, nil
}

func (w *widther) tensor(name string) *pb.TensorProto {
	v := w.g.Value(name)
	if v == nil {
		return nil
	}
	if t := graph.Constant(v); t != nil {
		return t
	}
	return v.Init
}

func (w *widther) floats(name string) ([]float32, error) {
	t := w.tensor(name)
	if t == nil {
		return nil, fmt.Errorf("%q is not a constant tensor", name)
	}
	return onnx.Float32s(t)
}

// String renders the change for people ("layer 3: MLP 384 → 256, compensated").
func (c WidthChange) String() string {
	s := "layer " + strconv.Itoa(c.Layer) + ": MLP " + strconv.Itoa(c.Before) + " → " + strconv.Itoa(c.After)
	if c.Compensated {
		s += ", compensated"
	}
	return s
}
