package runtime

import (
	"errors"
	"fmt"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// kernel computes a node's outputs from its inputs (nil for absent optional
// inputs). It must not modify its inputs, except those ec.outLike hands back.
type kernel func(ec *execCtx, in []*Tensor) ([]*Tensor, error)

// opDef describes how the runtime executes one op type (a row of opTable,
// where the columns are described).
type opDef struct {
	name         string
	since        int64
	minIn, maxIn int // maxIn < 0 (anyIn): any number
	shapeArgs    []int
	flags        opFlags
	compile      func(c *compileCtx) (kernel, error)
}

// opFlags are an op's boolean properties.
type opFlags uint8

const (
	// shapeOnly ops (Shape, Size) read only their input's shape.
	shapeOnly opFlags = 1 << iota
	// inPlace kernels may write their output into a dying input (ec.outLike).
	inPlace
)

func (d *opDef) shapeOnly() bool { return d.flags&shapeOnly != 0 }
func (d *opDef) inplace() bool   { return d.flags&inPlace != 0 }

func (d *opDef) isShapeArg(i int) bool {
	for _, j := range d.shapeArgs {
		if i == j {
			return true
		}
	}
	return false
}

// compileCtx is what an op's compile function sees of its node.
type compileCtx struct {
	s     *Session
	n     *node
	opset int64
	attrs attrs
}

// SupportedOps lists the op types the runtime executes, those of other
// domains than ai.onnx prefixed by their domain (com.microsoft.MatMulNBits).
func SupportedOps() []string {
	names := make(map[string]bool, len(ops))
	for k := range ops {
		if k.domain == "" {
			names[k.name] = true
		} else {
			names[k.domain+"."+k.name] = true
		}
	}
	return sortedNames(names)
}

type attrs struct {
	m map[string]*pb.AttributeProto
}

func attrsOf(n *pb.NodeProto) attrs {
	a := attrs{m: map[string]*pb.AttributeProto{}}
	for _, x := range n.GetAttribute() {
		a.m[x.GetName()] = x
	}
	return a
}

func (a attrs) has(name string) bool { return a.m[name] != nil }

// attr reads attribute name of type want with get, def when it is absent.
func attr[T any](a attrs, name string, def T, want pb.AttributeProto_AttributeType, get func(*pb.AttributeProto) T) (T, error) {
	x := a.m[name]
	if x == nil {
		return def, nil
	}
	if x.GetType() != want {
		var zero T
		return zero, fmt.Errorf("attribute %s: want %v, got %v", name, want, x.GetType())
	}
	return get(x), nil
}

func (a attrs) int(name string, def int64) (int64, error) {
	return attr(a, name, def, pb.AttributeProto_INT, (*pb.AttributeProto).GetI)
}

func (a attrs) float(name string, def float32) (float32, error) {
	return attr(a, name, def, pb.AttributeProto_FLOAT, (*pb.AttributeProto).GetF)
}

func (a attrs) ints(name string) ([]int64, bool, error) {
	x := a.m[name]
	if x == nil {
		return nil, false, nil
	}
	if x.GetType() != pb.AttributeProto_INTS {
		return nil, false, fmt.Errorf("attribute %s: want INTS, got %v", name, x.GetType())
	}
	return x.GetInts(), true, nil
}

func (a attrs) str(name, def string) (string, error) {
	return attr(a, name, def, pb.AttributeProto_STRING, func(x *pb.AttributeProto) string { return string(x.GetS()) })
}

// only refuses attributes other than the listed ones, so that an attribute the
// kernel would silently ignore is reported instead.
func (a attrs) only(names ...string) error {
	for k := range a.m {
		ok := false
		for _, n := range names {
			if k == n {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("attribute %s is not supported", k)
		}
	}
	return nil
}

// sole reads a kernel's one attribute, name, with read (attrs.int, float or
// str), refusing any other attribute.
func sole[T any](a attrs, read func(string, T) (T, error), name string, def T) (T, error) {
	if err := a.only(name); err != nil {
		var zero T
		return zero, err
	}
	return read(name, def)
}

// attrReader reads a node's attributes one after another and keeps the
// first error (after which it reads nothing), so that a kernel that reads
// several attributes checks once.
type attrReader struct {
	a   attrs
	err error
}

// read starts reading c's attributes, refusing any other than names.
func (c *compileCtx) read(names ...string) *attrReader {
	return &attrReader{a: c.attrs, err: c.attrs.only(names...)}
}

func (r *attrReader) int(name string, def int64) int64 { return readNext(r, r.a.int, name, def) }

func (r *attrReader) float(name string, def float32) float32 {
	return readNext(r, r.a.float, name, def)
}

// ints reads an INTS attribute and whether it is present.
func (r *attrReader) ints(name string) ([]int64, bool) {
	if r.err != nil {
		return nil, false
	}
	v, ok, err := r.a.ints(name)
	r.err = err
	return v, ok
}

func readNext[T any](r *attrReader, read func(string, T) (T, error), name string, def T) T {
	if r.err != nil {
		return def
	}
	v, err := read(name, def)
	r.err = err
	return v
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis int64, rank int) (int, error) {
	a := int(axis)
	if a < -rank || a >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	if a < 0 {
		a += rank
	}
	return a, nil
}

// intsOf reads a 1-D (or scalar) integer tensor.
func intsOf(t *Tensor, what string) ([]int64, error) {
	if t == nil {
		return nil, nil
	}
	if t.dtype != Int64 && t.dtype != Int32 {
		return nil, fmt.Errorf("%s: want int64, got %v", what, t.dtype)
	}
	if t.Rank() > 1 {
		return nil, fmt.Errorf("%s: want a 1-D tensor, got shape %v", what, t.shape)
	}
	return t.Int64s()
}

// scalarOf reads a one-element tensor as float64.
func scalarOf(t *Tensor) (float64, error) {
	if t.Len() != 1 {
		return 0, fmt.Errorf("want one element, got shape %v", t.shape)
	}
	switch d := t.data.(type) {
	case []float32:
		return float64(d[0]), nil
	case []float64:
		return d[0], nil
	case []int64:
		return float64(d[0]), nil
	case []int32:
		return float64(d[0]), nil
	case []int8:
		return float64(d[0]), nil
	case []uint8:
		return float64(d[0]), nil
	case []bool:
		if d[0] {
			return 1, nil
		}
		return 0, nil
	}
	return 0, errors.New("unsupported type")
}

func errType(op string, dt DType) error {
	return fmt.Errorf("%s does not support %v inputs", op, dt)
}

// defaults for optional-input ranges
const anyIn = -1
