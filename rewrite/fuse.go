package rewrite

import (
	"fmt"
	"slices"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"

	"gonum.org/v1/gonum/blas"
)

// fuse computes the parameters of each merged window's layer and makes layer low
// read them. Untouched tensors stay shared with the source model.
func (w *merger) fuse() error {
	for _, win := range w.plan.Windows {
		if win.Low == win.High && win.Repair == nil {
			continue
		}
		if err := w.fuseWindow(win); err != nil {
			return fmt.Errorf("window %d..%d: %w", win.Low, win.High, err)
		}
	}
	return nil
}

func (w *merger) fuseWindow(win Window) error {
	rule := w.rule(win)
	low := &w.s.Layers[win.Low]
	suffix := fmt.Sprintf(".merged_%d_%d", win.Low, win.High)
	biasSlot := -1
	if win.Repair != nil {
		var err error
		if biasSlot, err = w.checkRepair(low, win.Repair); err != nil {
			return err
		}
	}
	if err := w.fuseQuantized(win, rule, suffix); err != nil {
		return err
	}
	quantized := quantSlots(low)
	for slot, p := range low.Params {
		if quantized[slot] {
			continue
		}
		for i := win.Low + 1; i <= win.High; i++ {
			q := w.s.Layers[i].Params
			if slot >= len(q) || q[slot].Kind != p.Kind || !slices.Equal(q[slot].Dims, p.Dims) || q[slot].DType != p.DType {
				return fmt.Errorf("layer %d's slot %d (%s) does not match layer %d's", i, slot, p.Role, win.Low)
			}
		}
		src := w.g.Value(p.Name)
		if src == nil {
			return fmt.Errorf("slot %d (%s): tensor %q not found", slot, p.Role, p.Name)
		}
		var data []float32
		var err error
		if p.Kind.IsProjection() && win.High > win.Low {
			switch rule {
			case Code:
				if p.Kind == discover.ProjWeight { // the released code merges only weights
					src = w.g.Value(w.s.Layers[win.High].Params[slot].Name)
				}
			case Paper, Mean:
				f := fuser{rule: rule}
				if err = w.eachWindowFloats(slot, win, func(_ int, t []float32) error { f.add(t); return nil }); err == nil {
					data = f.result()
				}
			}
			if err != nil {
				return fmt.Errorf("slot %d (%s): %w", slot, p.Role, err)
			}
		}
		if r := win.Repair; r != nil && (slot == r.Slot || slot == biasSlot) {
			if data == nil {
				if data, err = w.floats(src.Name); err != nil {
					return err
				}
				data = append([]float32(nil), data...)
			}
			if slot == r.Slot {
				data = applyToWeight(w.blas(), data, p, r.Matrix)
			} else {
				data = applyToBias(data, r.Matrix, r.Bias)
			}
		}
		if data != nil {
			if w.tensor(src.Name) == nil {
				return fmt.Errorf("slot %d (%s): %q is not a constant tensor", slot, p.Role, src.Name)
			}
			t, err := onnx.EncodeLike(w.g.UniqueName(p.Name+suffix), w.tensor(src.Name), data)
			if err != nil {
				return fmt.Errorf("slot %d (%s): %w", slot, p.Role, err)
			}
			if src, err = w.addInitializer(t); err != nil {
				return err
			}
		}
		if src.Name != p.Name {
			if err := w.repoint(win.Low, p, src, suffix); err != nil {
				return fmt.Errorf("slot %d (%s): %w", slot, p.Role, err)
			}
		}
	}
	return nil
}

// addInitializer adds t to the graph as a new initializer of the result.
func (w *merger) addInitializer(t *pb.TensorProto) (*graph.Value, error) {
	v, err := w.g.AddInitializer(t)
	if err != nil {
		return nil, err
	}
	w.res.NewInitializers = append(w.res.NewInitializers, v.Name)
	return v, nil
}

// replaceParam adds t as a new initializer and makes layer low's slot p read it.
func (w *merger) replaceParam(low int, p discover.Param, t *pb.TensorProto, suffix string) error {
	v, err := w.addInitializer(t)
	if err != nil {
		return err
	}
	return w.repoint(low, p, v, suffix)
}

// repoint makes every use of slot p in layer low read v. A Transpose or Cast node
// the original was read through is rewired when it is in layer low and only this
// use reads it, and copied otherwise; Identity nodes are skipped.
func (w *merger) repoint(low int, p discover.Param, v *graph.Value, suffix string) error {
	inPlace := func(n, next *graph.Node) bool { return w.inLayer[n.Index] == low && OnlyReader(n, next) }
	return PointUses(w.g, nodeAt(w.byIndex), p, v, inPlace, func(n *graph.Node) (*graph.Node, error) {
		name := n.Name
		if name != "" {
			name += suffix
		}
		return CopyNode(w.g, n, name, suffix)
	})
}

func (w *merger) tensor(name string) *pb.TensorProto {
	v := w.g.Value(name)
	if t := graph.Constant(v); t != nil {
		return t
	}
	return v.Init
}

// floats returns the values of the tensor named name (may alias it: read only).
func (w *merger) floats(name string) ([]float32, error) {
	v := w.g.Value(name)
	if v == nil {
		return nil, fmt.Errorf("tensor %q not found", name)
	}
	t := graph.Constant(v)
	if t == nil {
		t = v.Init
	}
	if t == nil {
		return nil, fmt.Errorf("%q is not a constant tensor", name)
	}
	return onnx.Float32s(t)
}

// eachWindowFloats calls f with slot's tensor values for layers low..high in
// order, decoding one layer's at a time (a float16 window of seven 2048×5632
// projections would otherwise hold seven float32 copies at once).
func (w *merger) eachWindowFloats(slot int, win Window, f func(i int, v []float32) error) error {
	n := -1
	for i := win.Low; i <= win.High; i++ {
		v, err := w.floats(w.s.Layers[i].Params[slot].Name)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		if n >= 0 && len(v) != n {
			return fmt.Errorf("layer %d: %d values, layer %d has %d", i, len(v), win.Low, n)
		}
		n = len(v)
		if err := f(i, v); err != nil {
			return err
		}
	}
	return nil
}

// fuser applies a rule that computes (paper, mean) to a window's weights
// given one layer at a time, layer low first: Paper θ_low + Σ_{i=low+1..high}
// (θ_i − θ_low) in float32, term by term as the reference implementation
// does; Mean the average, accumulated in float64. It holds the result (and
// Paper θ_low, Mean the float64 sums), never the whole window.
type fuser struct {
	rule      Rule
	n         int
	base, out []float32
	sum       []float64
}

// add takes the next layer's weights (read only; may be kept until result).
func (f *fuser) add(t []float32) {
	f.n++
	switch f.rule {
	case Mean:
		if f.sum == nil {
			f.sum = make([]float64, len(t))
		}
		for j, v := range t {
			f.sum[j] += float64(v)
		}
	default: // Paper
		if f.base == nil {
			f.base, f.out = t, append([]float32(nil), t...)
			return
		}
		for j := range f.out {
			f.out[j] += t[j] - f.base[j]
		}
	}
}

// result is the fused weights.
func (f *fuser) result() []float32 {
	if f.rule != Mean {
		return f.out
	}
	out := make([]float32, len(f.sum))
	n := float64(f.n)
	for j, s := range f.sum {
		out[j] = float32(s / n)
	}
	return out
}

// fuseFloats applies a rule that computes (paper, mean) to the window's
// weights ws (layer low first), as fuser does.
func fuseFloats(rule Rule, ws [][]float32) []float32 {
	f := fuser{rule: rule}
	for _, t := range ws {
		f.add(t)
	}
	return f.result()
}

// checkRepair validates a repair against the layer and returns the slot of the
// projection's bias (-1 if none).
func (w *merger) checkRepair(l *discover.Layer, r *Repair) (int, error) {
	p := l.Params[r.Slot]
	i := slices.IndexFunc(l.Projections, func(q discover.Projection) bool { return q.Matrix() == r.Slot })
	nbits := i >= 0 && l.Projections[i].Storage == discover.NBits
	if p.Kind != discover.ProjWeight || (len(p.Dims) != 2 && !nbits) {
		return -1, fmt.Errorf("repair: slot %d (%s) is not a projection weight", r.Slot, p.Role)
	}
	var out int
	switch {
	case nbits:
		out = int(l.Projections[i].Out)
	case p.Transposed:
		out = int(p.Dims[0])
	default:
		out = int(p.Dims[1])
	}
	if len(r.Matrix) != out*out {
		return -1, fmt.Errorf("repair: slot %d (%s) has %d outputs: want a %d×%d matrix, got %d values", r.Slot, p.Role, out, out, out, len(r.Matrix))
	}
	if len(r.Bias) != 0 && len(r.Bias) != out {
		return -1, fmt.Errorf("repair: bias of %d values for %d outputs", len(r.Bias), out)
	}
	if len(p.Uses) != 1 {
		return -1, fmt.Errorf("repair: slot %d (%s) is read %d times; want one projection", r.Slot, p.Role, len(p.Uses))
	}
	if i < 0 || (l.Projections[i].Storage != discover.Dense && !nbits) {
		return -1, fmt.Errorf("repair: slot %d (%s) is not the weight matrix of a dense or MatMulNBits projection", r.Slot, p.Role)
	}
	proj := l.Projections[i]
	if proj.Bias < 0 && len(r.Bias) > 0 {
		return -1, fmt.Errorf("repair: slot %d (%s) has no bias to fold an offset into", r.Slot, p.Role)
	}
	return proj.Bias, nil
}

// applyToWeight folds y' = y·M into a projection weight: W·M for W stored
// [in, out], Mᵀ·W for W stored [out, in]. The product is the one large
// computation of a merge (2·in·out² operations: 6 GFLOP for a 1024×2816
// projection), hence a BLAS.
func applyToWeight(b blas.Float32, wt []float32, p discover.Param, m []float32) []float32 {
	rows, cols := int(p.Dims[0]), int(p.Dims[1])
	out := make([]float32, len(wt))
	if !p.Transposed { // [in, out] · [out, out]
		b.Sgemm(blas.NoTrans, blas.NoTrans, rows, cols, cols, 1, wt, cols, m, cols, 0, out, cols)
		return out
	}
	// [out, in]: result = Mᵀ·W, [out, out]ᵀ · [out, in]
	b.Sgemm(blas.Trans, blas.NoTrans, rows, cols, rows, 1, m, rows, wt, cols, 0, out, cols)
	return out
}

// applyToBias returns b·M + c.
func applyToBias(b, m, c []float32) []float32 {
	n := len(b)
	out := make([]float32, n)
	for k := 0; k < n; k++ {
		a := b[k]
		row := m[k*n : (k+1)*n]
		for j := range out {
			out[j] += a * row[j]
		}
	}
	for j := range c {
		out[j] += c[j]
	}
	return out
}
