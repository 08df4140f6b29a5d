package modelgen

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// maxStreamParams bounds the models Stream writes (about 1.1 T parameters):
// only one tensor is in memory at a time, so the limit is the disk's.
const maxStreamParams = 1 << 40

// Stream writes the model described by cfg to path, with every initializer of
// at least onnx.DefaultMinExternalBytes bytes in the external-data file
// path+".data" beside it, generating and writing one tensor at a time: memory
// is that of the largest tensor (its float32 values and its stored bytes)
// plus the graph, whatever the model's size. Build caps
// models at about 67M parameters; Stream at about 1.1 T.
//
// The files are byte-identical to what onnx.Save writes for Build's model
// with onnx.ExternalAlways (same layout: tensors in initializer order, each at
// a 64-byte aligned offset; a test checks it). They appear atomically: both
// are written to temporary files in the output folder, synced, and renamed,
// the data file first; on an error the temporaries are removed.
func Stream(cfg Config, path string) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	dataName := base + ".data"
	dataTmp, err := os.CreateTemp(dir, "."+dataName+".tmp*")
	if err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	var modelTmp *os.File
	defer func() {
		if err != nil {
			dataTmp.Close()
			os.Remove(dataTmp.Name())
			if modelTmp != nil {
				modelTmp.Close()
				os.Remove(modelTmp.Name())
			}
		}
	}()
	w := &extWriter{bw: bufio.NewWriterSize(dataTmp, 1<<20), location: dataName}
	m, err := build(cfg, maxStreamParams, w.put)
	if err != nil {
		return err
	}
	if w.err != nil {
		return fmt.Errorf("modelgen: write %s: %w", dataName, w.err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("modelgen: write %s: %w", dataName, err)
	}
	// CreateTemp makes 0600 files; onnx.Save's are 0644 (before umask).
	if err := dataTmp.Chmod(0o644); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	if err := dataTmp.Sync(); err != nil {
		return fmt.Errorf("modelgen: sync %s: %w", dataName, err)
	}
	if err := dataTmp.Close(); err != nil {
		return fmt.Errorf("modelgen: close %s: %w", dataName, err)
	}
	b, err := Marshal(m)
	if err != nil {
		return err
	}
	if modelTmp, err = os.CreateTemp(dir, "."+base+".tmp*"); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	if err := modelTmp.Chmod(0o644); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	if _, err := modelTmp.Write(b); err != nil {
		return fmt.Errorf("modelgen: write %s: %w", base, err)
	}
	if err := modelTmp.Sync(); err != nil {
		return fmt.Errorf("modelgen: sync %s: %w", base, err)
	}
	if err := modelTmp.Close(); err != nil {
		return fmt.Errorf("modelgen: close %s: %w", base, err)
	}
	if w.off == 0 {
		// No tensor was large enough: like onnx.Save, no data file.
		os.Remove(dataTmp.Name())
	} else if err := os.Rename(dataTmp.Name(), filepath.Join(dir, dataName)); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	if err := os.Rename(modelTmp.Name(), path); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	return nil
}

// extWriter appends initializers to an external-data file as the builder
// makes them and hands back references to them. The first write error sticks:
// later tensors are kept inline and Stream reports the error.
type extWriter struct {
	bw       *bufio.Writer
	location string
	off      int64
	err      error
}

// dataAlign matches onnx.Save's alignment of tensors in the data file.
const dataAlign = 64

func (w *extWriter) put(t *pb.TensorProto) *pb.TensorProto {
	if w.err != nil || len(t.RawData) < onnx.DefaultMinExternalBytes {
		return t
	}
	if r := w.off % dataAlign; r != 0 {
		var pad [dataAlign]byte
		if _, err := w.bw.Write(pad[:dataAlign-r]); err != nil {
			w.err = err
			return t
		}
		w.off += dataAlign - r
	}
	if _, err := w.bw.Write(t.RawData); err != nil {
		w.err = err
		return t
	}
	ref := &pb.TensorProto{
		Name: t.Name, Dims: t.Dims, DataType: t.DataType,
		DataLocation: pb.TensorProto_EXTERNAL.Enum(),
		ExternalData: []*pb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(w.location)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(w.off, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(t.RawData)))},
		},
	}
	w.off += int64(len(t.RawData))
	return ref
}
