package onnx

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// ExternalMode says whether Save puts the weights in an external-data file.
type ExternalMode int

const (
	// ExternalAuto saves inline unless the model would pass SizeLimit.
	ExternalAuto ExternalMode = iota
	// ExternalNever saves everything inline.
	ExternalNever
	// ExternalAlways puts every initializer of at least MinExternalBytes in the data file.
	ExternalAlways
)

func (m ExternalMode) String() string {
	switch m {
	case ExternalAuto:
		return "auto"
	case ExternalNever:
		return "never"
	case ExternalAlways:
		return "always"
	}
	return "ExternalMode(" + strconv.Itoa(int(m)) + ")"
}

const (
	// MaxProtoSize is the largest serialized message protobuf readers accept (2 GiB - 1).
	MaxProtoSize = math.MaxInt32
	// DefaultSizeLimit is where ExternalAuto switches to external data: 2 GiB
	// less a 64 MiB margin for what readers add.
	DefaultSizeLimit = 2<<30 - 64<<20
	// DefaultMinExternalBytes is the size under which tensors stay inline.
	DefaultMinExternalBytes = 1024
	// dataAlign is the alignment of each tensor's offset in the data file.
	dataAlign = 64
)

// SaveOptions configures Save. The zero value saves inline unless the model
// would pass the protobuf size limit.
type SaveOptions struct {
	External ExternalMode
	// DataFile is the external-data file's name, in the model's folder; default
	// filepath.Base(path)+".data". It must be a plain file name.
	DataFile string
	// MinExternalBytes: tensors smaller than this stay inline (onnxruntime refuses
	// a model whose every tensor is external); default 1024.
	MinExternalBytes int
	// SizeLimit: ExternalAuto goes external when the serialized model would be
	// larger; default DefaultSizeLimit.
	SizeLimit int64
	// Protect lists files Save must not overwrite, such as the input model and
	// its data files (Model.InputFiles); compared with os.SameFile.
	Protect []string
	// Wrote, when set, hears the size of each tensor written to the external
	// data file, after it is written (a runtime.Pager's Read: the tensor's
	// bytes may be pages of a mapped input file, which it can then drop).
	Wrote func(n int64)
}

// Save writes m to path, inline or with the initializers of at least
// MinExternalBytes in one external-data file beside it (each tensor's offset
// aligned to 64 bytes), as opts say. It never modifies m: external tensors are
// shallow copies that share nothing m owns but their dims. Both files are
// written to temporary files in path's folder and renamed into place, the data
// file first, so that an error leaves no partial output. Save refuses to write
// the model and the data file to the same file, or over a file in opts.Protect.
//
// m must be self-contained (as Load makes it): a tensor that still refers to
// external data is an error.
func Save(m *pb.ModelProto, path string, opts SaveOptions) error {
	if err := save(m, path, opts); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

func save(m *pb.ModelProto, path string, opts SaveOptions) error {
	if m == nil {
		return errors.New("nil model")
	}
	if opts.DataFile == "" {
		opts.DataFile = filepath.Base(path) + ".data"
	}
	if opts.MinExternalBytes <= 0 {
		opts.MinExternalBytes = DefaultMinExternalBytes
	}
	if opts.SizeLimit <= 0 {
		opts.SizeLimit = DefaultSizeLimit
	}
	df := opts.DataFile
	if df != filepath.Base(df) || df == "." || df == ".." || strings.ContainsAny(df, `/\`) || strings.ContainsRune(df, 0) {
		return fmt.Errorf("data file %q must be a plain file name (it goes beside the model)", df)
	}
	dir := filepath.Dir(path)
	dataPath := filepath.Join(dir, df)
	if filepath.Clean(path) == dataPath || sameFile(path, dataPath) {
		return fmt.Errorf("data file %q is the model file itself", df)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("is a directory")
	}
	for _, p := range opts.Protect {
		if sameFile(p, path) {
			return fmt.Errorf("refusing to overwrite input file %s", p)
		}
	}
	// Every tensor must hold its data: check before writing anything.
	if _, _, err := mapTensors(m.ProtoReflect(), "", func(where, _ string, t *pb.TensorProto) (*pb.TensorProto, error) {
		if isExternal(t) || len(t.ExternalData) > 0 {
			return nil, fmt.Errorf("%s: %w", whereOrName(where, t), errExternal)
		}
		return t, nil
	}); err != nil {
		return err
	}

	external := false
	switch opts.External {
	case ExternalAlways:
		external = true
	case ExternalAuto:
		external = int64(proto.Size(m)) > opts.SizeLimit
	case ExternalNever:
		if size := proto.Size(m); size > MaxProtoSize {
			return fmt.Errorf("model is %d bytes, over the 2 GiB protobuf limit: save it with external data", size)
		}
	default:
		return fmt.Errorf("unknown external mode %d", int(opts.External))
	}

	var w atomicWriter
	defer w.abort()
	out := m
	if external {
		for _, p := range opts.Protect {
			if sameFile(p, dataPath) {
				return fmt.Errorf("refusing to overwrite input file %s (as data file %q)", p, df)
			}
		}
		shadow, n, err := writeData(&w, m, dataPath, df, opts.MinExternalBytes, opts.Wrote)
		if err != nil {
			return err
		}
		if size := proto.Size(shadow); size > MaxProtoSize {
			return fmt.Errorf("model is %d bytes without its initializers, over the 2 GiB protobuf limit", size)
		}
		if n > 0 {
			out = shadow
		}
	}
	if err := w.create(path); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w.cur, 1<<20)
	if err := writeMessage(bw, out.ProtoReflect(), streamThreshold); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.commit()
}

// writeData writes the data file and returns the model to save with it: m
// with every initializer of at least minBytes replaced by an external
// reference, and how many were moved. When none is, no data file is written.
func writeData(w *atomicWriter, m *pb.ModelProto, dataPath, location string, minBytes int, wrote func(int64)) (*pb.ModelProto, int, error) {
	var bw *bufio.Writer
	var off int64
	moved := 0
	pad := make([]byte, dataAlign)
	out, _, err := mapTensors(m.ProtoReflect(), "", func(where, field string, t *pb.TensorProto) (*pb.TensorProto, error) {
		if field != "initializer" {
			return t, nil // attribute and sparse tensors stay inline
		}
		dt := tensorDType(t)
		size, ok, err := rawSize(dt, t.GetDims())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", whereOrName(where, t), err)
		}
		if !ok || size < int64(minBytes) {
			return t, nil
		}
		raw := t.RawData
		if raw == nil {
			// Data in a typed field: encode it (one tensor at a time).
			d, err := DecodeTensor(t)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", whereOrName(where, t), err)
			}
			e, err := EncodeTensor(t.GetName(), d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", whereOrName(where, t), err)
			}
			raw = e.RawData
		} else if err := checkRaw(t, dt); err != nil {
			return nil, fmt.Errorf("%s: %w", whereOrName(where, t), err)
		}
		if bw == nil {
			if err := w.create(dataPath); err != nil {
				return nil, err
			}
			bw = bufio.NewWriterSize(w.cur, 1<<20)
		}
		if r := off % dataAlign; r != 0 {
			if _, err := bw.Write(pad[:dataAlign-r]); err != nil {
				return nil, err
			}
			off += dataAlign - r
		}
		if _, err := bw.Write(raw); err != nil {
			return nil, err
		}
		if wrote != nil {
			wrote(int64(len(raw)))
		}
		nt := shallowCopy(t.ProtoReflect()).Interface().(*pb.TensorProto)
		nt.RawData, nt.FloatData, nt.Int32Data, nt.Int64Data, nt.DoubleData, nt.Uint64Data = nil, nil, nil, nil, nil, nil
		nt.DataLocation = pb.TensorProto_EXTERNAL.Enum()
		nt.ExternalData = []*pb.StringStringEntryProto{
			{Key: ptr("location"), Value: ptr(location)},
			{Key: ptr("offset"), Value: ptr(strconv.FormatInt(off, 10))},
			{Key: ptr("length"), Value: ptr(strconv.Itoa(len(raw)))},
		}
		off += int64(len(raw))
		moved++
		return nt, nil
	})
	if err != nil {
		return nil, 0, err
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			return nil, 0, err
		}
	}
	return out.Interface().(*pb.ModelProto), moved, nil
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

// atomicWriter writes files to temporary files and renames them into place
// together at commit, in the order they were created.
type atomicWriter struct {
	cur   *os.File
	temps []*os.File
	dests []string
}

func (w *atomicWriter) create(dest string) error {
	if err := w.closeCur(); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return unwrapPathError(err)
	}
	w.cur = f
	w.temps = append(w.temps, f)
	w.dests = append(w.dests, dest)
	return nil
}

func (w *atomicWriter) closeCur() error {
	if w.cur == nil {
		return nil
	}
	f := w.cur
	w.cur = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *atomicWriter) commit() error {
	if err := w.closeCur(); err != nil {
		return err
	}
	for i, f := range w.temps {
		if err := os.Chmod(f.Name(), 0o644); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), w.dests[i]); err != nil {
			return err
		}
		w.temps[i] = nil
	}
	w.temps = nil
	return nil
}

// abort removes the temporary files not yet committed.
func (w *atomicWriter) abort() {
	if w.cur != nil {
		w.cur.Close()
		w.cur = nil
	}
	for _, f := range w.temps {
		if f != nil {
			os.Remove(f.Name())
		}
	}
	w.temps = nil
}

// streamThreshold: messages of this size or more are written field by field,
// so that a large inline model is never held twice in memory, nor are many
// copies of tensors left as garbage for the collector.
const streamThreshold = 1 << 20

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// writeMessage writes msg's wire encoding to w: the same bytes as a
// deterministic proto.Marshal (known fields by number, then unknown fields),
// but a message of threshold bytes or more is written field by field, and a
// bytes field (raw_data) straight from memory, so no copy of the weights is made.
func writeMessage(w *bufio.Writer, msg protoreflect.Message, threshold int) error {
	if proto.Size(msg.Interface()) < threshold {
		b, err := marshalOpts.Marshal(msg.Interface())
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	var buf []byte
	for _, fd := range fieldsByNumber(msg.Descriptor()) {
		if !msg.Has(fd) {
			continue
		}
		switch {
		case fd.Message() != nil && fd.IsList():
			list := msg.Get(fd).List()
			for i := range list.Len() {
				if err := writeSubMessage(w, fd, list.Get(i).Message(), threshold); err != nil {
					return err
				}
			}
		case fd.Message() != nil && !fd.IsMap():
			if err := writeSubMessage(w, fd, msg.Get(fd).Message(), threshold); err != nil {
				return err
			}
		case fd.Kind() == protoreflect.BytesKind && !fd.IsList():
			b := msg.Get(fd).Bytes()
			buf = protowire.AppendTag(buf[:0], fd.Number(), protowire.BytesType)
			buf = protowire.AppendVarint(buf, uint64(len(b)))
			if _, err := w.Write(buf); err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		default:
			one := msg.New()
			one.Set(fd, msg.Get(fd))
			b, err := marshalOpts.Marshal(one.Interface())
			if err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(msg.GetUnknown())
	return err
}

func writeSubMessage(w *bufio.Writer, fd protoreflect.FieldDescriptor, m protoreflect.Message, threshold int) error {
	var buf []byte
	buf = protowire.AppendTag(buf, fd.Number(), protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(proto.Size(m.Interface())))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return writeMessage(w, m, threshold)
}

func fieldsByNumber(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	fields := md.Fields()
	out := make([]protoreflect.FieldDescriptor, fields.Len())
	for i := range out {
		out[i] = fields.Get(i)
	}
	slices.SortFunc(out, func(a, b protoreflect.FieldDescriptor) int { return int(a.Number()) - int(b.Number()) })
	return out
}
