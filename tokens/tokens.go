// Package tokens reads token-id sets (calibration and evaluation sequences)
// from .npy files (int64 or int32, [N, T]) and text files (one sequence per
// line, space-separated ids).
package tokens

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/onnxslm/onnxslm/npy"
)

// Format is the encoding of a token file.
type Format int

const (
	// Auto picks NPY when the input starts with the .npy magic, else Text.
	Auto Format = iota
	// NPY is a NumPy .npy array of int64 or int32, shape [N, T] (or [T]: one
	// sequence).
	NPY
	// Text is one sequence per line, ids separated by spaces or tabs. Blank
	// lines are skipped.
	Text
)

func (f Format) String() string {
	switch f {
	case Auto:
		return "auto"
	case NPY:
		return "npy"
	case Text:
		return "text"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// FormatOf returns the format a file name's extension says: NPY for .npy,
// Text for .txt, Auto otherwise.
func FormatOf(path string) Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		return NPY
	case ".txt":
		return Text
	}
	return Auto
}

// Set is a set of token sequences, all of the same length.
type Set struct {
	// Name names the source in error messages (usually the file path).
	Name string
	Rows [][]int64
}

// Len returns the number of sequences.
func (s *Set) Len() int { return len(s.Rows) }

// SeqLen returns the length of every sequence (0 for an empty set).
func (s *Set) SeqLen() int {
	if len(s.Rows) == 0 {
		return 0
	}
	return len(s.Rows[0])
}

// Validate checks every id against a vocabulary of vocab tokens: an id that
// is negative or >= vocab is an error naming the set, the row, the column and
// the id (rows and columns count from 0).
func (s *Set) Validate(vocab int) error {
	for r, row := range s.Rows {
		for c, id := range row {
			if id < 0 || id >= int64(vocab) {
				return fmt.Errorf("%s: row %d, column %d: token id %d is out of range for a vocabulary of %d (want 0 <= id < %d)", s.Name, r, c, id, vocab, vocab)
			}
		}
	}
	return nil
}

// Read reads the token file at path; its extension (.npy, .txt) picks the
// format, and other names are sniffed by content.
func Read(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer f.Close()
	return Parse(f, path, FormatOf(path))
}

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// maxLine bounds one text line (64 MiB: about 10 million ids).
const maxLine = 64 << 20

// Parse reads a token set in the given format from r; name names it in
// errors and becomes Set.Name.
func Parse(r io.Reader, name string, format Format) (*Set, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if format == Auto {
		format = Text
		if b, _ := br.Peek(len(npyMagic)); string(b) == npyMagic {
			format = NPY
		}
	}
	var s *Set
	var err error
	switch format {
	case NPY:
		s, err = parseNPY(br, name)
	case Text:
		s, err = parseText(br, name)
	default:
		return nil, fmt.Errorf("tokens: %s: unknown format %v", name, format)
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return s, nil
}

func parseNPY(r io.Reader, name string) (*Set, error) {
	a, err := npy.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1)); err == nil {
		return nil, fmt.Errorf("%s: bytes after the array data", name)
	}
	if a.DType != npy.Int64 && a.DType != npy.Int32 {
		hint := ""
		if a.DType == npy.Float32 || a.DType == npy.Float64 {
			hint = ": token ids must be integers (np.save(path, ids.astype(np.int64)))"
		}
		return nil, fmt.Errorf("%s: dtype %s, want int64 (<i8) or int32 (<i4)%s", name, a.DType, hint)
	}
	var n, t int
	switch len(a.Shape) {
	case 1:
		n, t = 1, a.Shape[0]
	case 2:
		n, t = a.Shape[0], a.Shape[1]
	default:
		return nil, fmt.Errorf("%s: shape %v, want [N, T] (N sequences of T tokens) or [T]", name, a.Shape)
	}
	if n == 0 || t == 0 {
		return nil, fmt.Errorf("%s: no token ids (shape %v)", name, a.Shape)
	}
	ids, err := a.Int64s()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Set{Name: name, Rows: make([][]int64, n)}
	for i := range s.Rows {
		s.Rows[i] = ids[i*t : (i+1)*t : (i+1)*t]
	}
	return s, nil
}

func parseText(r *bufio.Reader, name string) (*Set, error) {
	if b, _ := r.Peek(len(npyMagic)); string(b) == npyMagic {
		return nil, fmt.Errorf("%s: this is a .npy file, not text (name it .npy)", name)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), maxLine)
	s := &Set{Name: name}
	firstLine := 0
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
		}
		fields := strings.Fields(string(text))
		if len(fields) == 0 {
			continue
		}
		row := make([]int64, len(fields))
		for c, f := range fields {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: column %d: %q is not a token id (want a decimal integer)", name, line, c, clip(f))
			}
			row[c] = id
		}
		if len(s.Rows) == 0 {
			firstLine = line
		} else if want := len(s.Rows[0]); len(row) != want {
			return nil, fmt.Errorf("%s:%d: line has %d ids, line %d has %d: all sequences must have the same length", name, line, len(row), firstLine, want)
		}
		s.Rows = append(s.Rows, row)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s: a line is longer than %d bytes", name, maxLine)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(s.Rows) == 0 {
		return nil, fmt.Errorf("%s: no token ids (empty file)", name)
	}
	return s, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
