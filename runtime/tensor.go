package runtime

import (
	"fmt"
	"math"
	"strings"
	"unsafe"

	"github.com/onnxslm/onnxslm/internal/ints"
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

// dtypeInfo is what the runtime knows of an element type T: its name, its
// ONNX type, its size in bytes and, for the types a Tensor's data can be a []T
// of, the operations on that data that the rest of the package does without a
// type switch.
type dtypeInfo struct {
	name string
	onnx pb.TensorProto_DataType
	size int
	// Nil for Invalid and for the 16-bit storage types (their data is a
	// halfData).
	make func(n int) any               // a zeroed []T of n elements
	is   func(data any) bool           // whether data is a []T
	len  func(data any) int            // len(data)
	copy func(dst, src any)            // copy(dst, src)
	elem func(data any, i int) any     // data[i]
	ptr  func(data any) unsafe.Pointer // the first element of data
	one  func(v any) (any, bool)       // []T{v}, if v is a T
}

func infoOf[T any](name string, onnx pb.TensorProto_DataType) dtypeInfo {
	return dtypeInfo{
		name: name,
		onnx: onnx,
		size: int(unsafe.Sizeof(*new(T))),
		make: func(n int) any { return make([]T, n) },
		is:   func(data any) bool { _, ok := data.([]T); return ok },
		len:  func(data any) int { return len(data.([]T)) },
		copy: func(dst, src any) { copy(dst.([]T), src.([]T)) },
		elem: func(data any, i int) any { return data.([]T)[i] },
		ptr:  func(data any) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(data.([]T))) },
		one: func(v any) (any, bool) {
			x, ok := v.(T)
			return []T{x}, ok
		},
	}
}

// dtypes describes each DType, by value.
var dtypes = [...]dtypeInfo{
	Invalid:  {name: "invalid"},
	Float32:  infoOf[float32]("float32", pb.TensorProto_FLOAT),
	Float64:  infoOf[float64]("float64", pb.TensorProto_DOUBLE),
	Int64:    infoOf[int64]("int64", pb.TensorProto_INT64),
	Int32:    infoOf[int32]("int32", pb.TensorProto_INT32),
	Int8:     infoOf[int8]("int8", pb.TensorProto_INT8),
	Uint8:    infoOf[uint8]("uint8", pb.TensorProto_UINT8),
	Bool:     infoOf[bool]("bool", pb.TensorProto_BOOL),
	Float16:  {name: "float16", onnx: pb.TensorProto_FLOAT16, size: 2},
	BFloat16: {name: "bfloat16", onnx: pb.TensorProto_BFLOAT16, size: 2},
}

func (d DType) String() string {
	if int(d) < len(dtypes) {
		return dtypes[d].name
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// size is the number of bytes of one element.
func (d DType) size() int {
	if int(d) < len(dtypes) {
		return dtypes[d].size
	}
	return 0
}

// fromONNX maps an ONNX element type to the runtime's; FLOAT16 and BFLOAT16
// map to Float32 (the runtime widens them).
func fromONNX(t pb.TensorProto_DataType) (DType, bool) {
	for dt, d := range dtypes {
		switch {
		case DType(dt) == Invalid || d.onnx != t:
		case DType(dt) == Float16 || DType(dt) == BFloat16:
			return Float32, true
		default:
			return DType(dt), true
		}
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
	if int(dt) < len(dtypes) && dtypes[dt].make != nil {
		return dtypes[dt].make(n)
	}
	panic("runtime: makeData of invalid dtype " + dt.String())
}

// dataLen is len(data) for the data of a tensor, -1 for any other value.
func dataLen(data any) int {
	if dt := dtypeOf(data); dt != Invalid {
		return dtypes[dt].len(data)
	}
	return -1
}

// dtypeOf is the DType whose tensors hold data, Invalid if none does.
func dtypeOf(data any) DType {
	for dt, d := range dtypes {
		if d.is != nil && d.is(data) {
			return DType(dt)
		}
	}
	return Invalid
}

// sliceOf is a one-element slice holding v, when v is of an element type of
// tensor data.
func sliceOf(v any) (any, bool) {
	for _, d := range dtypes {
		if d.one != nil {
			if data, ok := d.one(v); ok {
				return data, true
			}
		}
	}
	return nil, false
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
	if dt := dtypeOf(dst); dt != Invalid {
		dtypes[dt].copy(dst, src)
	}
}

// at is element i of t's data, boxed; ok is false for a 16-bit weight.
func (t *Tensor) at(i int) (v any, ok bool) {
	if dt := dtypeOf(t.data); dt != Invalid {
		return dtypes[dt].elem(t.data, i), true
	}
	return nil, false
}

// reshaped returns a tensor sharing t's data with another shape of the same
// element count.
func (t *Tensor) reshaped(shape []int) *Tensor {
	return &Tensor{dtype: t.dtype, shape: shape, data: t.data}
}

// Int64s returns the elements of an integer or bool tensor as int64 (a new
// slice, except for Int64 tensors, whose data is returned as is).
func (t *Tensor) Int64s() ([]int64, error) {
	if v, ok := ints.AsInt64s(t.data); ok {
		return v, nil
	}
	return nil, fmt.Errorf("runtime: want an integer tensor, got %v", t.dtype)
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
		if v, ok := t.at(i); ok {
			fmt.Fprint(&b, v)
		}
	}
	if n > show {
		b.WriteString(" ...")
	}
	b.WriteString("]")
	return b.String()
}
