package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecode checks that no input makes Decode panic or allocate beyond what
// the input holds, and that whatever it accepts survives an Encode/Decode
// round trip unchanged.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.npy"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add(npyBytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2, 0, 5), }", nil))
	f.Add(npyBytes("{'descr': '<i4', 'fortran_order': True, 'shape': (1, 1, 2), }", make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid array: %v", err)
		}
		if int64(a.Len())*int64(itemSize(a.DType)) > int64(len(data)) {
			t.Fatalf("decoded %d elements of %s from %d bytes", a.Len(), a.DType, len(data))
		}
		var buf bytes.Buffer
		if err := Encode(&buf, a); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		enc := append([]byte{}, buf.Bytes()...)
		b, err := Decode(&buf)
		if err != nil {
			t.Fatalf("Decode of Encode output: %v", err)
		}
		if a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) {
			t.Fatalf("round trip: got %s %v, want %s %v", b.DType, b.Shape, a.DType, a.Shape)
		}
		var again bytes.Buffer
		Encode(&again, b)
		if !bytes.Equal(enc, again.Bytes()) { // bytes, not values: NaN != NaN
			t.Fatalf("round trip changed the encoding:\n%q\n%q", enc, again.Bytes())
		}
	})
}
