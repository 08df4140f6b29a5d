package modeldiff

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// tensors finds a model's constant tensors by name: initializers and the
// outputs of Constant nodes (value attribute), and caches their contents.
type tensors struct {
	byName map[string]*pb.TensorProto
	inits  map[string]bool
	data   map[string][]byte
	sums   map[string][32]byte
}

func newTensors(m *pb.ModelProto) *tensors {
	t := &tensors{byName: map[string]*pb.TensorProto{}, inits: map[string]bool{}, data: map[string][]byte{}, sums: map[string][32]byte{}}
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() != "Constant" || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") || len(n.GetOutput()) != 1 {
			continue
		}
		for _, at := range n.GetAttribute() {
			if at.GetName() == "value" && at.GetT() != nil {
				t.byName[n.GetOutput()[0]] = at.GetT()
			}
		}
	}
	for _, x := range m.GetGraph().GetInitializer() {
		t.byName[x.GetName()] = x
		t.inits[x.GetName()] = true
	}
	return t
}

// bytes returns the tensor's data in one canonical form (little-endian raw
// data; length-prefixed strings), whatever field holds it.
func (t *tensors) bytes(name string) ([]byte, error) {
	if b, ok := t.data[name]; ok {
		return b, nil
	}
	x, ok := t.byName[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	b, err := canonical(x)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	t.data[name] = b
	return b, nil
}

// sum is a fingerprint of the tensor's dtype, dims and values.
func (t *tensors) sum(name string) ([32]byte, error) {
	if s, ok := t.sums[name]; ok {
		return s, nil
	}
	b, err := t.bytes(name)
	if err != nil {
		return [32]byte{}, err
	}
	x := t.byName[name]
	h := sha256.New()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(x.GetDataType()))
	h.Write(buf[:])
	binary.LittleEndian.PutUint64(buf[:], uint64(len(x.GetDims())))
	h.Write(buf[:])
	for _, d := range x.GetDims() {
		binary.LittleEndian.PutUint64(buf[:], uint64(d))
		h.Write(buf[:])
	}
	h.Write(b)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	t.sums[name] = s
	return s, nil
}

func canonical(x *pb.TensorProto) ([]byte, error) {
	if len(x.GetRawData()) > 0 {
		return x.GetRawData(), nil
	}
	dec, err := onnx.DecodeTensor(x)
	if err != nil {
		// A type the codec does not decode: compare the encoded fields.
		c := proto.Clone(x).(*pb.TensorProto)
		c.Name, c.DocString = nil, nil
		return proto.MarshalOptions{Deterministic: true}.Marshal(c)
	}
	if ss, ok := dec.Data.([][]byte); ok {
		var b []byte
		for _, s := range ss {
			b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
			b = append(b, s...)
		}
		return b, nil
	}
	enc, err := onnx.EncodeTensor("", dec)
	if err != nil {
		return nil, err
	}
	return enc.GetRawData(), nil
}

func describeTensor(x *pb.TensorProto) Tensor {
	n, err := onnx.NumElements(x.GetDims())
	if err != nil {
		n = -1
	}
	return Tensor{Name: x.GetName(), DType: onnx.DTypeName(pb.TensorProto_DataType(x.GetDataType())), Dims: append([]int64{}, x.GetDims()...), Elements: n}
}

// equal reports whether tensor na of ta and nb of tb have the same dtype,
// dims and values.
func equal(ta *tensors, na string, tb *tensors, nb string) (bool, error) {
	xa, xb := ta.byName[na], tb.byName[nb]
	if xa.GetDataType() != xb.GetDataType() || !slices.Equal(xa.GetDims(), xb.GetDims()) {
		return false, nil
	}
	ba, err := ta.bytes(na)
	if err != nil {
		return false, err
	}
	bb, err := tb.bytes(nb)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ba, bb), nil
}

// change measures ‖b − a‖ and ‖b − a‖/‖a‖ for two numeric tensors of one
// shape (of any numeric dtypes: float32 → float16 gives the rounding error).
func change(xa, xb *pb.TensorProto) (Change, error) {
	if !slices.Equal(xa.GetDims(), xb.GetDims()) {
		return Change{}, nil
	}
	va, okA, err := numbers(xa)
	if err != nil {
		return Change{}, err
	}
	vb, okB, err := numbers(xb)
	if err != nil {
		return Change{}, err
	}
	if !okA || !okB || len(va) != len(vb) {
		return Change{}, nil
	}
	var diff, norm float64
	for i := range va {
		d := vb[i] - va[i]
		diff += d * d
		norm += va[i] * va[i]
	}
	abs := math.Sqrt(diff)
	c := Change{AbsChange: &abs}
	if norm > 0 && !math.IsInf(abs, 0) && !math.IsNaN(abs) {
		rel := abs / math.Sqrt(norm)
		c.RelChange = &rel
	}
	if math.IsInf(abs, 0) || math.IsNaN(abs) {
		c.AbsChange = nil // not representable in JSON
	}
	return c, nil
}

// numbers returns a numeric tensor's values as float64; ok is false for
// other types (strings, bools, types the codec does not decode).
func numbers(x *pb.TensorProto) ([]float64, bool, error) {
	switch pb.TensorProto_DataType(x.GetDataType()) {
	case pb.TensorProto_FLOAT, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		f, err := onnx.Float32s(x)
		if err != nil {
			return nil, false, fmt.Errorf("tensor %q: %w", x.GetName(), err)
		}
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out, true, nil
	}
	dec, err := onnx.DecodeTensor(x)
	if err != nil {
		return nil, false, nil
	}
	var out []float64
	switch v := dec.Data.(type) {
	case []float64:
		out = v
	case []int64:
		out = convert(v)
	case []int32:
		out = convert(v)
	case []int16:
		out = convert(v)
	case []int8:
		out = convert(v)
	case []uint8:
		out = convert(v)
	case []uint16:
		out = convert(v)
	case []uint32:
		out = convert(v)
	case []uint64:
		out = convert(v)
	default:
		return nil, false, nil
	}
	return out, true, nil
}

func convert[T int64 | int32 | int16 | int8 | uint8 | uint16 | uint32 | uint64](v []T) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// initializerDiff compares the initializers by name, and pairs removed and
// added ones that a changed node reads at the same input.
func initializerDiff(ga, gb *pb.GraphProto, ta, tb *tensors, changed []NodeChange) (InitializerDiff, error) {
	d := InitializerDiff{Lists: emptyLists[Tensor, TensorChange](), Replaced: []Replacement{}}
	for _, x := range gb.GetInitializer() {
		name := x.GetName()
		if !ta.inits[name] {
			d.Added = append(d.Added, describeTensor(x))
			continue
		}
		xa := ta.byName[name]
		same, err := equal(ta, name, tb, name)
		if err != nil {
			return d, err
		}
		if same {
			continue
		}
		c := TensorChange{Name: name, A: describeTensor(xa), B: describeTensor(x)}
		if c.Change, err = change(xa, x); err != nil {
			return d, err
		}
		d.Changed = append(d.Changed, c)
	}
	for _, x := range ga.GetInitializer() {
		if !tb.inits[x.GetName()] {
			d.Removed = append(d.Removed, describeTensor(x))
		}
	}
	seen := map[[2]string]bool{}
	for _, nc := range changed {
		ia, ib := nc.A.Inputs, nc.B.Inputs
		for k := 0; k < min(len(ia), len(ib)); k++ {
			a, b := ia[k], ib[k]
			if a == b || !ta.inits[a] || tb.inits[a] || !tb.inits[b] || ta.inits[b] || seen[[2]string{a, b}] {
				continue
			}
			seen[[2]string{a, b}] = true
			xa, xb := ta.byName[a], tb.byName[b]
			r := Replacement{A: describeTensor(xa), B: describeTensor(xb), Node: nc.Name, Input: k}
			var err error
			if r.Change, err = change(xa, xb); err != nil {
				return d, err
			}
			d.Replaced = append(d.Replaced, r)
		}
	}
	return d, nil
}
