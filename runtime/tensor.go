package runtime

import (
	"fmt"
	"math"
	"strings"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// DType is the element type of a Tensor.
type DType uint8

// The element types the runtime computes with, and the two it stores weights
// in. Float16 and BFloat16 are storage only: a model's float16 and bfloat16
// initializers are kept in their 2 bytes (half.go) and stand for the float32
// values they widen to; no kernel computes in them, Run never returns them,
// and float16/bfloat16 values computed by the graph (Cast to FLOAT16) are
// float32 rounded to that precision.
const (
	Invalid DType = iota
	Float32
	Float64
	Int64
	Int32
	Int8
	Uint8
	Bool
	Float16
	BFloat16
)

var dtypeNames = [...]string{"invalid", "float32", "float64", "int64", "int32", "int8", "uint8", "bool", "float16", "bfloat16"}

func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// size is the number of bytes of one element.
func (d DType) size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float64, Int64:
		return 8
	case Int8, Uint8, Bool:
		return 1
	case Float16, BFloat16:
		return 2
	}
	return 0
}

// fromONNX maps an ONNX element type to the runtime's; FLOAT16 and BFLOAT16
// map to Float32 (the runtime widens them).
func fromONNX(t pb.TensorProto_DataType) (DType, bool) {
	switch t {
	case pb.TensorProto_FLOAT, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		return Float32, true
	case pb.TensorProto_DOUBLE:
		return Float64, true
	case pb.TensorProto_INT64:
		return Int64, true
	case pb.TensorProto_INT32:
		return Int32, true
	case pb.TensorProto_INT8:
		return Int8, true
	case pb.TensorProto_UINT8:
		return Uint8, true
	case pb.TensorProto_BOOL:
		return Bool, true
	}
	return Invalid, false
}

// Tensor is a dense, row-major array of one element type. A Tensor returned by
// Session.Run belongs to the caller. Tensors fed to Run are only read.
type Tensor struct {
	dtype DType
	shape []int
	// data is []float32, []float64, []int64, []int32, []int8, []uint8 or []bool
	// with len(data) == product(shape).
	data any
}

// numel is the number of elements of shape (1 for a scalar).
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// checkShape validates dims and returns the element count, refusing negative
// dims and counts that overflow.
func checkShape(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt32*64/d {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// newTensor makes a tensor with fresh zeroed storage; shape must be valid.
func newTensor(dt DType, shape []int) *Tensor {
	n := numel(shape)
	return &Tensor{dtype: dt, shape: shape, data: makeData(dt, n)}
}

func makeData(dt DType, n int) any {
	checkAlloc(n, dt.size())
	switch dt {
	case Float32:
		return make([]float32, n)
	case Float64:
		return make([]float64, n)
	case Int64:
		return make([]int64, n)
	case Int32:
		return make([]int32, n)
	case Int8:
		return make([]int8, n)
	case Uint8:
		return make([]uint8, n)
	case Bool:
		return make([]bool, n)
	}
	panic("runtime: makeData of invalid dtype " + dt.String())
}

func dataLen(data any) int {
	switch d := data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int64:
		return len(d)
	case []int32:
		return len(d)
	case []int8:
		return len(d)
	case []uint8:
		return len(d)
	case []bool:
		return len(d)
	}
	return -1
}

func dtypeOf(data any) DType {
	switch data.(type) {
	case []float32:
		return Float32
	case []float64:
		return Float64
	case []int64:
		return Int64
	case []int32:
		return Int32
	case []int8:
		return Int8
	case []uint8:
		return Uint8
	case []bool:
		return Bool
	}
	return Invalid
}

// FromSlice makes a tensor of the given shape over data, which must be one of
// []float32, []float64, []int64, []int32, []int8, []uint8, []bool with
// product(shape) elements. The tensor shares data (no copy). A nil or empty
// shape is a scalar.
func FromSlice(shape []int, data any) (*Tensor, error) {
	dt := dtypeOf(data)
	if dt == Invalid {
		return nil, fmt.Errorf("runtime: unsupported tensor data type %T", data)
	}
	n, err := checkShape(shape)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	if got := dataLen(data); got != n {
		return nil, fmt.Errorf("runtime: shape %v needs %d elements, data has %d", shape, n, got)
	}
	return &Tensor{dtype: dt, shape: append([]int{}, shape...), data: data}, nil
}

// NewFloat32 makes a float32 tensor over data (shared, not copied); nil data
// gives zeros.
func NewFloat32(shape []int, data []float32) (*Tensor, error) {
	if data == nil {
		return Zeros(Float32, shape)
	}
	return FromSlice(shape, data)
}

// NewInt64 makes an int64 tensor over data (shared, not copied); nil data
// gives zeros.
func NewInt64(shape []int, data []int64) (*Tensor, error) {
	if data == nil {
		return Zeros(Int64, shape)
	}
	return FromSlice(shape, data)
}

// NewBool makes a bool tensor over data (shared, not copied); nil data gives
// all false.
func NewBool(shape []int, data []bool) (*Tensor, error) {
	if data == nil {
		return Zeros(Bool, shape)
	}
	return FromSlice(shape, data)
}

// Zeros makes a tensor of zeros (false for Bool).
func Zeros(dt DType, shape []int) (*Tensor, error) {
	if dt == Invalid || dt >= Float16 {
		return nil, fmt.Errorf("runtime: invalid dtype %v", dt)
	}
	if _, err := checkShape(shape); err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	return newTensor(dt, append([]int{}, shape...)), nil
}

// ScalarFloat32 makes a rank-0 float32 tensor.
func ScalarFloat32(v float32) *Tensor {
	return &Tensor{dtype: Float32, shape: []int{}, data: []float32{v}}
}

// ScalarInt64 makes a rank-0 int64 tensor.
func ScalarInt64(v int64) *Tensor {
	return &Tensor{dtype: Int64, shape: []int{}, data: []int64{v}}
}

// DType is the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Shape returns a copy of the dimensions ([] for a scalar).
func (t *Tensor) Shape() []int { return append([]int{}, t.shape...) }

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Len is the number of elements.
func (t *Tensor) Len() int { return numel(t.shape) }

// Data returns the backing slice ([]float32, []int64, ...), shared with the
// tensor.
func (t *Tensor) Data() any { return t.data }

// Float32Data returns the backing slice of a Float32 tensor (nil for other
// types). It is shared with the tensor.
func (t *Tensor) Float32Data() []float32 { d, _ := t.data.([]float32); return d }

// Float64Data returns the backing slice of a Float64 tensor (nil otherwise).
func (t *Tensor) Float64Data() []float64 { d, _ := t.data.([]float64); return d }

// Int64Data returns the backing slice of an Int64 tensor (nil otherwise).
func (t *Tensor) Int64Data() []int64 { d, _ := t.data.([]int64); return d }

// Int32Data returns the backing slice of an Int32 tensor (nil otherwise).
func (t *Tensor) Int32Data() []int32 { d, _ := t.data.([]int32); return d }

// BoolData returns the backing slice of a Bool tensor (nil otherwise).
func (t *Tensor) BoolData() []bool { d, _ := t.data.([]bool); return d }

// Clone returns a deep copy (a weight kept in 16 bits comes out widened to
// float32).
func (t *Tensor) Clone() *Tensor {
	if t.isHalf() {
		return t.widened()
	}
	c := newTensor(t.dtype, append([]int{}, t.shape...))
	copyData(c.data, t.data)
	return c
}

func copyData(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		copy(d, src.([]float32))
	case []float64:
		copy(d, src.([]float64))
	case []int64:
		copy(d, src.([]int64))
	case []int32:
		copy(d, src.([]int32))
	case []int8:
		copy(d, src.([]int8))
	case []uint8:
		copy(d, src.([]uint8))
	case []bool:
		copy(d, src.([]bool))
	}
}

// reshaped returns a tensor sharing t's data with another shape of the same
// element count.
func (t *Tensor) reshaped(shape []int) *Tensor {
	return &Tensor{dtype: t.dtype, shape: shape, data: t.data}
}

// Int64s returns the elements of an integer or bool tensor as int64 (a new
// slice, except for Int64 tensors, whose data is returned as is).
func (t *Tensor) Int64s() ([]int64, error) {
	switch d := t.data.(type) {
	case []int64:
		return d, nil
	case []int32:
		return widenInt(d), nil
	case []int8:
		return widenInt(d), nil
	case []uint8:
		return widenInt(d), nil
	case []bool:
		v := make([]int64, len(d))
		for i, b := range d {
			if b {
				v[i] = 1
			}
		}
		return v, nil
	}
	return nil, fmt.Errorf("runtime: want an integer tensor, got %v", t.dtype)
}

func widenInt[T int32 | int8 | uint8](x []T) []int64 {
	v := make([]int64, len(x))
	for i, e := range x {
		v[i] = int64(e)
	}
	return v
}

// String prints the dtype, shape and up to 8 leading values.
func (t *Tensor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v%v", t.dtype, t.shape)
	n := t.Len()
	show := min(n, 8)
	b.WriteString("[")
	for i := range show {
		if i > 0 {
			b.WriteString(" ")
		}
		switch d := t.data.(type) {
		case []float32:
			fmt.Fprint(&b, d[i])
		case []float64:
			fmt.Fprint(&b, d[i])
		case []int64:
			fmt.Fprint(&b, d[i])
		case []int32:
			fmt.Fprint(&b, d[i])
		case []int8:
			fmt.Fprint(&b, d[i])
		case []uint8:
			fmt.Fprint(&b, d[i])
		case []bool:
			fmt.Fprint(&b, d[i])
		}
	}
	if n > show {
		b.WriteString(" ...")
	}
	b.WriteString("]")
	return b.String()
}
