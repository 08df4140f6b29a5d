package onnx

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

func setExternal(tp *pb.TensorProto, location, offset, length string) {
	tp.RawData = nil
	tp.DataLocation = pb.TensorProto_EXTERNAL.Enum()
	tp.ExternalData = []*pb.StringStringEntryProto{{Key: ptr("location"), Value: ptr(location)}}
	if offset != "" {
		tp.ExternalData = append(tp.ExternalData, &pb.StringStringEntryProto{Key: ptr("offset"), Value: ptr(offset)})
	}
	if length != "" {
		tp.ExternalData = append(tp.ExternalData, &pb.StringStringEntryProto{Key: ptr("length"), Value: ptr(length)})
	}
}

// hostileCases: each writes model.onnx (and files) into dir and gives the
// error Load must return, after "load DIR/model.onnx: ".
var hostileCases = []struct {
	name  string
	setup func(t *testing.T, dir string)
	want  string
}{
	{"truncated file", func(t *testing.T, dir string) {
		b, _ := proto.Marshal(tinyModel())
		os.WriteFile(filepath.Join(dir, "model.onnx"), b[:len(b)/2], 0o644)
	}, "not an ONNX model, or truncated: "},
	{"text file", func(t *testing.T, dir string) {
		os.WriteFile(filepath.Join(dir, "model.onnx"), []byte("this is not an ONNX model\n"), 0o644)
	}, "not an ONNX model"},
	{"JSON file", func(t *testing.T, dir string) {
		os.WriteFile(filepath.Join(dir, "model.onnx"), []byte(`{"graph": {}}`), 0o644)
	}, "not an ONNX model"},
	{"empty file", func(t *testing.T, dir string) {
		os.WriteFile(filepath.Join(dir, "model.onnx"), nil, 0o644)
	}, "not an ONNX model: no graph"},
	{"no opset_import", func(t *testing.T, dir string) {
		m := tinyModel()
		m.OpsetImport = nil
		writeProto(t, filepath.Join(dir, "model.onnx"), m)
	}, "not a complete ONNX model (truncated?): no opset_import"},
	{"missing model", func(t *testing.T, dir string) {}, "no such file or directory"},
	{"missing external file", externalW1("missing.bin", "", "", nil),
		`initializer "w1": external data "missing.bin": no such file or directory`},
	{"offset + length past end", externalW1("w.bin", "100", "4000", make([]byte, 1024)),
		`initializer "w1": external data "w.bin": offset 100 + length 4000 past end of file (1024 bytes)`},
	{"offset past end", externalW1("w.bin", "2000", "", make([]byte, 1024)),
		`initializer "w1": external data "w.bin": offset 2000 past end of file (1024 bytes)`},
	{"length does not match dims", externalW1("w.bin", "0", "512", make([]byte, 1024)),
		`initializer "w1": external data "w.bin": 512 bytes at offset 0, but dims [16 16] of float32 need 1024`},
	{"file shorter than dims", externalW1("w.bin", "", "", make([]byte, 1000)),
		`initializer "w1": external data "w.bin": 1000 bytes at offset 0, but dims [16 16] of float32 need 1024`},
	{"location with ..", externalW1("../w.bin", "", "", nil),
		`initializer "w1": external data "../w.bin": location leaves the model's folder ("..") and is refused`},
	{"location climbing through a subfolder", externalW1("sub/../../w.bin", "", "", nil),
		`initializer "w1": external data "sub/../../w.bin": location leaves the model's folder`},
	{"absolute location", externalW1("/etc/passwd", "", "", nil),
		`initializer "w1": external data "/etc/passwd": absolute location refused`},
	{"symlink out of the folder", func(t *testing.T, dir string) {
		outside := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-outside.bin")
		os.WriteFile(outside, make([]byte, 1024), 0o644)
		t.Cleanup(func() { os.Remove(outside) })
		if err := os.Symlink(outside, filepath.Join(dir, "w.bin")); err != nil {
			t.Skip("no symlinks here:", err)
		}
		externalW1("w.bin", "", "", nil)(t, dir)
	}, `initializer "w1": external data "w.bin": location is a symlink that resolves outside the model's folder and is refused`},
	{"location is a folder", func(t *testing.T, dir string) {
		os.Mkdir(filepath.Join(dir, "d"), 0o755)
		externalW1("d", "", "", nil)(t, dir)
	}, `initializer "w1": external data "d": not a regular file`},
	{"bad offset", externalW1("w.bin", "-5", "", make([]byte, 1024)),
		`initializer "w1": external data "w.bin": offset "-5" is not a non-negative integer`},
	{"no location", func(t *testing.T, dir string) {
		m := tinyModel()
		setExternal(m.Graph.Initializer[0], "", "", "")
		m.Graph.Initializer[0].ExternalData = nil
		writeProto(t, filepath.Join(dir, "model.onnx"), m)
	}, `initializer "w1": external data has no location`},
	{"overflowing dims, external", func(t *testing.T, dir string) {
		externalW1("w.bin", "", "", make([]byte, 1024))(t, dir)
		setDims(t, dir, 1<<32, 1<<32)
	}, `initializer "w1": external data "w.bin": dims [4294967296 4294967296]: element count overflows int64`},
	{"overflowing dims, inline", func(t *testing.T, dir string) {
		writeProto(t, filepath.Join(dir, "model.onnx"), tinyModel())
		setDims(t, dir, 1<<32, 1<<32)
	}, `initializer "w1": dims [4294967296 4294967296]: element count overflows int64`},
	{"byte size overflows", func(t *testing.T, dir string) {
		writeProto(t, filepath.Join(dir, "model.onnx"), tinyModel())
		setDims(t, dir, 1<<31, 1<<31)
	}, `initializer "w1": dims [2147483648 2147483648] of float32: byte size overflows int64`},
	{"terabyte claim, no length", func(t *testing.T, dir string) {
		externalW1("w.bin", "", "", make([]byte, 1024))(t, dir)
		setDims(t, dir, 1<<20, 1<<20)
	}, `initializer "w1": external data "w.bin": 1024 bytes at offset 0, but dims [1048576 1048576] of float32 need 4398046511104`},
	{"terabyte claim with length", func(t *testing.T, dir string) {
		externalW1("w.bin", "0", "4398046511104", make([]byte, 1024))(t, dir)
		setDims(t, dir, 1<<20, 1<<20)
	}, `initializer "w1": external data "w.bin": offset 0 + length 4398046511104 past end of file (1024 bytes)`},
	{"terabyte claim inline", func(t *testing.T, dir string) {
		writeProto(t, filepath.Join(dir, "model.onnx"), tinyModel())
		setDims(t, dir, 1<<20, 1<<20)
	}, `initializer "w1": raw_data has 1024 bytes, dims [1048576 1048576] of float32 need 4398046511104`},
	{"negative dim", func(t *testing.T, dir string) {
		writeProto(t, filepath.Join(dir, "model.onnx"), tinyModel())
		setDims(t, dir, 16, -16)
	}, `initializer "w1": negative dim -16 at axis 1 of [16 -16]`},
	{"Constant tensor external and missing", func(t *testing.T, dir string) {
		m := tinyModel()
		setExternal(m.Graph.Node[0].Attribute[0].T, "c.bin", "", "")
		writeProto(t, filepath.Join(dir, "model.onnx"), m)
	}, `node "shape": attribute "value": external data "c.bin": no such file or directory`},
	{"subgraph initializer external and missing", func(t *testing.T, dir string) {
		m := richModel()
		setExternal(m.Graph.Node[4].Attribute[0].G.Initializer[0], "g.bin", "", "")
		writeProto(t, filepath.Join(dir, "model.onnx"), m)
	}, `node "if": attribute "then_branch": graph "then": initializer "big": external data "g.bin": no such file or directory`},
}

// externalW1 writes tinyModel with w1 in external file loc (writing data to
// dir/loc unless nil).
func externalW1(loc, offset, length string, data []byte) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		m := tinyModel()
		setExternal(m.Graph.Initializer[0], loc, offset, length)
		writeProto(t, filepath.Join(dir, "model.onnx"), m)
		if data != nil {
			os.WriteFile(filepath.Join(dir, loc), data, 0o644)
		}
	}
}

// setDims rewrites dir/model.onnx with w1's dims changed.
func setDims(t *testing.T, dir string, dims ...int64) {
	t.Helper()
	path := filepath.Join(dir, "model.onnx")
	m := testenv.ReadModelProto(t, path)
	m.Graph.Initializer[0].Dims = dims
	writeProto(t, path, m)
}

// TestLoadHostile runs every hostile case through Load and LoadGraphOnly,
// which must check external references alike.
func TestLoadHostile(t *testing.T) {
	for _, c := range hostileCases {
		for _, loader := range []struct {
			name string
			load func(string) (*Model, error)
		}{{"Load", Load}, {"LoadGraphOnly", LoadGraphOnly}} {
			t.Run(c.name+"/"+loader.name, func(t *testing.T) {
				dir := t.TempDir()
				c.setup(t, dir)
				path := filepath.Join(dir, "model.onnx")
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				m, err := loader.load(path)
				runtime.ReadMemStats(&after)
				if err == nil {
					t.Fatalf("%s succeeded (%d initializers), want error %q", loader.name, len(m.Proto.Graph.Initializer), c.want)
				}
				msg := err.Error()
				prefix := "load " + path + ": "
				if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
					t.Errorf("got error\n\t%s\nwant one line starting %q containing\n\t%s", msg, prefix, c.want)
				}
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
					t.Errorf("%s allocated %d bytes before failing; want memory bounded by the files", loader.name, alloc)
				}
			})
		}
	}
}

func TestLoadBytesRefusesExternal(t *testing.T) {
	m := tinyModel()
	setExternal(m.Graph.Initializer[0], "w.bin", "", "")
	b, _ := proto.Marshal(m)
	_, err := LoadBytes(b, "mem.onnx")
	want := `load mem.onnx: initializer "w1": external data "w.bin": a model given as bytes cannot refer to external files`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
	b, _ = proto.Marshal(tinyModel())
	got, err := LoadBytes(b, "mem.onnx")
	if err != nil || got.Path != "" || got.ExternalFiles != nil || got.InputFiles() != nil {
		t.Errorf("LoadBytes = %+v, %v; want a model with no path or files", got, err)
	}
}
