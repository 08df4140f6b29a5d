package onnx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Model is a loaded ONNX model. Its Proto is self-contained: every tensor
// holds its data in memory (raw_data or a typed field), none refers to an
// external file. Tensors read from external data by Load have raw_data that
// is a read-only memory mapping of their file (see Load and Close).
type Model struct {
	Proto *pb.ModelProto
	// Path is the file the model was loaded from ("" for LoadBytes).
	Path string
	// ExternalFiles lists the external-data files the model referred to, by
	// location as written in the model (relative to its folder), sorted, unique.
	ExternalFiles []string
	// DataUnread is set by LoadGraphOnly: tensors stored externally still
	// refer to their files, unread, and the model cannot be run or saved.
	DataUnread bool

	// maps are the external-data files mapped by Load; mapped the tensors
	// whose raw_data points into them (cleared by Close).
	maps   [][]byte
	mapped []*pb.TensorProto
}

// Close releases the memory mappings that hold the bytes of tensors loaded
// from external data, and sets those tensors' raw_data to nil, so a later use
// through the model fails a size check instead of reading unmapped memory.
// After Close, no slice taken from such a tensor before (its raw_data, the
// result of Float32s, a runtime session built on the model) may be used:
// reading it faults. Close is idempotent; a model that is never closed keeps
// its mappings until the process exits (they are clean file pages, which the
// kernel reclaims under memory pressure and rereads on use). There is
// deliberately no finalizer: Go cannot see slices into mapped memory, so a
// finalizer on the Model could unmap bytes still in use elsewhere.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	for _, t := range m.mapped {
		t.RawData = nil
	}
	m.mapped = nil
	var first error
	for _, b := range m.maps {
		if err := unmapFile(b); err != nil && first == nil {
			first = fmt.Errorf("onnx: unmap external data: %w", err)
		}
	}
	m.maps = nil
	return first
}

// ReleasePages drops the resident pages of the model's memory-mapped
// external data from the process (madvise MADV_DONTNEED): the mappings and
// every slice into them stay valid, and the next read of a page maps it
// back from the page cache (or the file). A run that reads the weights
// layer after layer and releases as it goes (runtime.Pager) keeps the
// resident set near one layer's weights instead of the file's size. It
// does nothing for a model without mapped data.
func (m *Model) ReleasePages() error {
	if m == nil {
		return nil
	}
	for _, b := range m.maps {
		if err := releasePages(b); err != nil {
			return fmt.Errorf("onnx: release mapped pages: %w", err)
		}
	}
	return nil
}

// MappedBytes is the size of the tensors whose data is memory-mapped from
// external data (their raw_data): bytes the process reads from the page
// cache rather than holds on its heap.
func (m *Model) MappedBytes() int64 {
	if m == nil {
		return 0
	}
	var n int64
	for _, t := range m.mapped {
		n += int64(len(t.GetRawData()))
	}
	return n
}

// InputFiles lists the files the model was read from: Path and its external
// data files, joined to Path's folder. Pass it as SaveOptions.Protect so that
// saving never overwrites them. It is empty for a model loaded from bytes.
func (m *Model) InputFiles() []string {
	if m == nil || m.Path == "" {
		return nil
	}
	files := []string{m.Path}
	for _, loc := range m.ExternalFiles {
		files = append(files, filepath.Join(filepath.Dir(m.Path), loc))
	}
	return files
}

// Load reads the ONNX model at path and resolves all its external data into
// memory: afterwards every tensor (initializers, Constant attributes, sparse
// values, in subgraphs and functions too) has its bytes in raw_data and no
// external_data or data_location, so callers never care where data lived.
//
// External data locations are relative to the model's folder; a location that
// is absolute, climbs out with "..", or is a symlink resolving outside the
// folder is refused, as is an offset or length past the end of the file or a
// length that does not match the tensor's dims. Every tensor's dims and data
// size are checked.
//
// External data files are memory-mapped read-only (on Unix; elsewhere each
// tensor's bytes are read into its own buffer, after the checks): a tensor's
// raw_data is a slice of the mapping, not a copy on the heap, so loading
// costs no memory until the bytes are used, and the pages the kernel keeps
// are clean file pages it can drop and reread. raw_data of such tensors must
// not be written to (a write faults): code that changes a tensor's values
// makes a new buffer. The mappings live until Model.Close; the data file must
// not be truncated or rewritten in place meanwhile (reading a page past a
// truncation raises SIGBUS; Save and onnxslm replace files by rename, which
// leaves the mapped file intact). Inline data stays where the decoder put it.
//
// Errors are one line naming the file and the tensor, like
//
//	load model.onnx: initializer "w1": external data "w.bin": offset 100 + length 4000 past end of file (1024 bytes)
func Load(path string) (*Model, error) {
	mp, err := readModelFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return resolve(mp, path, path, true)
}

// LoadGraphOnly is Load without reading external data: every external
// reference is checked as by Load (location inside the model's folder, offset
// and length inside the file, length matching the dims), but the tensors keep
// their references and the bytes stay on disk. It is for describing a model
// (onnxslm inspect): memory is what the .onnx file holds, whatever the size
// of its data files. The model has DataUnread set; values of external tensors
// are not available.
func LoadGraphOnly(path string) (*Model, error) {
	mp, err := readModelFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	m, err := resolve(mp, path, path, false)
	if err != nil {
		return nil, err
	}
	m.DataUnread = len(m.ExternalFiles) > 0
	return m, nil
}

// LoadBytes parses a serialized ModelProto; name is used in error messages.
// Tensors are checked as by Load. A model with external data is refused with
// an error: there is no folder to find the data in.
func LoadBytes(b []byte, name string) (*Model, error) {
	m, err := load(b, name, "")
	if err != nil {
		return nil, err
	}
	m.Path = ""
	return m, nil
}

func load(b []byte, name, path string) (*Model, error) {
	mp := &pb.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		return nil, fmt.Errorf("load %s: %w", name, notONNX(err))
	}
	return resolve(mp, name, path, true)
}

// resolve checks a decoded model and reads its external data (relative to
// path's folder; none allowed when path is ""), or only checks the references
// when read is false.
func resolve(mp *pb.ModelProto, name, path string, read bool) (*Model, error) {
	if mp.Graph == nil {
		return nil, fmt.Errorf("load %s: not an ONNX model: no graph", name)
	}
	if mp.GetIrVersion() >= 3 && len(mp.OpsetImport) == 0 {
		return nil, fmt.Errorf("load %s: not a complete ONNX model (truncated?): no opset_import", name)
	}
	ext := &externalData{path: path, checkOnly: !read}
	defer ext.close()
	ok := false
	defer func() {
		if !ok {
			ext.unmap()
		}
	}()
	_, _, err := mapTensors(mp.ProtoReflect(), "", func(where, _ string, t *pb.TensorProto) (*pb.TensorProto, error) {
		if isExternal(t) || len(t.ExternalData) > 0 {
			if err := ext.resolve(t); err != nil {
				return nil, fmt.Errorf("load %s: %s: %w", name, whereOrName(where, t), err)
			}
			if !read {
				return t, nil // checked against its file; the bytes stay there
			}
		}
		if err := checkTensor(t); err != nil {
			return nil, fmt.Errorf("load %s: %s: %w", name, whereOrName(where, t), err)
		}
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return &Model{Proto: mp, Path: path, ExternalFiles: ext.locations(), maps: ext.maps, mapped: ext.mapped}, nil
}

func whereOrName(where string, t *pb.TensorProto) string {
	if where != "" {
		return where
	}
	return fmt.Sprintf("tensor %q", t.GetName())
}

// unwrapPathError drops the operation of an *os.PathError ("open x: no such
// file" becomes "no such file") when the caller already names the file.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// externalData resolves external-data references of one model.
type externalData struct {
	path    string // the model file; "" when loaded from bytes
	realDir string // the model's folder with symlinks resolved
	files   map[string]*extFile
	// checkOnly: resolve checks a reference but reads nothing and leaves the
	// tensor external.
	checkOnly bool
	maps      [][]byte          // the files mapped so far
	mapped    []*pb.TensorProto // tensors whose raw_data is in maps
}

type extFile struct {
	f    *os.File
	size int64
	err  error
	// data is the file mapped read-only, once a tensor of it is read;
	// mapTried is set after the first try (a failure falls back to ReadAt).
	data     []byte
	mapTried bool
}

type extRef struct {
	location       string
	offset, length int64
	hasLength      bool
}

func parseExternal(t *pb.TensorProto) (extRef, error) {
	var r extRef
	seen := map[string]bool{}
	for _, kv := range t.ExternalData {
		k, v := kv.GetKey(), kv.GetValue()
		if seen[k] {
			return r, fmt.Errorf("external data: key %q given twice", k)
		}
		seen[k] = true
		switch k {
		case "location":
			r.location = v
		case "offset", "length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return r, fmt.Errorf("external data %q: %s %q is not a non-negative integer", r.location, k, v)
			}
			if k == "offset" {
				r.offset = n
			} else {
				r.length, r.hasLength = n, true
			}
		}
		// "checksum" and keys this package does not know are ignored.
	}
	if !isExternal(t) {
		return r, fmt.Errorf("external_data given but data_location is not EXTERNAL")
	}
	if r.location == "" {
		return r, errors.New("external data has no location")
	}
	return r, nil
}

// resolve reads t's external data into t.RawData and clears its external
// fields (with checkOnly, only checks the reference), or returns an error.
func (e *externalData) resolve(t *pb.TensorProto) error {
	r, err := parseExternal(t)
	if err != nil {
		return err
	}
	if e.files == nil {
		e.files = map[string]*extFile{}
	}
	if _, ok := e.files[r.location]; !ok {
		e.files[r.location] = nil // remembered for ExternalFiles even when it fails
	}
	if e.path == "" {
		return fmt.Errorf("external data %q: a model given as bytes cannot refer to external files (load it from its file)", r.location)
	}
	dt := tensorDType(t)
	if dt == pb.TensorProto_STRING {
		return fmt.Errorf("external data %q: string tensors cannot be stored externally", r.location)
	}
	if t.RawData != nil || len(t.FloatData)+len(t.Int32Data)+len(t.Int64Data)+len(t.DoubleData)+len(t.Uint64Data)+len(t.StringData) > 0 {
		return fmt.Errorf("external data %q: tensor also holds data inline", r.location)
	}
	want, sized, err := rawSize(dt, t.GetDims())
	if err != nil {
		return fmt.Errorf("external data %q: %w", r.location, err)
	}
	f, err := e.open(r.location)
	if err != nil {
		return fmt.Errorf("external data %q: %w", r.location, err)
	}
	if r.offset > f.size {
		return fmt.Errorf("external data %q: offset %d past end of file (%d bytes)", r.location, r.offset, f.size)
	}
	if !r.hasLength {
		r.length = f.size - r.offset
	} else if r.length > f.size-r.offset {
		return fmt.Errorf("external data %q: offset %d + length %d past end of file (%d bytes)", r.location, r.offset, r.length, f.size)
	}
	if sized && r.length != want {
		return fmt.Errorf("external data %q: %d bytes at offset %d, but dims %s of %s need %d", r.location, r.length, r.offset, dimsString(t.GetDims()), DTypeName(dt), want)
	}
	if e.checkOnly {
		return nil
	}
	if data := e.mapping(f); data != nil && r.length > 0 {
		t.RawData = data[r.offset : r.offset+r.length : r.offset+r.length]
		e.mapped = append(e.mapped, t)
		t.ExternalData = nil
		t.DataLocation = nil
		return nil
	}
	// r.length is now bounded by the file's size: allocating it is safe.
	buf := make([]byte, r.length)
	if _, err := f.f.ReadAt(buf, r.offset); err != nil && !(errors.Is(err, io.EOF) && r.length == 0) {
		return fmt.Errorf("external data %q: read %d bytes at offset %d: %w", r.location, r.length, r.offset, unwrapPathError(err))
	}
	t.RawData = buf
	t.ExternalData = nil
	t.DataLocation = nil
	return nil
}

// mapping returns f mapped read-only, or nil where mapping is not supported
// or fails (then Load reads each tensor into memory instead).
func (e *externalData) mapping(f *extFile) []byte {
	if !f.mapTried {
		f.mapTried = true
		if mmapSupported && f.size > 0 {
			if data, err := mapFile(f.f, f.size); err == nil {
				f.data = data
				e.maps = append(e.maps, data)
			}
		}
	}
	return f.data
}

// unmap releases the mappings of a load that failed.
func (e *externalData) unmap() {
	for _, t := range e.mapped {
		t.RawData = nil
	}
	for _, b := range e.maps {
		unmapFile(b)
	}
	e.maps, e.mapped = nil, nil
}

// open opens an external-data file once, after checking that its location
// stays inside the model's folder.
func (e *externalData) open(loc string) (*extFile, error) {
	if f := e.files[loc]; f != nil {
		return f, f.err
	}
	f := &extFile{}
	f.f, f.size, f.err = e.openChecked(loc)
	e.files[loc] = f
	return f, f.err
}

func (e *externalData) openChecked(loc string) (*os.File, int64, error) {
	if strings.ContainsRune(loc, 0) {
		return nil, 0, errors.New("location contains a NUL byte")
	}
	if filepath.IsAbs(loc) || strings.HasPrefix(loc, "/") {
		return nil, 0, errors.New("absolute location refused: locations must be relative to the model's folder")
	}
	clean := filepath.Clean(loc)
	if clean == "." {
		return nil, 0, errors.New("location names the model's folder, not a file")
	}
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return nil, 0, errors.New("location leaves the model's folder (\"..\") and is refused")
	}
	dir := filepath.Dir(e.path)
	if e.realDir == "" {
		abs, err := filepath.Abs(dir)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("resolve the model's folder: %w", err)
		}
		e.realDir = abs
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, clean))
	if err != nil {
		return nil, 0, unwrapPathError(err)
	}
	if !filepath.IsAbs(real) {
		if real, err = filepath.Abs(real); err != nil {
			return nil, 0, err
		}
	}
	if rel, err := filepath.Rel(e.realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, 0, errors.New("location is a symlink that resolves outside the model's folder and is refused")
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, 0, unwrapPathError(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, 0, unwrapPathError(err)
	}
	return f, fi.Size(), nil
}

func (e *externalData) locations() []string {
	if len(e.files) == 0 {
		return nil
	}
	locs := make([]string, 0, len(e.files))
	for l := range e.files {
		locs = append(locs, l)
	}
	sort.Strings(locs)
	return locs
}

func (e *externalData) close() {
	for _, f := range e.files {
		if f != nil && f.f != nil {
			f.f.Close()
		}
	}
}
