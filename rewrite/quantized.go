package rewrite

// This file merges projections whose weights are stored quantized
// (discover.NBits: onnxruntime's MatMulNBits; discover.Int8PerTensor: its
// MatMulInteger with per-tensor int8 weights): the window's weights are
// dequantized, fused by the window's rule as float weights are, and quantized
// again with the same bits, block size and symmetry (package quant, the
// layout onnxruntime's quantizer writes), or kept float (Options.KeepMergedFloat)
// in a MatMul.

import (
	"fmt"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/graph"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/quant"
)

// Requantized says how far one merged quantized projection is from the float
// fusion of the window's (dequantized) weights.
type Requantized struct {
	Low  int `json:"low"`
	High int `json:"high"`
	// Role is the projection's role, Slot the slot of its packed weight.
	Role string `json:"role"`
	Slot int    `json:"slot"`
	// Bits, BlockSize and Symmetric are the quantization kept.
	Bits      int  `json:"bits"`
	BlockSize int  `json:"block_size"`
	Symmetric bool `json:"symmetric"`
	// RelErr is ‖dequantize(quantize(W)) − W‖ / ‖W‖ (Frobenius) for W the float
	// fusion; 0 when the weight was kept float.
	RelErr float64 `json:"rel_err"`
	// KeptFloat reports that the merged weight stays float (a MatMul).
	KeptFloat bool `json:"kept_float,omitempty"`
}

// quantSlots returns the slots of layer low's quantized projections' weight
// parts, which fuseQuantized handles.
func quantSlots(l *discover.Layer) map[int]bool {
	slots := map[int]bool{}
	for _, p := range l.Projections {
		if p.Storage == discover.Dense {
			continue
		}
		for _, wi := range p.Weights {
			slots[wi.Slot] = true
		}
	}
	return slots
}

// fuseQuantized merges the window's quantized projections.
func (w *merger) fuseQuantized(win Window, rule Rule, suffix string) error {
	low := &w.s.Layers[win.Low]
	for pi, p := range low.Projections {
		if p.Storage == discover.Dense {
			continue
		}
		repaired := win.Repair != nil && win.Repair.Slot == p.Matrix()
		if win.High == win.Low && !repaired {
			continue
		}
		var err error
		switch rule {
		case Drop:
			if repaired {
				err = w.fuseNBits(win, Drop, pi, suffix)
			}
		case Code: // the released code keeps layer high's weights: its quantized parts as they are
			if repaired {
				err = w.fuseNBits(win, Code, pi, suffix)
				break
			}
			err = w.repointParts(win, pi, w.s.Layers[win.High].Projections[pi], suffix)
		case Paper, Mean:
			switch p.Storage {
			case discover.NBits:
				err = w.fuseNBits(win, rule, pi, suffix)
			case discover.Int8PerTensor:
				err = w.fuseInt8(win, rule, pi, suffix)
			default:
				err = fmt.Errorf("merging %s weights with rule %s is not supported (use --merge drop)", p.Storage, rule)
			}
		default:
			err = fmt.Errorf("rule %q", rule)
		}
		if err != nil {
			return fmt.Errorf("%s projection: %w", p.Role, err)
		}
	}
	return nil
}

// repointParts makes low's projection pi read src's weight parts.
func (w *merger) repointParts(win Window, pi int, src discover.Projection, suffix string) error {
	low := &w.s.Layers[win.Low]
	for _, wi := range low.Projections[pi].Weights {
		sp, ok := src.Part(wi.Part)
		if !ok {
			return fmt.Errorf("layer %d has no %s", win.High, wi.Part)
		}
		if err := w.repoint(win.Low, low.Params[wi.Slot], w.g.Value(sp.Name), suffix); err != nil {
			return err
		}
	}
	return nil
}

// dequantized returns layer i's projection pi as a float [K, N] weight.
func (w *merger) dequantized(i, pi int) ([]float32, error) {
	p := w.s.Layers[i].Projections[pi]
	packed, err := w.bytes(p, discover.Packed)
	if err != nil {
		return nil, err
	}
	sc, ok := p.Part(discover.Scales)
	if !ok {
		return nil, fmt.Errorf("layer %d: no scales", i)
	}
	scales, err := w.floats(sc.Name)
	if err != nil {
		return nil, fmt.Errorf("layer %d: %w", i, err)
	}
	var zp []byte
	if _, ok := p.Part(discover.ZeroPoints); ok {
		if zp, err = w.bytes(p, discover.ZeroPoints); err != nil {
			return nil, err
		}
	}
	dq, err := quant.DequantizeBlocks(packed, scales, zp, p.Bits, int(p.In), int(p.Out), p.BlockSize)
	if err != nil {
		return nil, fmt.Errorf("layer %d: %w", i, err)
	}
	return dq, nil
}

// bytes returns the uint8 values of projection p's part.
func (w *merger) bytes(p discover.Projection, part discover.WeightPart) ([]byte, error) {
	wi, ok := p.Part(part)
	if !ok {
		return nil, fmt.Errorf("no %s", part)
	}
	t := w.tensor(wi.Name)
	if t == nil {
		return nil, fmt.Errorf("%q is not a constant tensor", wi.Name)
	}
	if pb.TensorProto_DataType(t.GetDataType()) != pb.TensorProto_UINT8 {
		return nil, fmt.Errorf("%s %q is %s, want uint8", part, wi.Name, onnx.DTypeName(pb.TensorProto_DataType(t.GetDataType())))
	}
	d, err := onnx.DecodeTensor(t)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", part, wi.Name, err)
	}
	b, ok := d.Data.([]uint8)
	if !ok {
		return nil, fmt.Errorf("%s %q: not bytes", part, wi.Name)
	}
	return b, nil
}

// fuseNBits dequantizes the window's weights of projection pi, fuses them
// (Drop: layer low's alone), folds the window's repair into the float
// weight when it is this projection's, and quantizes the result again (or
// keeps it float).
func (w *merger) fuseNBits(win Window, rule Rule, pi int, suffix string) error {
	p := w.s.Layers[win.Low].Projections[pi]
	if p.Storage != discover.NBits {
		return fmt.Errorf("a repair of a %s projection is not supported", p.Storage)
	}
	lo, hi := win.Low, win.High
	switch rule {
	case Drop: // layer low's weight
		hi = lo
	case Code: // layer high's weight
		lo = hi
	}
	ws := make([][]float32, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		q := w.s.Layers[i].Projections[pi]
		if q.Storage != p.Storage || q.Bits != p.Bits || q.BlockSize != p.BlockSize || q.In != p.In || q.Out != p.Out || len(q.Weights) != len(p.Weights) {
			return fmt.Errorf("layer %d's weight is quantized differently from layer %d's", i, win.Low)
		}
		dq, err := w.dequantized(i, pi)
		if err != nil {
			return err
		}
		ws = append(ws, dq)
	}
	fused := ws[0]
	if len(ws) > 1 {
		fused = fuseFloats(rule, ws)
	}
	if r := win.Repair; r != nil && r.Slot == p.Matrix() {
		fused = applyToWeight(w.blas(), fused, discover.Param{Dims: []int64{p.In, p.Out}}, r.Matrix)
	}
	_, asym := p.Part(discover.ZeroPoints)
	rep := Requantized{Low: win.Low, High: win.High, Role: p.Role.String(), Slot: p.Matrix(), Bits: p.Bits, BlockSize: p.BlockSize, Symmetric: !asym}
	if w.opt.KeepMergedFloat {
		rep.KeptFloat = true
		w.res.Requantized = append(w.res.Requantized, rep)
		return w.toMatMul(win, p, fused, suffix)
	}
	q, err := quant.QuantizeBlocks(fused, p.Bits, int(p.In), int(p.Out), p.BlockSize, asym)
	if err != nil {
		return err
	}
	dq, err := q.Dequantize()
	if err != nil {
		return err
	}
	rep.RelErr = stats.RelRMS(dq, fused)
	w.res.Requantized = append(w.res.Requantized, rep)
	low := &w.s.Layers[win.Low]
	for _, wi := range p.Weights {
		like := w.tensor(wi.Name)
		var t *pb.TensorProto
		name := w.g.UniqueName(wi.Name + suffix)
		switch wi.Part {
		case discover.Packed:
			t, err = onnx.EncodeTensor(name, &onnx.Tensor{DType: pb.TensorProto_UINT8, Dims: clone64(like.Dims), Data: q.Packed})
		case discover.ZeroPoints:
			t, err = onnx.EncodeTensor(name, &onnx.Tensor{DType: pb.TensorProto_UINT8, Dims: clone64(like.Dims), Data: q.ZeroPoints})
		case discover.Scales:
			t, err = onnx.EncodeLike(name, like, q.Scales)
		default:
			err = fmt.Errorf("weight part %s", wi.Part)
		}
		if err != nil {
			return err
		}
		if err := w.replaceParam(win.Low, low.Params[wi.Slot], t, suffix); err != nil {
			return err
		}
	}
	return nil
}

// toMatMul replaces low's MatMulNBits by a MatMul of a float weight [K, N] in
// the scales' type, writing the same output.
func (w *merger) toMatMul(win Window, p discover.Projection, fused []float32, suffix string) error {
	n := w.byIndex[p.Node]
	sc, _ := p.Part(discover.Scales)
	like := w.tensor(sc.Name)
	wname := w.g.UniqueName(w.s.Layers[win.Low].Params[p.Matrix()].Name + suffix + ".float")
	t, err := onnx.EncodeLike(wname, &pb.TensorProto{DataType: like.DataType, Dims: []int64{p.In, p.Out}}, fused)
	if err != nil {
		return err
	}
	wv, err := w.addInitializer(t)
	if err != nil {
		return err
	}
	out := n.Outputs[0]
	name := out.Name
	if err := w.g.Rename(out, w.g.UniqueName(name+".nbits")); err != nil {
		return err
	}
	mm, err := w.g.AddNode("MatMul", n.Name, []string{n.Inputs[0].Name, wv.Name}, []string{name})
	if err != nil {
		return err
	}
	w.g.ReplaceUses(out, mm.Outputs[0])
	w.g.RemoveNodes(map[*graph.Node]bool{n: true})
	return nil
}

func clone64(d []int64) []int64 { return append([]int64(nil), d...) }

// int8Weight returns layer i's Int8PerTensor projection pi as float values
// (q − zero point)·scale, and its zero point.
func (w *merger) int8Weight(i, pi int) ([]float32, int8, error) {
	p := w.s.Layers[i].Projections[pi]
	get := func(part discover.WeightPart) (*onnx.Tensor, error) {
		wi, ok := p.Part(part)
		if !ok {
			return nil, fmt.Errorf("layer %d: no %s", i, part)
		}
		t := w.tensor(wi.Name)
		if t == nil {
			return nil, fmt.Errorf("layer %d: %q is not a constant tensor", i, wi.Name)
		}
		return onnx.DecodeTensor(t)
	}
	mt, err := get(discover.Matrix)
	if err != nil {
		return nil, 0, err
	}
	zt, err := get(discover.ZeroPoints)
	if err != nil {
		return nil, 0, err
	}
	q, ok1 := mt.Data.([]int8)
	zp, ok2 := zt.Data.([]int8)
	if !ok1 || !ok2 || len(zp) != 1 {
		return nil, 0, fmt.Errorf("layer %d: want an int8 matrix and one int8 zero point (uint8 weights are not supported)", i)
	}
	sc, _ := p.Part(discover.Scales)
	scale, err := w.floats(sc.Name)
	if err != nil || len(scale) != 1 {
		return nil, 0, fmt.Errorf("layer %d: want one weight scale: %v", i, err)
	}
	return quant.DequantizeInt8(q, scale[0], zp[0]), zp[0], nil
}

// fuseInt8 dequantizes the window's per-tensor int8 weights of projection
// pi, fuses them and quantizes the result again, symmetric as onnxruntime's
// quantizer does (the zero point must be 0).
func (w *merger) fuseInt8(win Window, rule Rule, pi int, suffix string) error {
	if w.opt.KeepMergedFloat {
		return fmt.Errorf("KeepMergedFloat: %s weights are applied through the input's dynamic quantization and cannot stay float", discover.Int8PerTensor)
	}
	p := w.s.Layers[win.Low].Projections[pi]
	var ws [][]float32
	for i := win.Low; i <= win.High; i++ {
		f, zp, err := w.int8Weight(i, pi)
		if err != nil {
			return err
		}
		if zp != 0 {
			return fmt.Errorf("layer %d: zero point %d: only symmetric int8 weights are re-quantized", i, zp)
		}
		if len(ws) > 0 && len(f) != len(ws[0]) {
			return fmt.Errorf("layer %d: %d weights, layer %d has %d", i, len(f), win.Low, len(ws[0]))
		}
		ws = append(ws, f)
	}
	fused := fuseFloats(rule, ws)
	q := quant.QuantizeInt8(fused)
	rep := Requantized{Low: win.Low, High: win.High, Role: p.Role.String(), Slot: p.Matrix(), Bits: 8, Symmetric: true,
		RelErr: stats.RelRMS(q.Dequantize(), fused)}
	w.res.Requantized = append(w.res.Requantized, rep)
	low := &w.s.Layers[win.Low]
	for _, part := range []discover.WeightPart{discover.Matrix, discover.Scales} {
		wi, _ := p.Part(part)
		like := w.tensor(wi.Name)
		name := w.g.UniqueName(wi.Name + suffix)
		var t *pb.TensorProto
		var err error
		if part == discover.Matrix {
			t, err = onnx.EncodeTensor(name, &onnx.Tensor{DType: pb.TensorProto_INT8, Dims: clone64(like.Dims), Data: q.Values})
		} else {
			t, err = onnx.EncodeLike(name, like, []float32{q.Scale})
		}
		if err != nil {
			return err
		}
		if err := w.replaceParam(win.Low, low.Params[wi.Slot], t, suffix); err != nil {
			return err
		}
	}
	return nil
}
