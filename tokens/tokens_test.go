package tokens

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
)

func npyOf(t *testing.T, shape []int, data any) []byte {
	t.Helper()
	a, err := npy.New(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := npy.Encode(&b, a); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParse(t *testing.T) {
	rows := [][]int64{{1, 2, 3}, {4, 5, 6}}
	for _, tc := range []struct {
		name   string
		input  []byte
		format Format
		want   [][]int64
	}{
		{"text", []byte("1 2 3\n4 5 6\n"), Text, rows},
		{"text no final newline", []byte("1 2 3\n4 5 6"), Text, rows},
		{"text tabs, CRLF, blank lines, BOM", []byte("\xef\xbb\xbf1\t2  3\r\n\n  \n4 5 6\r\n"), Text, rows},
		{"text auto", []byte("1 2 3\n4 5 6\n"), Auto, rows},
		{"npy int64", npyOf(t, []int{2, 3}, []int64{1, 2, 3, 4, 5, 6}), NPY, rows},
		{"npy int32", npyOf(t, []int{2, 3}, []int32{1, 2, 3, 4, 5, 6}), NPY, rows},
		{"npy auto", npyOf(t, []int{2, 3}, []int64{1, 2, 3, 4, 5, 6}), Auto, rows},
		{"npy 1-D", npyOf(t, []int{3}, []int64{1, 2, 3}), NPY, rows[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(bytes.NewReader(tc.input), "in", tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Rows, tc.want) || s.Name != "in" {
				t.Fatalf("got %q %v, want %q %v", s.Name, s.Rows, "in", tc.want)
			}
			if got, want := s.SeqLen(), len(tc.want[0]); got != want {
				t.Errorf("SeqLen = %d, want %d", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		input  []byte
		format Format
		msg    string
	}{
		{"ragged", []byte("1 2 3\n\n4 5\n"), Text, "f:3: line has 2 ids, line 1 has 3: all sequences must have the same length"},
		{"bad int", []byte("1 2 3\n4 x5 6\n"), Text, `f:2: column 1: "x5" is not a token id`},
		{"float in text", []byte("1 2.0 3\n"), Text, `f:1: column 1: "2.0" is not a token id`},
		{"overflow", []byte("99999999999999999999\n"), Text, `f:1: column 0: "99999999999999999999" is not a token id`},
		{"empty text", []byte(""), Text, "f: no token ids (empty file)"},
		{"blank text", []byte("\n \n\t\n"), Text, "f: no token ids (empty file)"},
		{"npy as text", npyOf(t, []int{1}, []int64{1}), Text, "f: this is a .npy file, not text"},
		{"float npy", npyOf(t, []int{1, 2}, []float32{1, 2}), NPY, "f: dtype <f4, want int64 (<i8) or int32 (<i4): token ids must be integers"},
		{"uint8 npy", npyOf(t, []int{1, 2}, []uint8{1, 2}), NPY, "f: dtype |u1, want int64"},
		{"3-D npy", npyOf(t, []int{1, 1, 2}, []int64{1, 2}), NPY, "f: shape [1 1 2], want [N, T]"},
		{"empty npy", npyOf(t, []int{0, 4}, []int64{}), NPY, "f: no token ids (shape [0 4])"},
		{"scalar npy", npyOf(t, []int{}, []int64{1}), NPY, "f: shape [], want [N, T]"},
		{"text as npy", []byte("1 2 3\n"), NPY, "f: npy: not a .npy file"},
		{"truncated npy", npyOf(t, []int{2, 2}, []int64{1, 2, 3, 4})[:150], NPY, "f: npy: data (shape [2 2] of <i8, 32 bytes): unexpected EOF"},
		{"trailing npy", append(npyOf(t, []int{2}, []int64{1, 2}), 0), NPY, "f: bytes after the array data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.input), "f", tc.format)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got error %v, want one containing %q", err, tc.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	s := &Set{Name: "calib.txt", Rows: [][]int64{{0, 255, 3}, {4, 5, 6}}}
	if err := s.Validate(256); err != nil {
		t.Fatalf("Validate(256): %v", err)
	}
	for _, tc := range []struct {
		rows  [][]int64
		vocab int
		msg   string
	}{
		{[][]int64{{0, 1}, {2, 256}}, 256, "calib.txt: row 1, column 1: token id 256 is out of range for a vocabulary of 256"},
		{[][]int64{{0, -1}}, 256, "calib.txt: row 0, column 1: token id -1 is out of range"},
		{[][]int64{{5}}, 0, "token id 5 is out of range for a vocabulary of 0"},
	} {
		err := (&Set{Name: "calib.txt", Rows: tc.rows}).Validate(tc.vocab)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Validate(%d) of %v: got %v, want an error containing %q", tc.vocab, tc.rows, err, tc.msg)
		}
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := [][]int64{{7, 8}}
	for _, p := range []string{
		write("a.txt", []byte("7 8\n")),
		write("a.npy", npyOf(t, []int{1, 2}, []int64{7, 8})),
		write("a.ids", npyOf(t, []int{1, 2}, []int32{7, 8})), // sniffed
		write("b.ids", []byte("7 8")),                        // sniffed
	} {
		s, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Rows, want) || s.Name != p {
			t.Errorf("Read(%s) = %q %v, want %q %v", p, s.Name, s.Rows, p, want)
		}
	}
	_, err := Read(filepath.Join(dir, "missing.txt"))
	if err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("Read of a missing file: got %v, want an error naming it", err)
	}
	bad := write("bad.npy", npyOf(t, []int{1, 2}, []float64{7, 8}))
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), bad+": dtype <f8") {
		t.Errorf("Read(%s): got %v, want an error naming the file and the dtype", bad, err)
	}
}

// TestSharedTokenSets checks that the .npy and .txt forms of every shared
// token set agree.
func TestSharedTokenSets(t *testing.T) {
	dir := filepath.Join(testenv.TestModelsDir(t), "tokens")
	for _, tc := range []struct {
		name string
		n, t int
	}{
		{"calib_train_16x128", 16, 128},
		{"eval_go_64x256", 64, 256},
		{"eval_prose_64x256", 64, 256},
	} {
		a, err := Read(filepath.Join(dir, tc.name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Read(filepath.Join(dir, tc.name+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		if a.Len() != tc.n || a.SeqLen() != tc.t {
			t.Errorf("%s.npy: got %d x %d, want %d x %d", tc.name, a.Len(), a.SeqLen(), tc.n, tc.t)
		}
		if !reflect.DeepEqual(a.Rows, b.Rows) {
			t.Errorf("%s: .npy and .txt differ", tc.name)
		}
		if err := a.Validate(256); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
