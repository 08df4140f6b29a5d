package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"unicode/utf8"
)

const magic = "\x93NUMPY"

// maxHeaderLen bounds the header a reader accepts. NumPy itself refuses
// headers over 10000 bytes by default; the headers this package reads are
// under 200.
const maxHeaderLen = 1 << 20

// chunkBytes is how much array data is read at a time.
const chunkBytes = 1 << 16

// Read reads the .npy file at path. The file must hold exactly one array:
// data missing or bytes after the data are errors.
func Read(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	br := bufio.NewReaderSize(f, chunkBytes)
	a, used, err := decode(br, size)
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	if size >= 0 && used < size {
		return nil, fmt.Errorf("npy: %s: %d bytes after the array data (file is %d bytes, the array ends at %d)", path, size-used, size, used)
	}
	return a, nil
}

// Decode reads one .npy array from r and reads nothing past its data. When r
// tells how many bytes it holds (a Len() int method, as *bytes.Reader has),
// an array larger than that is refused before any allocation; otherwise
// memory grows only as data actually arrives.
func Decode(r io.Reader) (*Array, error) {
	size := int64(-1)
	if l, ok := r.(interface{ Len() int }); ok {
		size = int64(l.Len())
	}
	a, _, err := decode(r, size)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	return a, nil
}

// decode reads one array from r, which holds size bytes (-1: unknown), and
// returns it with the number of bytes consumed.
func decode(r io.Reader, size int64) (*Array, int64, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, fmt.Errorf("not a .npy file: shorter than the 8-byte preamble")
		}
		return nil, 0, err
	}
	if string(pre[:6]) != magic {
		return nil, 0, fmt.Errorf("not a .npy file: bad magic %q", pre[:6])
	}
	major, minor := pre[6], pre[7]
	var hlen int64
	used := int64(8)
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, 0, fmt.Errorf("header length: %w", unexpected(err))
		}
		hlen = int64(binary.LittleEndian.Uint16(b[:]))
		used += 2
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, 0, fmt.Errorf("header length: %w", unexpected(err))
		}
		hlen = int64(binary.LittleEndian.Uint32(b[:]))
		used += 4
	default:
		return nil, 0, fmt.Errorf("unsupported format version %d.%d (supported: 1.0, 2.0, 3.0)", major, minor)
	}
	if minor != 0 {
		return nil, 0, fmt.Errorf("unsupported format version %d.%d (supported: 1.0, 2.0, 3.0)", major, minor)
	}
	if hlen > maxHeaderLen {
		return nil, 0, fmt.Errorf("header of %d bytes is over the %d-byte limit", hlen, maxHeaderLen)
	}
	if size >= 0 && used+hlen > size {
		return nil, 0, fmt.Errorf("header of %d bytes runs past the end of the input (%d bytes)", hlen, size)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, 0, fmt.Errorf("header: %w", unexpected(err))
	}
	used += hlen
	if major < 3 {
		for _, c := range hb {
			if c >= 0x80 {
				// Latin-1 in versions 1 and 2; a supported header is ASCII.
				return nil, 0, fmt.Errorf("header has a non-ASCII byte 0x%02x", c)
			}
		}
	} else if !utf8.Valid(hb) {
		return nil, 0, fmt.Errorf("header is not valid UTF-8")
	}
	h, err := parseHeader(string(hb))
	if err != nil {
		return nil, 0, fmt.Errorf("header %q: %w", clip(hb), err)
	}
	dtype, err := canonicalDType(h.descr)
	if err != nil {
		return nil, 0, err
	}
	count, err := elements(h.shape)
	if err != nil {
		return nil, 0, err
	}
	if h.fortran && !sameInBothOrders(h.shape) {
		return nil, 0, fmt.Errorf("Fortran-order arrays are not supported (shape %v): save a C-order array, e.g. np.save(path, np.ascontiguousarray(a))", h.shape)
	}
	item := int64(itemSize(dtype))
	need := int64(count) * item // count <= MaxInt/8: no overflow
	if size >= 0 && need > size-used {
		return nil, 0, fmt.Errorf("data truncated: shape %v of %s needs %d bytes, the input has %d after the header", h.shape, dtype, need, size-used)
	}
	data, err := readData(r, dtype, int(count), size >= 0)
	if err != nil {
		return nil, 0, fmt.Errorf("data (shape %v of %s, %d bytes): %w", h.shape, dtype, need, unexpected(err))
	}
	return &Array{Shape: h.shape, DType: dtype, Data: data}, used + need, nil
}

// sameInBothOrders reports whether C and Fortran order lay out an array of
// this shape identically: at most one dimension is larger than 1.
func sameInBothOrders(shape []int) bool {
	big := 0
	for _, d := range shape {
		if d == 0 {
			return true
		}
		if d > 1 {
			big++
		}
	}
	return big <= 1
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func clip(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// readData reads count elements of dtype. With trusted set, count has been
// checked against the input size and is allocated at once; otherwise the
// slice grows as data arrives.
func readData(r io.Reader, dtype string, count int, trusted bool) (any, error) {
	switch dtype {
	case Float32:
		return readElems(r, count, 4, trusted, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case Float64:
		return readElems(r, count, 8, trusted, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case Int64:
		return readElems(r, count, 8, trusted, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case Int32:
		return readElems(r, count, 4, trusted, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case Uint8:
		return readElems(r, count, 1, trusted, func(b []byte) uint8 { return b[0] })
	case Bool:
		return readElems(r, count, 1, trusted, func(b []byte) bool { return b[0] != 0 })
	}
	return nil, fmt.Errorf("unsupported dtype %q", dtype)
}

func readElems[T any](r io.Reader, count, item int, trusted bool, get func([]byte) T) ([]T, error) {
	capacity := count
	if !trusted {
		capacity = min(count, chunkBytes/item)
	}
	out := make([]T, 0, capacity)
	buf := make([]byte, min(count*item, chunkBytes))
	for left := count; left > 0; {
		n := min(left, len(buf)/item)
		b := buf[:n*item]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		for i := 0; i < n; i++ {
			out = append(out, get(b[i*item:]))
		}
		left -= n
	}
	return out, nil
}
