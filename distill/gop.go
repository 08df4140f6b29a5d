package distill

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A kernel is an operation gorgonia lacks, with its hand-derived gradient,
// in float32 (training) and float64 (gradient checks). gorgonia sees it as
// three ops: the forward (fwdOp), a backward that computes the gradients of
// every input at once into one packed vector (bwdOp: attention shares its
// recomputed probabilities between dq, dk and dv), and a slice of that
// vector per input (takeOp). Grad wires them through fwdOp's SymDiff.
type kernel struct {
	name string
	out  func(in []tensor.Shape) (tensor.Shape, error)
	diff []bool
	f32  impl[float32]
	f64  impl[float64]
}

type impl[F float] struct {
	fwd func(in [][]F, out []F)
	bwd func(in [][]F, out, dout []F, din [][]F) // adds into zeroed din
}

var opSerial atomic.Int64

// apply adds k applied to xs to their graph.
func (k *kernel) apply(xs ...*G.Node) (*G.Node, error) {
	dims := make([]int, len(xs))
	for i, x := range xs {
		dims[i] = x.Shape().Dims()
	}
	n, err := G.ApplyOp(&fwdOp{k: k, dims: dims, id: opSerial.Add(1)}, xs...)
	if err != nil {
		return nil, fmt.Errorf("distill: %s: %w", k.name, err)
	}
	return n, nil
}

type opBase struct {
	k  *kernel
	id int64 // ops are never merged by gorgonia's hashing
}

func (o *opBase) hash(h hash.Hash, tag string) {
	fmt.Fprintf(h, "distill.%s.%s#%d", o.k.name, tag, o.id)
}
func hashOf(f func(hash.Hash)) uint32 {
	h := fnv.New32a()
	f(h)
	return h.Sum32()
}

func fnType(dims []int, out int) hm.Type {
	a := hm.TypeVariable('a')
	ts := make([]hm.Type, 0, len(dims)+1)
	for _, d := range dims {
		ts = append(ts, G.TensorType{Dims: d, Of: a})
	}
	ts = append(ts, G.TensorType{Dims: out, Of: a})
	return hm.NewFnType(ts...)
}

func shapesOf(ds []G.DimSizer) ([]tensor.Shape, error) {
	out := make([]tensor.Shape, len(ds))
	for i, d := range ds {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("distill: input %d has no static shape", i)
		}
		out[i] = s
	}
	return out, nil
}

// data returns the values' backing slices, contiguous.
func data(vs []G.Value) ([]any, tensor.Dtype, error) {
	out := make([]any, len(vs))
	var dt tensor.Dtype
	for i, v := range vs {
		d, ok := v.(*tensor.Dense)
		if !ok {
			return nil, dt, fmt.Errorf("distill: input %d is %T, not a dense tensor", i, v)
		}
		if d.IsMaterializable() {
			d = d.Materialize().(*tensor.Dense)
		}
		if i == 0 {
			dt = d.Dtype()
		} else if d.Dtype() != dt {
			return nil, dt, fmt.Errorf("distill: mixed element types %v and %v", dt, d.Dtype())
		}
		out[i] = d.Data()
	}
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, dt, fmt.Errorf("distill: element type %v is not float32 or float64", dt)
	}
	return out, dt, nil
}

func typed[F float](xs []any) [][]F {
	out := make([][]F, len(xs))
	for i, x := range xs {
		out[i] = x.([]F)
	}
	return out
}

type fwdOp struct {
	k    *kernel
	dims []int
	id   int64
}

func (o *fwdOp) Arity() int            { return len(o.dims) }
func (o *fwdOp) ReturnsPtr() bool      { return false }
func (o *fwdOp) CallsExtern() bool     { return false }
func (o *fwdOp) OverwritesInput() int  { return -1 }
func (o *fwdOp) WriteHash(h hash.Hash) { (&opBase{o.k, o.id}).hash(h, "fwd") }
func (o *fwdOp) Hashcode() uint32      { return hashOf(o.WriteHash) }
func (o *fwdOp) String() string        { return o.k.name }
func (o *fwdOp) DiffWRT(int) []bool    { return o.k.diff }

func (o *fwdOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(ds)
	if err != nil {
		return nil, err
	}
	return o.k.out(s)
}

func (o *fwdOp) Type() hm.Type {
	// The output's rank is the first input's for every kernel here.
	return fnType(o.dims, o.dims[0])
}

func (o *fwdOp) Do(vs ...G.Value) (G.Value, error) {
	in, dt, err := data(vs)
	if err != nil {
		return nil, err
	}
	shapes := make([]tensor.Shape, len(vs))
	for i, v := range vs {
		shapes[i] = v.Shape()
	}
	s, err := o.k.out(shapes)
	if err != nil {
		return nil, err
	}
	out := tensor.New(tensor.Of(dt), tensor.WithShape(s...))
	if dt == tensor.Float32 {
		o.k.f32.fwd(typed[float32](in), out.Data().([]float32))
	} else {
		o.k.f64.fwd(typed[float64](in), out.Data().([]float64))
	}
	return out, nil
}

func (o *fwdOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	b := &bwdOp{k: o.k, dims: o.dims, id: o.id}
	packed, err := G.ApplyOp(b, append(append(G.Nodes{}, inputs...), output, grad)...)
	if err != nil {
		return nil, fmt.Errorf("distill: %s gradient: %w", o.k.name, err)
	}
	out := make(G.Nodes, len(inputs))
	off := 0
	for i, x := range inputs {
		n := x.Shape().TotalSize()
		if o.k.diff[i] {
			t := &takeOp{k: o.k, id: o.id, index: i, off: off, shape: x.Shape().Clone()}
			if out[i], err = G.ApplyOp(t, packed); err != nil {
				return nil, fmt.Errorf("distill: %s gradient %d: %w", o.k.name, i, err)
			}
		}
		off += n
	}
	return out, nil
}

// bwdOp computes the gradients of all of a kernel's inputs, packed in one
// vector in input order.
type bwdOp struct {
	k    *kernel
	dims []int
	id   int64
}

func (o *bwdOp) Arity() int            { return len(o.dims) + 2 }
func (o *bwdOp) ReturnsPtr() bool      { return false }
func (o *bwdOp) CallsExtern() bool     { return false }
func (o *bwdOp) OverwritesInput() int  { return -1 }
func (o *bwdOp) WriteHash(h hash.Hash) { (&opBase{o.k, o.id}).hash(h, "bwd") }
func (o *bwdOp) Hashcode() uint32      { return hashOf(o.WriteHash) }
func (o *bwdOp) String() string        { return o.k.name + "ᵀ" }

func (o *bwdOp) Type() hm.Type {
	return fnType(append(append([]int{}, o.dims...), o.dims[0], o.dims[0]), 1)
}

func (o *bwdOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapesOf(ds)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, x := range s[:len(o.dims)] {
		n += x.TotalSize()
	}
	return tensor.Shape{n}, nil
}

func (o *bwdOp) Do(vs ...G.Value) (G.Value, error) {
	all, dt, err := data(vs)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, v := range vs[:len(o.dims)] {
		n += v.Shape().TotalSize()
	}
	out := tensor.New(tensor.Of(dt), tensor.WithShape(n))
	k := len(o.dims)
	if dt == tensor.Float32 {
		bwd(o.k.f32, typed[float32](all), k, out.Data().([]float32))
	} else {
		bwd(o.k.f64, typed[float64](all), k, out.Data().([]float64))
	}
	return out, nil
}

func bwd[F float](im impl[F], all [][]F, k int, packed []F) {
	din := make([][]F, k)
	off := 0
	for i, x := range all[:k] {
		din[i] = packed[off : off+len(x)]
		off += len(x)
	}
	im.bwd(all[:k], all[k], all[k+1], din)
}

// takeOp is one input's gradient out of a bwdOp's packed vector.
type takeOp struct {
	k     *kernel
	id    int64
	index int
	off   int
	shape tensor.Shape
}

func (o *takeOp) Arity() int           { return 1 }
func (o *takeOp) ReturnsPtr() bool     { return false }
func (o *takeOp) CallsExtern() bool    { return false }
func (o *takeOp) OverwritesInput() int { return -1 }
func (o *takeOp) WriteHash(h hash.Hash) {
	(&opBase{o.k, o.id}).hash(h, fmt.Sprintf("take%d", o.index))
}
func (o *takeOp) Hashcode() uint32 { return hashOf(o.WriteHash) }
func (o *takeOp) String() string   { return fmt.Sprintf("%sᵀ[%d]", o.k.name, o.index) }
func (o *takeOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 1, Of: a}, G.TensorType{Dims: o.shape.Dims(), Of: a})
}
func (o *takeOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.shape.Clone(), nil }

func (o *takeOp) Do(vs ...G.Value) (G.Value, error) {
	d, ok := vs[0].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("distill: packed gradient is %T", vs[0])
	}
	n := o.shape.TotalSize()
	out := tensor.New(tensor.Of(d.Dtype()), tensor.WithShape(o.shape...))
	switch src := d.Data().(type) {
	case []float32:
		copy(out.Data().([]float32), src[o.off:o.off+n])
	case []float64:
		copy(out.Data().([]float64), src[o.off:o.off+n])
	}
	return out, nil
}
