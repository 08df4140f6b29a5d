package onnx

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// streamReadMin: model files at least this large are decoded by
// readModelStream, which holds at most one initializer's encoding at a time
// besides the decoded model, instead of the whole file and the whole model.
const streamReadMin = 64 << 20

// Field numbers the streaming reader splits out.
const (
	fieldModelGraph       = 7 // ModelProto.graph
	fieldGraphInitializer = 5 // GraphProto.initializer
)

var errGroup = errors.New("group wire type")

// readModelFile decodes the ModelProto in the file at path.
func readModelFile(path string) (*pb.ModelProto, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() >= streamReadMin {
		m, err := readModelStream(bufio.NewReaderSize(f, 1<<20), fi.Size())
		if !errors.Is(err, errGroup) {
			return m, err
		}
		// Groups (never in ONNX, possible in unknown fields): decode it whole.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read: %w", unwrapPathError(err))
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, notONNX(err)
	}
	return m, nil
}

func notONNX(err error) error {
	return fmt.Errorf("not an ONNX model, or truncated: %w", err)
}

// wireReader reads protobuf wire format from r, counting what is left of the
// enclosing message.
type wireReader struct {
	r    *bufio.Reader
	left int64
}

func (w *wireReader) byte() (byte, error) {
	if w.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	c, err := w.r.ReadByte()
	if err != nil {
		return 0, io.ErrUnexpectedEOF
	}
	w.left--
	return c, nil
}

// varint reads a varint, appending its bytes to raw.
func (w *wireReader) varint(raw []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		c, err := w.byte()
		if err != nil {
			return 0, raw, err
		}
		raw = append(raw, c)
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, raw, nil
		}
	}
	return 0, raw, errors.New("varint overflow")
}

// read appends n bytes to raw.
func (w *wireReader) read(raw []byte, n int64) ([]byte, error) {
	if n > w.left {
		return raw, io.ErrUnexpectedEOF
	}
	start := len(raw)
	raw = append(raw, make([]byte, n)...)
	if _, err := io.ReadFull(w.r, raw[start:]); err != nil {
		return raw, io.ErrUnexpectedEOF
	}
	w.left -= n
	return raw, nil
}

// field reads one field's tag. For the field split out (num, BytesType) it
// returns split with the length read; for any other field it appends the
// whole field (tag and value) to rest.
func (w *wireReader) field(rest []byte, splitNum protowire.Number) (split bool, length int64, _ []byte, err error) {
	mark := len(rest)
	tag, rest, err := w.varint(rest)
	if err != nil {
		return false, 0, rest, err
	}
	num, typ := protowire.DecodeTag(tag)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return false, 0, rest, errors.New("invalid field number")
	}
	switch typ {
	case protowire.VarintType:
		_, rest, err = w.varint(rest)
	case protowire.Fixed32Type:
		rest, err = w.read(rest, 4)
	case protowire.Fixed64Type:
		rest, err = w.read(rest, 8)
	case protowire.BytesType:
		var n uint64
		n, rest, err = w.varint(rest)
		if err != nil {
			return false, 0, rest, err
		}
		if n > uint64(w.left) {
			return false, 0, rest, io.ErrUnexpectedEOF
		}
		if num == splitNum {
			return true, int64(n), rest[:mark], nil
		}
		rest, err = w.read(rest, int64(n))
	case protowire.StartGroupType, protowire.EndGroupType:
		return false, 0, rest, errGroup
	default:
		return false, 0, rest, errors.New("invalid wire type")
	}
	return false, 0, rest, err
}

// fields reads the fields of the message that fills w.left, appending each to
// *rest (see field) except those of number num, whose length it passes to f,
// which reads them. It returns the first error, f's as f returns it.
func (w *wireReader) fields(rest *[]byte, num protowire.Number, f func(n int64) error) error {
	for w.left > 0 {
		split, n, r, err := w.field(*rest, num)
		*rest = r
		if err != nil {
			return wireErr(err)
		}
		if !split {
			continue
		}
		if err := f(n); err != nil {
			return err
		}
	}
	return nil
}

// readModelStream decodes a ModelProto of size bytes from r like
// proto.Unmarshal, but reads each initializer of the main graph into a reused
// buffer and decodes it on its own, so that peak memory is the decoded model
// plus the largest initializer, not twice the file.
func readModelStream(r *bufio.Reader, size int64) (*pb.ModelProto, error) {
	w := &wireReader{r: r, left: size}
	var modelRest, graphRest, buf []byte
	var inits []*pb.TensorProto
	hasGraph := false
	err := w.fields(&modelRest, fieldModelGraph, func(n int64) error {
		hasGraph = true
		outer := w.left - n
		w.left = n
		err := w.fields(&graphRest, fieldGraphInitializer, func(n int64) error {
			var err error
			if buf, err = w.read(buf[:0], n); err != nil {
				return wireErr(err)
			}
			t := &pb.TensorProto{}
			if err := proto.Unmarshal(buf, t); err != nil {
				return notONNX(err)
			}
			inits = append(inits, t)
			return nil
		})
		w.left = outer
		return err
	})
	if err != nil {
		return nil, err
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(modelRest, m); err != nil {
		return nil, notONNX(err)
	}
	if hasGraph {
		m.Graph = &pb.GraphProto{}
		if err := proto.Unmarshal(graphRest, m.Graph); err != nil {
			return nil, notONNX(err)
		}
		m.Graph.Initializer = inits
	}
	return m, nil
}

func wireErr(err error) error {
	if errors.Is(err, errGroup) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return notONNX(errors.New("unexpected end of file"))
	}
	return notONNX(err)
}
