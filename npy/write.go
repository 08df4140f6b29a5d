package npy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// headerAlign is the alignment of the data start NumPy uses since 1.x (64).
const headerAlign = 64

// Encode writes a in .npy format to w: version 1.0 unless the header needs
// more than 65535 bytes (then 2.0), C order, header padded so that the data
// starts at a multiple of 64 bytes, exactly as numpy.save does.
func Encode(w io.Writer, a *Array) error {
	if err := a.Validate(); err != nil {
		return err
	}
	dict := formatHeader(a.DType, a.Shape)
	// preamble (magic, version, length) + dict + padding + '\n'
	pre := 10
	total := pre + len(dict) + 1
	if total+(headerAlign-total%headerAlign)%headerAlign-pre > math.MaxUint16 {
		pre = 12
		total = pre + len(dict) + 1
	}
	pad := (headerAlign - total%headerAlign) % headerAlign
	hlen := len(dict) + pad + 1
	bw := bufio.NewWriterSize(w, chunkBytes)
	bw.WriteString(magic)
	if pre == 10 {
		bw.Write([]byte{1, 0})
		binary.Write(bw, binary.LittleEndian, uint16(hlen))
	} else {
		bw.Write([]byte{2, 0})
		binary.Write(bw, binary.LittleEndian, uint32(hlen))
	}
	bw.WriteString(dict)
	for i := 0; i < pad; i++ {
		bw.WriteByte(' ')
	}
	bw.WriteByte('\n')
	var b [8]byte
	switch d := a.Data.(type) {
	case []float32:
		for _, v := range d {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			bw.Write(b[:4])
		}
	case []float64:
		for _, v := range d {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
			bw.Write(b[:8])
		}
	case []int64:
		for _, v := range d {
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			bw.Write(b[:8])
		}
	case []int32:
		for _, v := range d {
			binary.LittleEndian.PutUint32(b[:], uint32(v))
			bw.Write(b[:4])
		}
	case []uint8:
		bw.Write(d)
	case []bool:
		for _, v := range d {
			bw.WriteByte(byte(b2i(v)))
		}
	}
	return bw.Flush()
}

// Write writes a to path atomically: to a temporary file in the same folder,
// synced, then renamed over path. On error path is left as it was.
func Write(path string, a *Array) (err error) {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = Encode(f, a); err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("npy: write %s: %w", path, err)
	}
	return nil
}
