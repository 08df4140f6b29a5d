// The Tokens cases: token files that are empty, binary, out of range or lie
// about their size.

package hostile

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// TokenCases returns the Tokens cases, for a model with a vocabulary of Vocab.
func TokenCases() []Case {
	text := func(name, body string) func(dir string) (string, error) {
		return func(dir string) (string, error) {
			p := filepath.Join(dir, name)
			return p, os.WriteFile(p, []byte(body), 0o644)
		}
	}
	npyFile := func(name string, b []byte) func(dir string) (string, error) {
		return func(dir string) (string, error) {
			p := filepath.Join(dir, name)
			return p, os.WriteFile(p, b, 0o644)
		}
	}
	row := func(n, start int) string {
		s := ""
		for i := range n {
			if i > 0 {
				s += " "
			}
			s += fmt.Sprint((start + 7*i) % Vocab)
		}
		return s
	}
	good := row(16, 1)
	i64 := func(vals ...int64) []byte {
		b := make([]byte, 8*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
		return b
	}
	f32 := func(vals ...float32) []byte {
		b := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	seq := func(n int) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(3 * i % Vocab)
		}
		return v
	}
	outOfRange := seq(16)
	outOfRange[9] = Vocab
	return []Case{
		{Name: "ids-out-of-range", Stage: Tokens, Names: []string{"256"},
			Doc:   "a text token file with id 256 (the vocabulary is 0..255) in row 1",
			Write: text("oor.txt", good+"\n"+row(5, 2)+" 256 "+row(10, 3)+"\n")},
		{Name: "ids-negative", Stage: Tokens, Names: []string{"-1"},
			Doc:   "a text token file with id -1",
			Write: text("neg.txt", good+"\n"+row(3, 2)+" -1 "+row(12, 3)+"\n")},
		{Name: "ids-huge", Stage: Tokens, Names: []string{"99999999999999999999"},
			Doc:   "a text token file with an id past int64",
			Write: text("huge.txt", row(3, 2)+" 99999999999999999999 "+row(12, 3)+"\n")},
		{Name: "ids-not-numbers", Stage: Tokens, Names: []string{"hello"},
			Doc:   "a text token file with a word among the ids",
			Write: text("words.txt", row(3, 2)+" hello "+row(12, 3)+"\n")},
		{Name: "ragged", Stage: Tokens, Names: []string{"ragged.txt"},
			Doc:   "a text token file whose rows have 16 and 12 ids",
			Write: text("ragged.txt", good+"\n"+row(12, 5)+"\n")},
		{Name: "npy-out-of-range", Stage: Tokens, Names: []string{"256"},
			Doc:   "an int64 .npy [1 16] holding id 256",
			Write: npyFile("oor.npy", npyBytes("<i8", []int{1, 16}, i64(outOfRange...)))},
		{Name: "npy-float", Stage: Tokens, Names: []string{"<f4"},
			Doc:   "a float32 .npy [1 4]: token ids must be integers",
			Write: npyFile("float.npy", npyBytes("<f4", []int{1, 4}, f32(1, 2, 3, 4)))},
		{Name: "npy-3d", Stage: Tokens, Names: []string{"[2 2 4]"},
			Doc:   "an int64 .npy of shape [2 2 4]",
			Write: npyFile("3d.npy", npyBytes("<i8", []int{2, 2, 4}, i64(seq(16)...)))},
		{Name: "npy-terabyte", Stage: Tokens, Names: []string{"terabyte.npy"}, Claims: 8 << 40,
			Doc:   "an int64 .npy whose header claims [2^20 2^20] (8 TiB) over 64 bytes of data",
			Write: npyFile("terabyte.npy", npyBytes("<i8", []int{1 << 20, 1 << 20}, i64(seq(8)...)))},
		{Name: "npy-truncated", Stage: Tokens, Names: []string{"short.npy"},
			Doc:   "an int64 .npy [1 16] cut after 5 ids",
			Write: npyFile("short.npy", npyBytes("<i8", []int{1, 16}, i64(seq(5)...)))},
		{Name: "tokens-empty", Stage: Tokens, Names: []string{"empty.txt"},
			Doc:   "an empty token file",
			Write: text("empty.txt", "")},
		{Name: "tokens-binary", Stage: Tokens, Names: []string{"junk.bin"},
			Doc:   "binary junk with no extension",
			Write: npyFile("junk.bin", []byte{0, 1, 2, 0xff, 0xfe, 0x93, 'N', 'U', 'M', 0, 0, 7})},
	}
}

// npyBytes writes a .npy version 1.0 file of dtype and shape holding data
// (which need not match the shape: hostile files lie).
func npyBytes(dtype string, shape []int, data []byte) []byte {
	s := "("
	for i, d := range shape {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(d)
	}
	if len(shape) == 1 {
		s += ","
	}
	s += ")"
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", dtype, s)
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	return append(b, data...)
}
