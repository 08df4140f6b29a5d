package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unsafe"

	"github.com/onnxslm/onnxslm/internal/half"
	"github.com/onnxslm/onnxslm/internal/ints"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Tensor is a decoded tensor. Data's Go type depends on DType:
//
//	FLOAT []float32, DOUBLE []float64, FLOAT16 []uint16 (bits), BFLOAT16 []uint16 (bits),
//	INT64 []int64, INT32 []int32, INT16 []int16, INT8 []int8, UINT8 []uint8,
//	UINT16 []uint16, UINT32 []uint32, UINT64 []uint64, BOOL []bool, STRING [][]byte
//
// len(Data) is the product of Dims (1 for a scalar, whose Dims is empty).
type Tensor struct {
	DType pb.TensorProto_DataType
	Dims  []int64
	Data  any
}

// Data types newer than onnx.proto's IR 8, known by number so that their sizes
// can be checked; this package does not decode them.
const (
	dtFloat8E4M3FN   pb.TensorProto_DataType = 17
	dtFloat8E4M3FNUZ pb.TensorProto_DataType = 18
	dtFloat8E5M2     pb.TensorProto_DataType = 19
	dtFloat8E5M2FNUZ pb.TensorProto_DataType = 20
	dtUint4          pb.TensorProto_DataType = 21
	dtInt4           pb.TensorProto_DataType = 22
	dtFloat4E2M1     pb.TensorProto_DataType = 23
)

var dtypeNames = map[pb.TensorProto_DataType]string{
	pb.TensorProto_FLOAT:      "float32",
	pb.TensorProto_UINT8:      "uint8",
	pb.TensorProto_INT8:       "int8",
	pb.TensorProto_UINT16:     "uint16",
	pb.TensorProto_INT16:      "int16",
	pb.TensorProto_INT32:      "int32",
	pb.TensorProto_INT64:      "int64",
	pb.TensorProto_STRING:     "string",
	pb.TensorProto_BOOL:       "bool",
	pb.TensorProto_FLOAT16:    "float16",
	pb.TensorProto_DOUBLE:     "float64",
	pb.TensorProto_UINT32:     "uint32",
	pb.TensorProto_UINT64:     "uint64",
	pb.TensorProto_COMPLEX64:  "complex64",
	pb.TensorProto_COMPLEX128: "complex128",
	pb.TensorProto_BFLOAT16:   "bfloat16",
	dtFloat8E4M3FN:            "float8e4m3fn",
	dtFloat8E4M3FNUZ:          "float8e4m3fnuz",
	dtFloat8E5M2:              "float8e5m2",
	dtFloat8E5M2FNUZ:          "float8e5m2fnuz",
	dtUint4:                   "uint4",
	dtInt4:                    "int4",
	dtFloat4E2M1:              "float4e2m1",
}

// DTypeName is a short lower-case name of dt: "float32", "float16", "bfloat16",
// "float64", "int64", "bool", ...; "undefined" for 0 and "dtype(N)" for a
// number it does not know.
func DTypeName(dt pb.TensorProto_DataType) string {
	if n, ok := dtypeNames[dt]; ok {
		return n
	}
	if dt == pb.TensorProto_UNDEFINED {
		return "undefined"
	}
	return fmt.Sprintf("dtype(%d)", int32(dt))
}

// ElemSize is the size in bytes of one element of dt in raw_data; ok is false
// for STRING, UNDEFINED, unknown types and 4-bit types (two elements per byte).
func ElemSize(dt pb.TensorProto_DataType) (size int, ok bool) {
	switch dt {
	case pb.TensorProto_UINT8, pb.TensorProto_INT8, pb.TensorProto_BOOL,
		dtFloat8E4M3FN, dtFloat8E4M3FNUZ, dtFloat8E5M2, dtFloat8E5M2FNUZ:
		return 1, true
	case pb.TensorProto_UINT16, pb.TensorProto_INT16, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		return 2, true
	case pb.TensorProto_FLOAT, pb.TensorProto_INT32, pb.TensorProto_UINT32:
		return 4, true
	case pb.TensorProto_INT64, pb.TensorProto_DOUBLE, pb.TensorProto_UINT64, pb.TensorProto_COMPLEX64:
		return 8, true
	case pb.TensorProto_COMPLEX128:
		return 16, true
	}
	return 0, false
}

func isFourBit(dt pb.TensorProto_DataType) bool {
	return dt == dtUint4 || dt == dtInt4 || dt == dtFloat4E2M1
}

// NumElements is the product of dims (1 for no dims), or an error when a dim is
// negative or the product overflows int64.
func NumElements(dims []int64) (int64, error) {
	n := int64(1)
	for i, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dim %d at axis %d of %v", d, i, dimsString(dims))
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("dims %s: element count overflows int64", dimsString(dims))
		}
		n *= d
	}
	return n, nil
}

// rawSize is the number of bytes that n elements of dt take in raw_data; ok is
// false when dt has no fixed raw size (STRING, unknown types).
func rawSize(dt pb.TensorProto_DataType, dims []int64) (size int64, ok bool, err error) {
	n, err := NumElements(dims)
	if err != nil {
		return 0, false, err
	}
	if isFourBit(dt) {
		return (n + 1) / 2, true, nil
	}
	es, ok := ElemSize(dt)
	if !ok {
		return 0, false, nil
	}
	if n > math.MaxInt64/int64(es) {
		return 0, false, fmt.Errorf("dims %s of %s: byte size overflows int64", dimsString(dims), DTypeName(dt))
	}
	return n * int64(es), true, nil
}

// dimsString prints dims as [2 3 4], shortened when there are very many.
func dimsString(dims []int64) string {
	if len(dims) > 16 {
		return fmt.Sprintf("%v...(%d dims)", dims[:16], len(dims))
	}
	return fmt.Sprint(dims)
}

func tensorDType(t *pb.TensorProto) pb.TensorProto_DataType {
	return pb.TensorProto_DataType(t.GetDataType())
}

func isExternal(t *pb.TensorProto) bool {
	return t.GetDataLocation() == pb.TensorProto_EXTERNAL
}

var errExternal = errors.New("data is in an external file that was not loaded (use onnx.Load)")

// elementCount checks the tensor's dims and returns the element count as an int.
func elementCount(t *pb.TensorProto) (int, error) {
	n, err := NumElements(t.GetDims())
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt {
		return 0, fmt.Errorf("dims %s: too many elements", dimsString(t.GetDims()))
	}
	return int(n), nil
}

// checkRaw checks that raw_data holds exactly n elements of dt.
func checkRaw(t *pb.TensorProto, dt pb.TensorProto_DataType) error {
	want, ok, err := rawSize(dt, t.GetDims())
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s data cannot be stored in raw_data", DTypeName(dt))
	}
	if int64(len(t.RawData)) != want {
		return fmt.Errorf("raw_data has %d bytes, dims %s of %s need %d", len(t.RawData), dimsString(t.GetDims()), DTypeName(dt), want)
	}
	return nil
}

func checkCount(field string, got, n int) error {
	if got != n {
		return fmt.Errorf("%s has %d values, dims need %d", field, got, n)
	}
	return nil
}

// typedField names the typed field that holds dt's values when raw_data is not used.
func typedField(dt pb.TensorProto_DataType) string {
	switch dt {
	case pb.TensorProto_FLOAT, pb.TensorProto_COMPLEX64:
		return "float_data"
	case pb.TensorProto_INT64:
		return "int64_data"
	case pb.TensorProto_DOUBLE, pb.TensorProto_COMPLEX128:
		return "double_data"
	case pb.TensorProto_UINT32, pb.TensorProto_UINT64:
		return "uint64_data"
	case pb.TensorProto_STRING:
		return "string_data"
	}
	return "int32_data"
}

// typedCount is the number of values in the typed field for dt.
func typedCount(t *pb.TensorProto, dt pb.TensorProto_DataType) int {
	switch typedField(dt) {
	case "float_data":
		return len(t.FloatData)
	case "int64_data":
		return len(t.Int64Data)
	case "double_data":
		return len(t.DoubleData)
	case "uint64_data":
		return len(t.Uint64Data)
	case "string_data":
		return len(t.StringData)
	}
	return len(t.Int32Data)
}

// checkTensor validates a loaded tensor without decoding it: dims, and that the
// data present (raw_data or the typed field) matches them. Types it cannot
// size are only checked for their dims.
func checkTensor(t *pb.TensorProto) error {
	dt := tensorDType(t)
	if isExternal(t) {
		return errExternal
	}
	n, err := NumElements(t.GetDims())
	if err != nil {
		return err
	}
	if t.RawData != nil {
		if dt == pb.TensorProto_STRING {
			return errors.New("string tensor stored in raw_data")
		}
		if _, ok, err := rawSize(dt, t.GetDims()); err != nil || !ok {
			return err // nil for a type this package does not know: left as is
		}
		return checkRaw(t, dt)
	}
	if _, ok := dtypeNames[dt]; !ok || isFourBit(dt) {
		return nil
	}
	want := n
	if dt == pb.TensorProto_COMPLEX64 || dt == pb.TensorProto_COMPLEX128 {
		want = 2 * n
	}
	got := int64(typedCount(t, dt))
	if got != want {
		return fmt.Errorf("%s has %d values, dims %s need %d", typedField(dt), got, dimsString(t.GetDims()), want)
	}
	return nil
}

// DecodeTensor decodes t's data from raw_data (little endian) or from the typed
// field that holds its type. The result never aliases t. It fails on external
// data not loaded, sizes that do not match the dims, values out of range for
// the type, and types it does not decode (complex, float8, 4-bit).
func DecodeTensor(t *pb.TensorProto) (*Tensor, error) {
	return withName(t, decodeTensor)
}

// withName runs read on t, failing on a nil t, and names t in read's error:
// the exported readers are this wrapper around their unexported halves, which
// the package calls on tensors it has checked.
func withName[T any](t *pb.TensorProto, read func(*pb.TensorProto) (T, error)) (T, error) {
	var zero T
	if t == nil {
		return zero, errors.New("nil tensor")
	}
	v, err := read(t)
	if err != nil {
		return zero, fmt.Errorf("tensor %q: %w", t.GetName(), err)
	}
	return v, nil
}

// inlineData returns t's data type and element count, failing on external
// data not loaded and on dims that give no count: what a reader of t's values
// checks first.
func inlineData(t *pb.TensorProto) (pb.TensorProto_DataType, int, error) {
	if isExternal(t) {
		return 0, 0, errExternal
	}
	n, err := elementCount(t)
	if err != nil {
		return 0, 0, err
	}
	return tensorDType(t), n, nil
}

func decodeTensor(t *pb.TensorProto) (*Tensor, error) {
	dt, n, err := inlineData(t)
	if err != nil {
		return nil, err
	}
	out := &Tensor{DType: dt, Dims: append([]int64(nil), t.GetDims()...)}
	raw := t.RawData != nil
	if raw && dt != pb.TensorProto_STRING {
		if _, ok := ElemSize(dt); ok {
			if err := checkRaw(t, dt); err != nil {
				return nil, err
			}
		}
	}
	if !raw {
		// Check the count before allocating: dims may claim far more than the data holds.
		if _, known := dtypeNames[dt]; known && !isFourBit(dt) && dt != pb.TensorProto_COMPLEX64 && dt != pb.TensorProto_COMPLEX128 {
			if err := checkCount(typedField(dt), typedCount(t, dt), n); err != nil {
				return nil, err
			}
		}
	}
	b := t.RawData
	switch dt {
	case pb.TensorProto_FLOAT:
		out.Data, err = decodeValues(raw, b, n, "float_data", t.FloatData, same[float32])
	case pb.TensorProto_DOUBLE:
		out.Data, err = decodeValues(raw, b, n, "double_data", t.DoubleData, same[float64])
	case pb.TensorProto_INT64:
		out.Data, err = decodeValues(raw, b, n, "int64_data", t.Int64Data, same[int64])
	case pb.TensorProto_UINT64:
		out.Data, err = decodeValues(raw, b, n, "uint64_data", t.Uint64Data, same[uint64])
	case pb.TensorProto_INT32:
		out.Data, err = decodeValues(raw, b, n, "int32_data", t.Int32Data, same[int32])
	case pb.TensorProto_UINT32:
		out.Data, err = decodeValues(raw, b, n, "uint64_data", t.Uint64Data, narrow[uint64, uint32](dt, "uint64_data", 0, math.MaxUint32))
	case pb.TensorProto_INT16:
		out.Data, err = decodeValues(raw, b, n, "int32_data", t.Int32Data, narrow[int32, int16](dt, "int32_data", math.MinInt16, math.MaxInt16))
	case pb.TensorProto_INT8:
		out.Data, err = decodeValues(raw, b, n, "int32_data", t.Int32Data, narrow[int32, int8](dt, "int32_data", math.MinInt8, math.MaxInt8))
	case pb.TensorProto_UINT8:
		out.Data, err = decodeValues(raw, b, n, "int32_data", t.Int32Data, narrow[int32, uint8](dt, "int32_data", 0, math.MaxUint8))
	case pb.TensorProto_UINT16, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		out.Data, err = decodeValues(raw, b, n, "int32_data", t.Int32Data, narrow[int32, uint16](dt, "int32_data", 0, math.MaxUint16))
	case pb.TensorProto_BOOL:
		if raw {
			for i, x := range b {
				if x > 1 {
					return nil, fmt.Errorf("raw_data[%d] = %d is not a bool (0 or 1)", i, x)
				}
			}
		}
		toBool := narrow[int32, uint8](dt, "int32_data", 0, 1)
		out.Data, err = decodeValues(raw, b, n, "int32_data", t.Int32Data, func(i int, x int32) (bool, error) {
			v, err := toBool(i, x)
			return v == 1, err
		})
	case pb.TensorProto_STRING:
		if raw {
			return nil, errors.New("string tensor stored in raw_data")
		}
		if err := checkCount("string_data", len(t.StringData), n); err != nil {
			return nil, err
		}
		v := make([][]byte, n)
		for i, s := range t.StringData {
			v[i] = append([]byte(nil), s...)
		}
		out.Data = v
	default:
		return nil, fmt.Errorf("cannot decode data type %s", DTypeName(dt))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeValues makes n values of T from raw_data (little endian; its size
// already checked) or, when the tensor does not use raw_data, from its typed
// field (named field, values typed) through conv.
func decodeValues[S, T any](raw bool, b []byte, n int, field string, typed []S, conv func(int, S) (T, error)) ([]T, error) {
	v := make([]T, n)
	if raw {
		if _, err := binary.Decode(b, binary.LittleEndian, v); err != nil {
			return nil, fmt.Errorf("raw_data: %w", err)
		}
		return v, nil
	}
	if err := checkCount(field, len(typed), n); err != nil {
		return nil, err
	}
	for i, x := range typed {
		y, err := conv(i, x)
		if err != nil {
			return nil, err
		}
		v[i] = y
	}
	return v, nil
}

// same is the conversion of a typed field that holds the tensor's own type.
func same[T any](_ int, x T) (T, error) { return x, nil }

// narrow is the conversion of a typed field that holds a wider integer type
// (int32_data for 8- and 16-bit types, uint64_data for uint32): each value
// must lie within [lo, hi].
func narrow[S int32 | uint64, T int8 | int16 | uint8 | uint16 | uint32](dt pb.TensorProto_DataType, field string, lo, hi S) func(int, S) (T, error) {
	return func(i int, x S) (T, error) {
		if x < lo || x > hi {
			return 0, fmt.Errorf("%s[%d] = %d out of range for %s", field, i, x, DTypeName(dt))
		}
		return T(x), nil
	}
}

// EncodeTensor encodes t as a TensorProto named name, with the data in raw_data
// (little endian), or string_data for STRING. Data must have the Go type that
// Tensor documents for DType and as many elements as Dims say. The result does
// not alias t.
func EncodeTensor(name string, t *Tensor) (*pb.TensorProto, error) {
	p, err := encodeTensor(name, t)
	if err != nil {
		return nil, fmt.Errorf("encode tensor %q: %w", name, err)
	}
	return p, nil
}

// goDataTypes maps each Go type that Tensor.Data may have to the data types
// it can hold.
var goDataTypes = map[reflect.Type][]pb.TensorProto_DataType{
	reflect.TypeFor[[]float32](): {pb.TensorProto_FLOAT},
	reflect.TypeFor[[]float64](): {pb.TensorProto_DOUBLE},
	reflect.TypeFor[[]int64]():   {pb.TensorProto_INT64},
	reflect.TypeFor[[]uint64]():  {pb.TensorProto_UINT64},
	reflect.TypeFor[[]int32]():   {pb.TensorProto_INT32},
	reflect.TypeFor[[]uint32]():  {pb.TensorProto_UINT32},
	reflect.TypeFor[[]int16]():   {pb.TensorProto_INT16},
	reflect.TypeFor[[]uint16]():  {pb.TensorProto_UINT16, pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16},
	reflect.TypeFor[[]int8]():    {pb.TensorProto_INT8},
	reflect.TypeFor[[]uint8]():   {pb.TensorProto_UINT8},
	reflect.TypeFor[[]bool]():    {pb.TensorProto_BOOL},
	reflect.TypeFor[[][]byte]():  {pb.TensorProto_STRING},
}

func encodeTensor(name string, t *Tensor) (*pb.TensorProto, error) {
	if t == nil {
		return nil, errors.New("nil tensor")
	}
	n, err := NumElements(t.Dims)
	if err != nil {
		return nil, err
	}
	p := &pb.TensorProto{
		Name:     &name,
		DataType: ptr(int32(t.DType)),
		Dims:     append([]int64{}, t.Dims...),
	}
	want, ok := goDataTypes[reflect.TypeOf(t.Data)]
	if !ok {
		return nil, fmt.Errorf("data of Go type %T for %s: not supported", t.Data, DTypeName(t.DType))
	}
	count := reflect.ValueOf(t.Data).Len()
	if err := wantType(t.DType, want...); err != nil {
		return nil, err
	}
	if v, ok := t.Data.([][]byte); ok {
		p.StringData = make([][]byte, len(v))
		for i, s := range v {
			p.StringData[i] = append([]byte{}, s...)
		}
	} else {
		size := binary.Size(t.Data)
		if p.RawData, err = binary.Append(make([]byte, 0, max(size, 0)), binary.LittleEndian, t.Data); err != nil {
			return nil, err
		}
	}
	if int64(count) != n {
		return nil, fmt.Errorf("%d values, dims %s need %d", count, dimsString(t.Dims), n)
	}
	return p, nil
}

func wantType(got pb.TensorProto_DataType, want ...pb.TensorProto_DataType) error {
	for _, w := range want {
		if got == w {
			return nil
		}
	}
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = DTypeName(w)
	}
	return fmt.Errorf("data type %s does not match Go data for %s", DTypeName(got), strings.Join(names, "/"))
}

func ptr[T any](v T) *T { return &v }

// littleEndian reports whether this machine stores numbers little endian, as
// raw_data does; only then may Float32s alias raw_data.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Float32s returns the values of a floating-point tensor (FLOAT, FLOAT16,
// BFLOAT16, DOUBLE) as float32.
//
// For FLOAT the result may alias the tensor's memory (raw_data or float_data),
// so that large weights are not copied: callers must not modify it, and must
// copy it before modifying the tensor.
func Float32s(t *pb.TensorProto) ([]float32, error) {
	return withName(t, float32s)
}

func float32s(t *pb.TensorProto) ([]float32, error) {
	dt, n, err := inlineData(t)
	if err != nil {
		return nil, err
	}
	switch dt {
	case pb.TensorProto_FLOAT:
		if t.RawData == nil {
			if err := checkCount("float_data", len(t.FloatData), n); err != nil {
				return nil, err
			}
			return t.FloatData, nil
		}
		if err := checkRaw(t, dt); err != nil {
			return nil, err
		}
		if n == 0 {
			return []float32{}, nil
		}
		if littleEndian && uintptr(unsafe.Pointer(&t.RawData[0]))%unsafe.Alignof(float32(0)) == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&t.RawData[0])), n), nil
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:]))
		}
		return v, nil
	case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16:
		if t.RawData == nil {
			break // int32_data: decodeTensor below
		}
		// raw_data: widen the bytes at once, with no []uint16 between.
		if err := checkRaw(t, dt); err != nil {
			return nil, err
		}
		v := make([]float32, n)
		if dt == pb.TensorProto_BFLOAT16 {
			half.WidenBF16(v, t.RawData)
		} else {
			half.Widen(v, t.RawData)
		}
		return v, nil
	}
	switch dt {
	case pb.TensorProto_FLOAT16, pb.TensorProto_BFLOAT16, pb.TensorProto_DOUBLE:
		d, err := decodeTensor(t)
		if err != nil {
			return nil, err
		}
		v := make([]float32, n)
		switch x := d.Data.(type) {
		case []float64:
			for i, f := range x {
				v[i] = float32(f)
			}
		case []uint16:
			conv := Float16ToFloat32
			if dt == pb.TensorProto_BFLOAT16 {
				conv = BFloat16ToFloat32
			}
			for i, h := range x {
				v[i] = conv(h)
			}
		}
		return v, nil
	}
	return nil, fmt.Errorf("data type %s is not floating point", DTypeName(dt))
}

// Int64s returns the values of an integer or bool tensor widened to int64 (bool
// as 0 or 1), in a new slice. UINT64 values above math.MaxInt64 are an error.
func Int64s(t *pb.TensorProto) ([]int64, error) {
	return withName(t, int64s)
}

func int64s(t *pb.TensorProto) ([]int64, error) {
	dt := tensorDType(t)
	switch dt {
	case pb.TensorProto_INT64, pb.TensorProto_INT32, pb.TensorProto_INT16, pb.TensorProto_INT8,
		pb.TensorProto_UINT8, pb.TensorProto_UINT16, pb.TensorProto_UINT32, pb.TensorProto_UINT64,
		pb.TensorProto_BOOL:
	default:
		if isExternal(t) {
			return nil, errExternal
		}
		return nil, fmt.Errorf("data type %s is not an integer type", DTypeName(dt))
	}
	d, err := decodeTensor(t)
	if err != nil {
		return nil, err
	}
	if x, ok := d.Data.([]uint64); ok {
		v := make([]int64, len(x))
		for i, u := range x {
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("value %d at index %d does not fit int64", u, i)
			}
			v[i] = int64(u)
		}
		return v, nil
	}
	if v, ok := ints.AsInt64s(d.Data); ok {
		return v, nil // an []int64 is decodeTensor's new slice
	}
	return nil, fmt.Errorf("data type %s is not an integer type", DTypeName(dt))
}

// NewFloat32 returns a FLOAT tensor named name holding a copy of data in raw_data.
// It panics if len(data) does not match dims: that is a programming error.
func NewFloat32(name string, dims []int64, data []float32) *pb.TensorProto {
	return mustEncode("NewFloat32", name, &Tensor{DType: pb.TensorProto_FLOAT, Dims: dims, Data: data})
}

// NewInt64 returns an INT64 tensor named name holding a copy of data in raw_data.
// It panics if len(data) does not match dims: that is a programming error.
func NewInt64(name string, dims []int64, data []int64) *pb.TensorProto {
	return mustEncode("NewInt64", name, &Tensor{DType: pb.TensorProto_INT64, Dims: dims, Data: data})
}

// mustEncode is EncodeTensor for the New* constructors, whose callers pass
// data that matches dims by construction.
func mustEncode(fn, name string, t *Tensor) *pb.TensorProto {
	p, err := EncodeTensor(name, t)
	if err != nil {
		panic("onnx." + fn + ": " + err.Error())
	}
	return p
}
