package onnx

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/onnxslm/onnxslm/internal/ints"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// codecCases hold each data type's values written by hand both as raw_data
// bytes (little endian) and in the typed field ONNX assigns to the type.
var codecCases = []struct {
	name  string
	dtype pb.TensorProto_DataType
	dims  []int64
	raw   []byte
	typed func(*pb.TensorProto)
	want  any
}{
	{"float32", pb.TensorProto_FLOAT, []int64{3},
		[]byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0xc0, 0x7f},
		func(t *pb.TensorProto) { t.FloatData = []float32{1, -2, float32(math.NaN())} },
		[]float32{1, -2, float32(math.NaN())}},
	{"float32 scalar", pb.TensorProto_FLOAT, nil,
		[]byte{0, 0, 0x20, 0x41},
		func(t *pb.TensorProto) { t.FloatData = []float32{10} },
		[]float32{10}},
	{"float32 empty", pb.TensorProto_FLOAT, []int64{0, 3},
		[]byte{},
		func(t *pb.TensorProto) {},
		[]float32{}},
	{"float64", pb.TensorProto_DOUBLE, []int64{2},
		[]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0xe0, 0xbf},
		func(t *pb.TensorProto) { t.DoubleData = []float64{1, -0.5} },
		[]float64{1, -0.5}},
	{"float16", pb.TensorProto_FLOAT16, []int64{1, 3},
		[]byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00},
		func(t *pb.TensorProto) { t.Int32Data = []int32{0x3c00, 0xc000, 0x0001} },
		[]uint16{0x3c00, 0xc000, 0x0001}},
	{"bfloat16", pb.TensorProto_BFLOAT16, []int64{2},
		[]byte{0x80, 0x3f, 0xc0, 0x7f},
		func(t *pb.TensorProto) { t.Int32Data = []int32{0x3f80, 0x7fc0} },
		[]uint16{0x3f80, 0x7fc0}},
	{"int64", pb.TensorProto_INT64, []int64{3},
		[]byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x80},
		func(t *pb.TensorProto) { t.Int64Data = []int64{1, -1, math.MinInt64} },
		[]int64{1, -1, math.MinInt64}},
	{"int32", pb.TensorProto_INT32, []int64{2},
		[]byte{2, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff},
		func(t *pb.TensorProto) { t.Int32Data = []int32{2, -2} },
		[]int32{2, -2}},
	{"int16", pb.TensorProto_INT16, []int64{2},
		[]byte{3, 0, 0xfd, 0xff},
		func(t *pb.TensorProto) { t.Int32Data = []int32{3, -3} },
		[]int16{3, -3}},
	{"int8", pb.TensorProto_INT8, []int64{3},
		[]byte{0x7f, 0x80, 0xff},
		func(t *pb.TensorProto) { t.Int32Data = []int32{127, -128, -1} },
		[]int8{127, -128, -1}},
	{"uint8", pb.TensorProto_UINT8, []int64{2},
		[]byte{0, 0xff},
		func(t *pb.TensorProto) { t.Int32Data = []int32{0, 255} },
		[]uint8{0, 255}},
	{"uint16", pb.TensorProto_UINT16, []int64{2},
		[]byte{0xff, 0xff, 0x34, 0x12},
		func(t *pb.TensorProto) { t.Int32Data = []int32{65535, 0x1234} },
		[]uint16{65535, 0x1234}},
	{"uint32", pb.TensorProto_UINT32, []int64{1},
		[]byte{0xff, 0xff, 0xff, 0xff},
		func(t *pb.TensorProto) { t.Uint64Data = []uint64{math.MaxUint32} },
		[]uint32{math.MaxUint32}},
	{"uint64", pb.TensorProto_UINT64, []int64{1},
		[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		func(t *pb.TensorProto) { t.Uint64Data = []uint64{math.MaxUint64} },
		[]uint64{math.MaxUint64}},
	{"bool", pb.TensorProto_BOOL, []int64{3},
		[]byte{1, 0, 1},
		func(t *pb.TensorProto) { t.Int32Data = []int32{1, 0, 1} },
		[]bool{true, false, true}},
}

func newProto(dt pb.TensorProto_DataType, dims []int64) *pb.TensorProto {
	return &pb.TensorProto{Name: ptr("t"), DataType: ptr(int32(dt)), Dims: dims}
}

// sameData compares decoded data, NaNs equal to NaNs with the same bits.
func sameData(a, b any) bool {
	if x, ok := a.([]float32); ok {
		y, ok := b.([]float32)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestDecodeTensor(t *testing.T) {
	for _, c := range codecCases {
		for _, from := range []string{"raw_data", "typed field"} {
			p := newProto(c.dtype, c.dims)
			if from == "raw_data" {
				p.RawData = c.raw
			} else {
				c.typed(p)
			}
			got, err := DecodeTensor(p)
			if err != nil {
				t.Errorf("%s from %s: DecodeTensor: %v", c.name, from, err)
				continue
			}
			if got.DType != c.dtype || !reflect.DeepEqual(append([]int64{}, got.Dims...), append([]int64{}, c.dims...)) {
				t.Errorf("%s from %s: got dtype %v dims %v, want %v %v", c.name, from, got.DType, got.Dims, c.dtype, c.dims)
			}
			if !sameData(got.Data, c.want) {
				t.Errorf("%s from %s: got data %v, want %v", c.name, from, got.Data, c.want)
			}
		}
	}
}

func TestEncodeTensor(t *testing.T) {
	for _, c := range codecCases {
		p, err := EncodeTensor("x", &Tensor{DType: c.dtype, Dims: c.dims, Data: c.want})
		if err != nil {
			t.Errorf("%s: EncodeTensor: %v", c.name, err)
			continue
		}
		if p.GetName() != "x" || p.GetDataType() != int32(c.dtype) || len(p.Dims) != len(c.dims) {
			t.Errorf("%s: got name %q dtype %d dims %v, want x %d %v", c.name, p.GetName(), p.GetDataType(), p.Dims, c.dtype, c.dims)
		}
		if !bytes.Equal(p.RawData, c.raw) || p.RawData == nil {
			t.Errorf("%s: got raw_data % x, want % x", c.name, p.RawData, c.raw)
		}
	}
	// Strings go to string_data.
	p, err := EncodeTensor("s", &Tensor{DType: pb.TensorProto_STRING, Dims: []int64{2}, Data: [][]byte{[]byte("a"), []byte("bc")}})
	if err != nil {
		t.Fatal(err)
	}
	if p.RawData != nil || len(p.StringData) != 2 || string(p.StringData[1]) != "bc" {
		t.Errorf("string tensor: got raw %v string_data %q, want string_data [a bc]", p.RawData, p.StringData)
	}
	d, err := DecodeTensor(p)
	if err != nil || !reflect.DeepEqual(d.Data, [][]byte{[]byte("a"), []byte("bc")}) {
		t.Errorf("string tensor decoded: got %v, %v", d, err)
	}
}

// The result of EncodeTensor and DecodeTensor never aliases their input.
func TestCodecCopies(t *testing.T) {
	data := []float32{1, 2}
	p, err := EncodeTensor("x", &Tensor{DType: pb.TensorProto_FLOAT, Dims: []int64{2}, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	data[0] = 9
	d, err := DecodeTensor(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Data.([]float32)[0]; got != 1 {
		t.Errorf("encode aliased its input: got %v, want 1", got)
	}
	d.Data.([]float32)[1] = 7
	if got := math.Float32frombits(uint32(p.RawData[4]) | uint32(p.RawData[5])<<8 | uint32(p.RawData[6])<<16 | uint32(p.RawData[7])<<24); got != 2 {
		t.Errorf("decode aliased raw_data: got %v, want 2", got)
	}
}

var decodeErrors = []struct {
	name string
	p    *pb.TensorProto
	want string
}{
	{"raw too short", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_FLOAT, []int64{2, 2})
		p.RawData = make([]byte, 12)
		return p
	}(), "raw_data has 12 bytes, dims [2 2] of float32 need 16"},
	{"typed too long", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_INT64, []int64{2})
		p.Int64Data = []int64{1, 2, 3}
		return p
	}(), "int64_data has 3 values, dims need 2"},
	{"no data", newProto(pb.TensorProto_FLOAT, []int64{4}), "float_data has 0 values, dims need 4"},
	{"int8 out of range", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_INT8, []int64{1})
		p.Int32Data = []int32{200}
		return p
	}(), "int32_data[0] = 200 out of range for int8"},
	{"float16 out of range", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_FLOAT16, []int64{1})
		p.Int32Data = []int32{-1}
		return p
	}(), "int32_data[0] = -1 out of range for float16"},
	{"uint32 out of range", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_UINT32, []int64{1})
		p.Uint64Data = []uint64{1 << 40}
		return p
	}(), "out of range for uint32"},
	{"bool raw 2", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_BOOL, []int64{2})
		p.RawData = []byte{1, 2}
		return p
	}(), "raw_data[1] = 2 is not a bool"},
	{"negative dim", newProto(pb.TensorProto_FLOAT, []int64{2, -1}), "negative dim -1 at axis 1"},
	{"overflowing dims", newProto(pb.TensorProto_FLOAT, []int64{1 << 32, 1 << 32}), "element count overflows int64"},
	{"terabyte claim without data", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_FLOAT, []int64{1 << 20, 1 << 20})
		p.RawData = make([]byte, 16)
		return p
	}(), "raw_data has 16 bytes, dims [1048576 1048576] of float32 need 4398046511104"},
	{"string in raw", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_STRING, []int64{1})
		p.RawData = []byte("a")
		return p
	}(), "string tensor stored in raw_data"},
	{"external not loaded", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_FLOAT, []int64{1})
		p.DataLocation = pb.TensorProto_EXTERNAL.Enum()
		return p
	}(), "external file that was not loaded"},
	{"complex64", func() *pb.TensorProto {
		p := newProto(pb.TensorProto_COMPLEX64, []int64{1})
		p.RawData = make([]byte, 8)
		return p
	}(), "cannot decode data type complex64"},
	{"undefined", newProto(pb.TensorProto_UNDEFINED, []int64{1}), "cannot decode data type undefined"},
	{"nil", nil, "nil tensor"},
}

func TestDecodeTensorErrors(t *testing.T) {
	for _, c := range decodeErrors {
		_, err := DecodeTensor(c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.want)
			continue
		}
		if c.p != nil && !strings.HasPrefix(err.Error(), `tensor "t": `) {
			t.Errorf("%s: error %q does not name the tensor", c.name, err)
		}
	}
}

func TestEncodeTensorErrors(t *testing.T) {
	cases := []struct {
		name string
		t    *Tensor
		want string
	}{
		{"wrong Go type", &Tensor{DType: pb.TensorProto_FLOAT, Dims: []int64{1}, Data: []int64{1}}, "data type float32 does not match Go data for int64"},
		{"count", &Tensor{DType: pb.TensorProto_FLOAT, Dims: []int64{3}, Data: []float32{1}}, "1 values, dims [3] need 3"},
		{"unsupported Go type", &Tensor{DType: pb.TensorProto_FLOAT, Dims: []int64{1}, Data: []string{"a"}}, "Go type []string"},
		{"negative dims", &Tensor{DType: pb.TensorProto_FLOAT, Dims: []int64{-1}, Data: []float32{}}, "negative dim"},
		{"nil", nil, "nil tensor"},
	}
	for _, c := range cases {
		_, err := EncodeTensor("x", c.t)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), `encode tensor "x": `) {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestNumElements(t *testing.T) {
	cases := []struct {
		dims    []int64
		want    int64
		wantErr string
	}{
		{nil, 1, ""},
		{[]int64{}, 1, ""},
		{[]int64{2, 3, 4}, 24, ""},
		{[]int64{5, 0, 1 << 62}, 0, ""},
		{[]int64{math.MaxInt64}, math.MaxInt64, ""},
		{[]int64{1 << 31, 1 << 31, 2}, 0, "overflows"},
		{[]int64{1 << 31, 1 << 31, 1}, 1 << 62, ""},
		{[]int64{3, -2}, 0, "negative dim -2 at axis 1"},
		{[]int64{1 << 32, 1 << 31}, 0, "overflows"},
	}
	for _, c := range cases {
		got, err := NumElements(c.dims)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("NumElements(%v): got %d, %v, want error containing %q", c.dims, got, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("NumElements(%v) = %d, %v, want %d", c.dims, got, err, c.want)
		}
	}
}

func TestFloat32s(t *testing.T) {
	f16 := newProto(pb.TensorProto_FLOAT16, []int64{3})
	f16.RawData = []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00}
	f16typed := newProto(pb.TensorProto_FLOAT16, []int64{2})
	f16typed.Int32Data = []int32{0x3555, 0x7c00}
	bf16 := newProto(pb.TensorProto_BFLOAT16, []int64{2})
	bf16.RawData = []byte{0x80, 0x3f, 0x49, 0x40}
	f64 := newProto(pb.TensorProto_DOUBLE, []int64{2})
	f64.DoubleData = []float64{0.5, 1e300}
	f32typed := newProto(pb.TensorProto_FLOAT, []int64{2})
	f32typed.FloatData = []float32{4, 5}
	cases := []struct {
		name string
		p    *pb.TensorProto
		want []float32
	}{
		{"float16 raw", f16, []float32{1, -2, 5.960464477539063e-08}},
		{"float16 int32_data", f16typed, []float32{0.333251953125, float32(math.Inf(1))}},
		{"bfloat16 raw", bf16, []float32{1, 3.140625}},
		{"float64 double_data (1e300 overflows to Inf)", f64, []float32{0.5, float32(math.Inf(1))}},
		{"float32 float_data", f32typed, []float32{4, 5}},
	}
	for _, c := range cases {
		got, err := Float32s(c.p)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Float32s = %v, %v, want %v", c.name, got, err, c.want)
		}
	}
	if _, err := Float32s(newProto(pb.TensorProto_INT64, []int64{0})); err == nil || !strings.Contains(err.Error(), "int64 is not floating point") {
		t.Errorf("Float32s(int64): got %v, want a 'not floating point' error", err)
	}
}

// Float32s of a FLOAT tensor in raw_data aliases the bytes (no copy of large
// weights); raw_data that is not 4-byte aligned is copied instead.
func TestFloat32sAliases(t *testing.T) {
	p := NewFloat32("w", []int64{2, 2}, []float32{1, 2, 3, 4})
	v, err := Float32s(p)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.Pointer(&v[0]) != unsafe.Pointer(&p.RawData[0]) && littleEndian {
		t.Errorf("Float32s copied aligned raw_data; want it to alias")
	}
	if !reflect.DeepEqual(v, []float32{1, 2, 3, 4}) {
		t.Errorf("Float32s = %v, want [1 2 3 4]", v)
	}
	buf := make([]byte, 17)
	copy(buf[1:], p.RawData)
	q := newProto(pb.TensorProto_FLOAT, []int64{4})
	q.RawData = buf[1:]
	v, err = Float32s(q)
	if err != nil || !reflect.DeepEqual(v, []float32{1, 2, 3, 4}) {
		t.Errorf("Float32s(unaligned) = %v, %v, want [1 2 3 4]", v, err)
	}
}

func TestInt64s(t *testing.T) {
	for _, c := range codecCases {
		// Widening is ints.AsInt64s' job (tested there); a uint16 case stands
		// for float16 or bfloat16 bits unless its dtype is UINT16.
		if _, bits := c.want.([]uint16); bits && c.dtype != pb.TensorProto_UINT16 {
			continue
		}
		want, ok := ints.AsInt64s(c.want)
		if !ok {
			continue
		}
		p := newProto(c.dtype, c.dims)
		p.RawData = c.raw
		got, err := Int64s(p)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Int64s = %v, %v, want %v", c.name, got, err, want)
		}
	}
	u := newProto(pb.TensorProto_UINT64, []int64{1})
	u.Uint64Data = []uint64{math.MaxUint64}
	if _, err := Int64s(u); err == nil || !strings.Contains(err.Error(), "does not fit int64") {
		t.Errorf("Int64s(MaxUint64): got %v, want a 'does not fit' error", err)
	}
	if _, err := Int64s(NewFloat32("f", nil, []float32{1})); err == nil || !strings.Contains(err.Error(), "not an integer type") {
		t.Errorf("Int64s(float32): got %v, want a 'not an integer type' error", err)
	}
	// Int64s returns a new slice even for int64_data.
	p := NewInt64("i", []int64{2}, []int64{7, 8})
	p.Int64Data, p.RawData = []int64{7, 8}, nil
	got, _ := Int64s(p)
	got[0] = 0
	if p.Int64Data[0] != 7 {
		t.Errorf("Int64s aliased int64_data")
	}
}

func TestNewTensors(t *testing.T) {
	f := NewFloat32("f", []int64{2}, []float32{1, -2})
	if f.GetName() != "f" || f.GetDataType() != int32(pb.TensorProto_FLOAT) || !bytes.Equal(f.RawData, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}) {
		t.Errorf("NewFloat32: got %v", f)
	}
	i := NewInt64("i", nil, []int64{-1})
	if i.GetDataType() != int32(pb.TensorProto_INT64) || len(i.Dims) != 0 || !bytes.Equal(i.RawData, bytes.Repeat([]byte{0xff}, 8)) {
		t.Errorf("NewInt64: got %v", i)
	}
}

func TestDTypeNames(t *testing.T) {
	cases := []struct {
		dt   pb.TensorProto_DataType
		name string
		size int
	}{
		{pb.TensorProto_FLOAT, "float32", 4},
		{pb.TensorProto_FLOAT16, "float16", 2},
		{pb.TensorProto_BFLOAT16, "bfloat16", 2},
		{pb.TensorProto_DOUBLE, "float64", 8},
		{pb.TensorProto_INT64, "int64", 8},
		{pb.TensorProto_BOOL, "bool", 1},
		{pb.TensorProto_STRING, "string", 0},
		{dtFloat8E4M3FN, "float8e4m3fn", 1},
		{99, "dtype(99)", 0},
	}
	for _, c := range cases {
		size, _ := ElemSize(c.dt)
		if got := DTypeName(c.dt); got != c.name || size != c.size {
			t.Errorf("DTypeName/ElemSize(%d) = %q, %d, want %q, %d", c.dt, got, size, c.name, c.size)
		}
	}
}
