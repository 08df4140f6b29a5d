package npy

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
)

// want recomputes the values testdata/gen.py wrote for dtype and n elements.
func want(dtype string, n int) any {
	switch dtype {
	case Float32:
		return seq(n, func(i int) float32 { return float32(i)*0.5 - 1 })
	case Float64:
		return seq(n, func(i int) float64 { return float64(i)*0.5 - 1 })
	case Int64:
		return seq(n, func(i int) int64 { return int64(i*3 - 5) })
	case Int32:
		return seq(n, func(i int) int32 { return int32(i*3 - 5) })
	case Uint8:
		return seq(n, func(i int) uint8 { return uint8(i * 37 % 256) })
	case Bool:
		return seq(n, func(i int) bool { return i%3 == 0 })
	}
	return nil
}

func seq[T any](n int, f func(int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

var goldens = []struct {
	file  string
	dtype string
	shape []int
	data  any // nil: want(dtype, product(shape))
}{
	{"f4_2x3.npy", Float32, []int{2, 3}, nil},
	{"f8_2x3.npy", Float64, []int{2, 3}, nil},
	{"i8_2x3.npy", Int64, []int{2, 3}, nil},
	{"i4_2x3.npy", Int32, []int{2, 3}, nil},
	{"u1_2x3.npy", Uint8, []int{2, 3}, nil},
	{"b1_2x3.npy", Bool, []int{2, 3}, nil},
	{"f4_scalar.npy", Float32, []int{}, []float32{-1}},
	{"f8_0x3.npy", Float64, []int{0, 3}, []float64{}},
	{"i8_5.npy", Int64, []int{5}, nil},
	{"f4_2x3x4.npy", Float32, []int{2, 3, 4}, nil},
	{"f4_2x3_v2.npy", Float32, []int{2, 3}, nil},
	{"f4_2x3_v3.npy", Float32, []int{2, 3}, nil},
}

func product(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func TestReadGolden(t *testing.T) {
	for _, tc := range goldens {
		t.Run(tc.file, func(t *testing.T) {
			a, err := Read(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			data := tc.data
			if data == nil {
				data = want(tc.dtype, product(tc.shape))
			}
			if a.DType != tc.dtype || !reflect.DeepEqual(a.Shape, tc.shape) {
				t.Fatalf("got dtype %s shape %v, want %s %v", a.DType, a.Shape, tc.dtype, tc.shape)
			}
			if !reflect.DeepEqual(a.Data, data) {
				t.Fatalf("got data %v, want %v", a.Data, data)
			}
			if err := a.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

// TestEncodeMatchesNumPy checks that Encode writes byte for byte what
// numpy.save wrote for the version-1 goldens.
func TestEncodeMatchesNumPy(t *testing.T) {
	for _, tc := range goldens {
		if strings.Contains(tc.file, "_v") {
			continue
		}
		t.Run(tc.file, func(t *testing.T) {
			golden, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			a, err := Decode(bytes.NewReader(golden))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := Encode(&buf, a); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), golden) {
				t.Fatalf("got\n%q\nwant\n%q", buf.Bytes(), golden)
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	for _, dt := range []string{Float32, Float64, Int64, Int32, Uint8, Bool} {
		a, err := New([]int{3, 1, 7}, want(dt, 21))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, strings.NewReplacer("<", "", "|", "").Replace(dt)+".npy")
		if err := Write(p, a); err != nil {
			t.Fatal(err)
		}
		b, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: got %+v, want %+v", dt, b, a)
		}
	}
	entries, _ := os.ReadDir(dir)
	if got, want := len(entries), 6; got != want {
		t.Errorf("got %d files in the folder (temporary files left?), want %d", got, want)
	}
}

func TestWriteKeepsOldFileOnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.npy")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := &Array{Shape: []int{2}, DType: Float32, Data: []float32{1}}
	if err := Write(p, bad); err == nil {
		t.Fatal("Write of an inconsistent array succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("got file %q after a failed write, want %q", b, "old")
	}
}

func TestAccessors(t *testing.T) {
	a, _ := New([]int{3}, []int32{-2, 0, 7})
	f32, err := a.Float32s()
	if err != nil || !reflect.DeepEqual(f32, []float32{-2, 0, 7}) {
		t.Errorf("Float32s = %v, %v", f32, err)
	}
	f64, err := a.Float64s()
	if err != nil || !reflect.DeepEqual(f64, []float64{-2, 0, 7}) {
		t.Errorf("Float64s = %v, %v", f64, err)
	}
	i64, err := a.Int64s()
	if err != nil || !reflect.DeepEqual(i64, []int64{-2, 0, 7}) {
		t.Errorf("Int64s = %v, %v", i64, err)
	}
	f, _ := New([]int{1}, []float32{1.5})
	if _, err := f.Int64s(); err == nil || !strings.Contains(err.Error(), "<f4 is not an integer") {
		t.Errorf("Int64s of float32: got error %v, want one saying <f4 is not an integer type", err)
	}
	own := []float32{1, 2}
	g, _ := New([]int{2}, own)
	if s, _ := g.Float32s(); &s[0] != &own[0] {
		t.Error("Float32s of a <f4 array copied the data, want the same slice")
	}
	bo, _ := New([]int{2}, []bool{true, false})
	if s, _ := bo.Float64s(); !reflect.DeepEqual(s, []float64{1, 0}) {
		t.Errorf("bool Float64s = %v", s)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		data  any
		msg   string
	}{
		{[]int{2}, []float32{1}, "holds 2 elements, data has 1"},
		{[]int{-1}, []float32{}, "negative dimension"},
		{[]int{1}, []int16{1}, "unsupported data type []int16"},
		{[]int{1 << 40, 1 << 40}, []float32{}, "too many elements"},
	} {
		_, err := New(tc.shape, tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("New(%v, %T): got error %v, want one containing %q", tc.shape, tc.data, err, tc.msg)
		}
	}
}

// npyBytes builds a version-1 file with the given header dict and data.
func npyBytes(dict string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	b.Write([]byte{1, 0})
	binary.Write(&b, binary.LittleEndian, uint16(len(dict)+1))
	b.WriteString(dict + "\n")
	b.Write(data)
	return b.Bytes()
}

func TestReadErrors(t *testing.T) {
	valid, _ := os.ReadFile(filepath.Join("testdata", "f4_2x3.npy"))
	for _, tc := range []struct {
		name string
		file string // from testdata, or
		data []byte // these bytes
		msg  string
	}{
		{name: "fortran", file: "f4_2x3_fortran.npy", msg: "Fortran-order arrays are not supported"},
		{name: "big-endian", file: "f4_2x3_bigendian.npy", msg: `big-endian dtype ">f4" is not supported`},
		{name: "float16", file: "f2_2x3.npy", msg: `unsupported dtype "<f2"`},
		{name: "complex", file: "c8_2.npy", msg: `unsupported dtype "<c8"`},
		{name: "structured", file: "structured.npy", msg: "structured dtypes are not supported"},
		{name: "empty", data: []byte{}, msg: "not a .npy file"},
		{name: "not npy", data: []byte("hello, world"), msg: "not a .npy file: bad magic"},
		{name: "version", data: append([]byte(magic), 4, 0, 0, 0), msg: "unsupported format version 4.0"},
		{name: "truncated header", data: valid[:40], msg: "header of 118 bytes runs past the end"},
		{name: "truncated data", data: valid[:len(valid)-1], msg: "data truncated: shape [2 3] of <f4 needs 24 bytes, the input has 23"},
		{name: "trailing", data: append(append([]byte{}, valid...), 0), msg: "1 bytes after the array data"},
		{name: "huge shape", data: npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 10000000), }", nil), msg: "too many elements"},
		{name: "terabytes", data: npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", make([]byte, 64)), msg: "needs 8000000000000 bytes, the input has 64"},
		{name: "dimension overflow", data: npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", nil), msg: "dimension 99999999999999999999 is too large"},
		{name: "negative", data: npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", nil), msg: "want a non-negative integer"},
		{name: "missing key", data: npyBytes("{'descr': '<f4', 'shape': (1,), }", make([]byte, 4)), msg: `key "fortran_order" missing`},
		{name: "extra key", data: npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", make([]byte, 4)), msg: `unexpected key "x"`},
		{name: "duplicate key", data: npyBytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", make([]byte, 4)), msg: `key "descr" appears twice`},
		{name: "not a tuple", data: npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", make([]byte, 12)), msg: "shape (3) is not a tuple"},
		{name: "garbage after", data: npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", make([]byte, 4)), msg: "unexpected text after '}'"},
		{name: "non-ascii", data: npyBytes("{'descr': '<f4\xe9', 'fortran_order': False, 'shape': (1,)}", make([]byte, 4)), msg: "non-ASCII byte 0xe9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join("testdata", tc.file)
			if tc.file == "" {
				p = filepath.Join(t.TempDir(), "bad.npy")
				if err := os.WriteFile(p, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Read(p)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got error %v, want one naming %s and containing %q", err, p, tc.msg)
			}
		})
	}
}

func TestHeaderVariants(t *testing.T) {
	data := make([]byte, 12)
	for _, dict := range []string{
		`{"descr": "<f4", "fortran_order": False, "shape": (3,)}`,
		`{ 'shape' : ( 3 , ) , 'descr':'<f4','fortran_order':False , }`,
		`{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3)}`, // same layout in both orders
		`{'descr': '<f4', 'fortran_order': False, 'shape': (3L,)}`, // Python 2 long
	} {
		a, err := Decode(bytes.NewReader(npyBytes(dict, data)))
		if err != nil {
			t.Errorf("%s: %v", dict, err)
			continue
		}
		if a.Len() != 3 {
			t.Errorf("%s: got %d elements, want 3", dict, a.Len())
		}
	}
}

// TestDecodeStream checks that Decode reads nothing past the array and
// bounds memory by what arrives when the input size is unknown.
func TestDecodeStream(t *testing.T) {
	a, _ := New([]int{2}, []int64{7, 8})
	var buf bytes.Buffer
	Encode(&buf, a)
	Encode(&buf, a)
	r := onlyReader{&buf} // hides Len: size unknown
	for i := 0; i < 2; i++ {
		b, err := Decode(r)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("array %d: got %+v, %v, want %+v", i, b, err, a)
		}
	}
	huge := npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", make([]byte, 64))
	_, err := Decode(onlyReader{bytes.NewReader(huge)})
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("got %v, want unexpected EOF", err)
	}
}

func TestSharedReferenceArrays(t *testing.T) {
	dir := testenv.TestModelsDir(t)
	for _, tc := range []struct {
		file  string
		dtype string
		shape []int
	}{
		{"llama8.hidden.npy", Float32, []int{9, 2, 128, 128}},
		{"llama8.cka.npy", Float64, []int{8, 8}},
		{"gpt2_6.logits.npy", Float32, []int{2, 128, 256}},
		{"tokens/calib_train_16x128.npy", Int64, []int{16, 128}},
	} {
		a, err := Read(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if a.DType != tc.dtype || !reflect.DeepEqual(a.Shape, tc.shape) {
			t.Errorf("%s: got %s %v, want %s %v", tc.file, a.DType, a.Shape, tc.dtype, tc.shape)
		}
	}
}

// onlyReader hides every method of its reader but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestFromRows(t *testing.T) {
	a, err := FromRows([][]int64{{1, 2, 3}, {4, 5, 6}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Int64s(); !reflect.DeepEqual(a.Shape, []int{2, 3}) || a.DType != "<i8" || !reflect.DeepEqual(got, []int64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("FromRows: shape %v, dtype %s, data %v", a.Shape, a.DType, got)
	}
	for _, rows := range [][][]int64{nil, {{1, 2}, {3}}} {
		if _, err := FromRows(rows); err == nil {
			t.Errorf("FromRows(%v) succeeded, want an error", rows)
		}
	}
}
