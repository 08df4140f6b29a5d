package tokens

import (
	"bytes"
	"testing"

	"github.com/onnxslm/onnxslm/npy"
)

// check asserts the invariants of a successfully parsed set.
func check(t *testing.T, s *Set, err error) {
	if err != nil {
		return
	}
	if len(s.Rows) == 0 || len(s.Rows[0]) == 0 {
		t.Fatalf("accepted an empty set: %d rows", len(s.Rows))
	}
	for i, r := range s.Rows {
		if len(r) != len(s.Rows[0]) {
			t.Fatalf("accepted ragged rows: row %d has %d ids, row 0 has %d", i, len(r), len(s.Rows[0]))
		}
	}
	_ = s.Validate(256)
}

func FuzzParseText(f *testing.F) {
	f.Add([]byte("1 2 3\n4 5 6\n"))
	f.Add([]byte("\xef\xbb\xbf1\t2\r\n\n3 4"))
	f.Add([]byte("1 2\n3\n"))
	f.Add([]byte("-1 99999999999999999999 0x10\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data), "fuzz.txt", Text)
		check(t, s, err)
	})
}

func FuzzParseNPY(f *testing.F) {
	for _, a := range []struct {
		shape []int
		data  any
	}{
		{[]int{2, 3}, []int64{1, 2, 3, 4, 5, 6}},
		{[]int{3, 1}, []int32{1, -2, 300}},
		{[]int{4}, []int64{0, 1, 2, 255}},
		{[]int{0, 2}, []int64{}},
		{[]int{1, 2}, []float32{1, 2}},
	} {
		arr, err := npy.New(a.shape, a.data)
		if err != nil {
			f.Fatal(err)
		}
		var b bytes.Buffer
		if err := npy.Encode(&b, arr); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data), "fuzz.npy", NPY)
		check(t, s, err)
		s, err = Parse(bytes.NewReader(data), "fuzz", Auto)
		check(t, s, err)
	})
}
