package onnx

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

func seq(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)*0.25 - 3
	}
	return v
}

func valueInfo(name string, dims ...any) *pb.ValueInfoProto {
	shape := &pb.TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		case string:
			shape.Dim = append(shape.Dim, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		}
	}
	return &pb.ValueInfoProto{Name: ptr(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: &pb.TypeProto_Tensor{
		ElemType: ptr(int32(pb.TensorProto_FLOAT)), Shape: shape}}}}
}

// tinyModel is a small model with one 1 KiB initializer "w1", a small one
// "b1" and a Constant shape tensor: x[batch,16] → Reshape → MatMul w1 → Add b1.
func tinyModel() *pb.ModelProto {
	return &pb.ModelProto{
		IrVersion:       ptr(int64(8)),
		ProducerName:    ptr("onnxslm-test"),
		ProducerVersion: ptr("1"),
		OpsetImport:     []*pb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(17))}},
		Graph: &pb.GraphProto{
			Name: ptr("tiny"),
			Node: []*pb.NodeProto{
				{Name: ptr("shape"), OpType: ptr("Constant"), Output: []string{"s"}, Attribute: []*pb.AttributeProto{
					{Name: ptr("value"), Type: pb.AttributeProto_TENSOR.Enum(), T: NewInt64("", []int64{2}, []int64{-1, 16})}}},
				{Name: ptr("reshape"), OpType: ptr("Reshape"), Input: []string{"x", "s"}, Output: []string{"r"}},
				{Name: ptr("mm"), OpType: ptr("MatMul"), Input: []string{"r", "w1"}, Output: []string{"m"}},
				{Name: ptr("add"), OpType: ptr("Add"), Input: []string{"m", "b1"}, Output: []string{"y"}},
			},
			Initializer: []*pb.TensorProto{
				NewFloat32("w1", []int64{16, 16}, seq(256)),
				NewFloat32("b1", []int64{16}, seq(16)),
			},
			Input:  []*pb.ValueInfoProto{valueInfo("x", "batch", 16)},
			Output: []*pb.ValueInfoProto{valueInfo("y", "batch", 16)},
		},
	}
}

// richModel adds everything Load and Save must keep: metadata, doc strings,
// domains, value_info, a function, a sparse initializer, a subgraph with its
// own initializer, training info and unknown fields (as a newer ONNX writes).
func richModel() *pb.ModelProto {
	m := tinyModel()
	m.Domain = ptr("ai.onnxslm.test")
	m.ModelVersion = ptr(int64(3))
	m.DocString = ptr("a model for tests")
	m.MetadataProps = []*pb.StringStringEntryProto{{Key: ptr("k"), Value: ptr("v")}, {Key: ptr("a"), Value: ptr("b")}}
	m.OpsetImport = append(m.OpsetImport, &pb.OperatorSetIdProto{Domain: ptr("ai.onnxslm.test"), Version: ptr(int64(1))})
	m.Graph.DocString = ptr("graph doc")
	m.Graph.ValueInfo = []*pb.ValueInfoProto{valueInfo("r", "batch", 16)}
	m.Graph.SparseInitializer = []*pb.SparseTensorProto{{
		Values:  NewFloat32("sp", []int64{2}, []float32{1, 2}),
		Indices: NewInt64("sp_idx", []int64{2}, []int64{0, 5}),
		Dims:    []int64{8},
	}}
	then := &pb.GraphProto{
		Name:        ptr("then"),
		Node:        []*pb.NodeProto{{OpType: ptr("Identity"), Input: []string{"big"}, Output: []string{"o"}}},
		Initializer: []*pb.TensorProto{NewFloat32("big", []int64{512}, seq(512))},
		Output:      []*pb.ValueInfoProto{valueInfo("o", 512)},
	}
	els := &pb.GraphProto{
		Name:   ptr("else"),
		Node:   []*pb.NodeProto{{OpType: ptr("Constant"), Output: []string{"o"}, Attribute: []*pb.AttributeProto{{Name: ptr("value"), Type: pb.AttributeProto_TENSOR.Enum(), T: NewFloat32("c", []int64{512}, seq(512))}}}},
		Output: []*pb.ValueInfoProto{valueInfo("o", 512)},
	}
	m.Graph.Node = append(m.Graph.Node, &pb.NodeProto{Name: ptr("if"), OpType: ptr("If"), Input: []string{"cond"}, Output: []string{"z"}, DocString: ptr("node doc"),
		Attribute: []*pb.AttributeProto{
			{Name: ptr("then_branch"), Type: pb.AttributeProto_GRAPH.Enum(), G: then},
			{Name: ptr("else_branch"), Type: pb.AttributeProto_GRAPH.Enum(), G: els},
		}})
	m.Functions = []*pb.FunctionProto{{
		Name: ptr("Twice"), Domain: ptr("ai.onnxslm.test"), Input: []string{"a"}, Output: []string{"b"},
		Node:        []*pb.NodeProto{{OpType: ptr("Add"), Input: []string{"a", "a"}, Output: []string{"b"}}},
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: ptr(""), Version: ptr(int64(17))}},
	}}
	m.TrainingInfo = []*pb.TrainingInfoProto{{Initialization: &pb.GraphProto{Name: ptr("init"),
		Initializer: []*pb.TensorProto{NewFloat32("lr", []int64{400}, seq(400))}}}}
	// Unknown fields, as fields of a newer onnx.proto would arrive.
	var unk []byte
	unk = protowire.AppendTag(unk, 99, protowire.BytesType)
	unk = protowire.AppendString(unk, "from the future")
	m.ProtoReflect().SetUnknown(unk)
	m.Graph.Initializer[0].ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 98, protowire.VarintType), 7))
	m.Graph.Node[0].ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 97, protowire.VarintType), 1))
	return m
}

func writeProto(t *testing.T, path string, m *pb.ModelProto) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// saveModes are the ways a model is saved in round-trip tests.
var saveModes = []struct {
	name     string
	opts     SaveOptions
	external bool
}{
	{"inline", SaveOptions{External: ExternalNever}, false},
	{"auto under the limit", SaveOptions{}, false},
	{"external", SaveOptions{External: ExternalAlways}, true},
	{"auto over a lowered limit", SaveOptions{SizeLimit: 4096}, true},
}

// roundTrip saves m in each mode and checks that loading gives an equal
// message, that m is not modified, and what files were written.
func roundTrip(t *testing.T, name string, m *pb.ModelProto) {
	before := proto.Clone(m)
	for _, mode := range saveModes {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.onnx")
		if err := Save(m, path, mode.opts); err != nil {
			t.Fatalf("%s %s: Save: %v", name, mode.name, err)
		}
		if !proto.Equal(m, before) {
			t.Fatalf("%s %s: Save modified its input", name, mode.name)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatalf("%s %s: Load: %v", name, mode.name, err)
		}
		if !proto.Equal(got.Proto, m) {
			t.Errorf("%s %s: loaded model differs from the saved one", name, mode.name)
		}
		wantFiles := []string{"out.onnx"}
		var wantExt []string
		if mode.external {
			wantFiles = []string{"out.onnx", "out.onnx.data"}
			wantExt = []string{"out.onnx.data"}
		}
		if files := listDir(t, dir); !slices.Equal(files, wantFiles) {
			t.Errorf("%s %s: files written %v, want %v", name, mode.name, files, wantFiles)
		}
		if !slices.Equal(got.ExternalFiles, wantExt) {
			t.Errorf("%s %s: ExternalFiles = %v, want %v", name, mode.name, got.ExternalFiles, wantExt)
		}
		if mode.external {
			checkExternalLayout(t, name+" "+mode.name, path, m)
		}
	}
}

// checkExternalLayout reads the saved .onnx without resolving its external
// data and checks: initializers of at least 1 KiB are external, at 64-byte
// aligned offsets, smaller tensors are inline, and the offsets tile the file.
func checkExternalLayout(t *testing.T, name, path string, orig *pb.ModelProto) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path + ".data")
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	external, inline := 0, 0
	mapTensors(m.ProtoReflect(), "", func(where, field string, tp *pb.TensorProto) (*pb.TensorProto, error) {
		size, ok, _ := rawSize(tensorDType(tp), tp.Dims)
		if !isExternal(tp) {
			inline++
			if field == "initializer" && ok && size >= DefaultMinExternalBytes {
				t.Errorf("%s: %s (%d bytes) stayed inline", name, where, size)
			}
			return tp, nil
		}
		external++
		kv := map[string]string{}
		for _, e := range tp.ExternalData {
			kv[e.GetKey()] = e.GetValue()
		}
		off, _ := strconv.ParseInt(kv["offset"], 10, 64)
		length, _ := strconv.ParseInt(kv["length"], 10, 64)
		if kv["location"] != "out.onnx.data" || off%64 != 0 || off < end || length != size || tp.RawData != nil {
			t.Errorf("%s: %s: external data %v (raw %d bytes), want location out.onnx.data, offset ≥ %d aligned to 64, length %d", name, where, kv, len(tp.RawData), end, size)
		}
		end = off + length
		return tp, nil
	})
	if external == 0 || inline == 0 {
		t.Errorf("%s: %d external and %d inline tensors, want some of each", name, external, inline)
	}
	if end != fi.Size() {
		t.Errorf("%s: data file is %d bytes, tensors end at %d", name, fi.Size(), end)
	}
}

func TestRoundTripTestModels(t *testing.T) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		m, err := Load(testenv.TestModel(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.ExternalFiles) != 0 {
			t.Errorf("%s: ExternalFiles = %v, want none", name, m.ExternalFiles)
		}
		roundTrip(t, name, m.Proto)
	}
}

func TestRoundTripRichModel(t *testing.T) {
	roundTrip(t, "rich", richModel())
}

// A model with external data loads to the same message as the inline one,
// whatever the files and offsets, and saving it elsewhere round-trips.
func TestLoadExternalSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := richModel()
	m := proto.Clone(want).(*pb.ModelProto)
	w1 := m.Graph.Initializer[0]
	big := m.Graph.Node[4].Attribute[0].G.Initializer[0]
	// w1 at offset 10 of a.bin (with garbage around), big alone in sub/b.bin.
	a := append(append(bytes.Repeat([]byte{0xee}, 10), w1.RawData...), 1, 2, 3)
	os.WriteFile(filepath.Join(dir, "a.bin"), a, 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "b.bin"), big.RawData, 0o644)
	setExternal(w1, "a.bin", "10", strconv.Itoa(len(w1.RawData)))
	setExternal(big, "sub/b.bin", "", "")
	// A Constant attribute tensor may be external too; it shares a.bin.
	c := m.Graph.Node[0].Attribute[0].T
	f, _ := os.OpenFile(filepath.Join(dir, "a.bin"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write(c.RawData)
	f.Close()
	setExternal(c, "./a.bin", strconv.Itoa(len(a)), strconv.Itoa(len(c.RawData)))
	path := filepath.Join(dir, "m.onnx")
	writeProto(t, path, m)

	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Proto, want) {
		t.Errorf("model with external data loaded differently from the inline one")
	}
	if wantFiles := []string{"./a.bin", "a.bin", "sub/b.bin"}; !slices.Equal(got.ExternalFiles, wantFiles) {
		t.Errorf("ExternalFiles = %v, want %v", got.ExternalFiles, wantFiles)
	}
	if in := got.InputFiles(); len(in) != 4 || in[0] != path || in[3] != filepath.Join(dir, "sub", "b.bin") {
		t.Errorf("InputFiles = %v", in)
	}
	roundTrip(t, "external input", got.Proto)

	// LoadGraphOnly: the same graph, the external tensors left unread.
	lazy, err := LoadGraphOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if !lazy.DataUnread || !slices.Equal(lazy.ExternalFiles, got.ExternalFiles) {
		t.Errorf("LoadGraphOnly: DataUnread %v, ExternalFiles %v", lazy.DataUnread, lazy.ExternalFiles)
	}
	if !proto.Equal(lazy.Proto, m) {
		t.Errorf("LoadGraphOnly changed the model; want its external references as written")
	}
	if e1, b1 := Parameters(lazy.Proto); e1 == 0 {
		t.Errorf("Parameters of the unread model = %d elements, %d bytes", e1, b1)
	} else if e2, b2 := Parameters(got.Proto); e1 != e2 || b1 != b2 {
		t.Errorf("Parameters: unread %d/%d, loaded %d/%d", e1, b1, e2, b2)
	}
}

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
	path := filepath.Join(dir, "model.onnx")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
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

// writeMessage writes the same bytes as a deterministic Marshal, whether it
// streams everything or nothing.
func TestWriteMessageMatchesMarshal(t *testing.T) {
	models := map[string]*pb.ModelProto{"rich": richModel()}
	if m, err := Load(testenv.TestModel(t, "gpt2_6")); err == nil {
		models["gpt2_6"] = m.Proto
	} else {
		t.Fatal(err)
	}
	for name, m := range models {
		want, err := marshalOpts.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, threshold := range []int{0, 1024, 1 << 40} {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := writeMessage(w, m.ProtoReflect(), threshold); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s, threshold %d: writeMessage wrote %d bytes differing from Marshal's %d", name, threshold, buf.Len(), len(want))
			}
		}
	}
}

// Saving twice gives byte-identical files.
func TestSaveDeterministic(t *testing.T) {
	m := richModel()
	for _, mode := range []ExternalMode{ExternalNever, ExternalAlways} {
		var got [2][]byte
		var data [2][]byte
		for i := range 2 {
			dir := t.TempDir()
			p := filepath.Join(dir, "m.onnx")
			if err := Save(m, p, SaveOptions{External: mode}); err != nil {
				t.Fatal(err)
			}
			got[i], _ = os.ReadFile(p)
			data[i], _ = os.ReadFile(p + ".data")
		}
		if !bytes.Equal(got[0], got[1]) || !bytes.Equal(data[0], data[1]) {
			t.Errorf("%v: two saves differ", mode)
		}
	}
}

func TestSaveOptions(t *testing.T) {
	m := tinyModel() // w1 is 1024 bytes, b1 64
	cases := []struct {
		name       string
		opts       SaveOptions
		files      []string
		externalW1 bool
	}{
		{"data file named", SaveOptions{External: ExternalAlways, DataFile: "weights.bin"}, []string{"m.onnx", "weights.bin"}, true},
		{"min bytes above every tensor: no data file", SaveOptions{External: ExternalAlways, MinExternalBytes: 1025}, []string{"m.onnx"}, false},
		{"min bytes at w1", SaveOptions{External: ExternalAlways, MinExternalBytes: 1024}, []string{"m.onnx", "m.onnx.data"}, true},
	}
	for _, c := range cases {
		dir := t.TempDir()
		p := filepath.Join(dir, "m.onnx")
		if err := Save(m, p, c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if files := listDir(t, dir); !slices.Equal(files, c.files) {
			t.Errorf("%s: files %v, want %v", c.name, files, c.files)
		}
		b, _ := os.ReadFile(p)
		raw := &pb.ModelProto{}
		proto.Unmarshal(b, raw)
		if got := isExternal(raw.Graph.Initializer[0]); got != c.externalW1 {
			t.Errorf("%s: w1 external = %v, want %v", c.name, got, c.externalW1)
		}
		if isExternal(raw.Graph.Initializer[1]) {
			t.Errorf("%s: b1 (64 bytes) went external", c.name)
		}
		got, err := Load(p)
		if err != nil || !proto.Equal(got.Proto, m) {
			t.Errorf("%s: reload: %v, equal %v", c.name, err, err == nil && proto.Equal(got.Proto, m))
		}
	}
}

func TestSaveRefuses(t *testing.T) {
	loaded := func(t *testing.T, dir string) *Model {
		p := filepath.Join(dir, "in.onnx")
		if err := Save(tinyModel(), p, SaveOptions{External: ExternalAlways}); err != nil {
			t.Fatal(err)
		}
		m, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name string
		run  func(t *testing.T, dir string) (string, error)
		want string
	}{
		{"data file is the model", func(t *testing.T, dir string) (string, error) {
			p := filepath.Join(dir, "m.onnx")
			return p, Save(tinyModel(), p, SaveOptions{External: ExternalAlways, DataFile: "m.onnx"})
		}, `data file "m.onnx" is the model file itself`},
		{"data file with a folder", func(t *testing.T, dir string) (string, error) {
			p := filepath.Join(dir, "m.onnx")
			return p, Save(tinyModel(), p, SaveOptions{External: ExternalAlways, DataFile: "../w.bin"})
		}, `data file "../w.bin" must be a plain file name`},
		{"over the input model", func(t *testing.T, dir string) (string, error) {
			m := loaded(t, dir)
			return m.Path, Save(m.Proto, m.Path, SaveOptions{Protect: m.InputFiles()})
		}, "refusing to overwrite input file"},
		{"over the input model through a symlink", func(t *testing.T, dir string) (string, error) {
			m := loaded(t, dir)
			link := filepath.Join(dir, "link.onnx")
			if err := os.Symlink("in.onnx", link); err != nil {
				t.Skip(err)
			}
			return link, Save(m.Proto, link, SaveOptions{Protect: m.InputFiles()})
		}, "refusing to overwrite input file"},
		{"over the input's data file", func(t *testing.T, dir string) (string, error) {
			m := loaded(t, dir)
			p := filepath.Join(dir, "other.onnx")
			return p, Save(m.Proto, p, SaveOptions{External: ExternalAlways, DataFile: "in.onnx.data", Protect: m.InputFiles()})
		}, `refusing to overwrite input file`},
		{"external data not loaded", func(t *testing.T, dir string) (string, error) {
			m := tinyModel()
			setExternal(m.Graph.Initializer[0], "w.bin", "", "")
			p := filepath.Join(dir, "m.onnx")
			return p, Save(m, p, SaveOptions{})
		}, `initializer "w1": data is in an external file that was not loaded`},
		{"missing folder", func(t *testing.T, dir string) (string, error) {
			p := filepath.Join(dir, "no", "m.onnx")
			return p, Save(tinyModel(), p, SaveOptions{})
		}, "no such file or directory"},
		{"path is a folder", func(t *testing.T, dir string) (string, error) {
			return dir, Save(tinyModel(), dir, SaveOptions{})
		}, "is a directory"},
		{"bad tensor while writing the data file", func(t *testing.T, dir string) (string, error) {
			m := tinyModel()
			bad := NewFloat32("bad", []int64{1024}, seq(1024))
			bad.RawData = bad.RawData[:100]
			m.Graph.Initializer = append(m.Graph.Initializer, bad)
			p := filepath.Join(dir, "m.onnx")
			return p, Save(m, p, SaveOptions{External: ExternalAlways})
		}, `initializer "bad": raw_data has 100 bytes, dims [1024] of float32 need 4096`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p, err := c.run(t, dir)
			if err == nil || !strings.HasPrefix(err.Error(), "save "+p+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want %q", err, c.want)
			}
			// Nothing new, nothing changed, no temporary files left.
			for _, f := range listDir(t, dir) {
				if !slices.Contains([]string{"in.onnx", "in.onnx.data", "link.onnx"}, f) {
					t.Errorf("file %s left behind", f)
				}
			}
			if in := filepath.Join(dir, "in.onnx"); fileExists(in) {
				if _, err := Load(in); err != nil {
					t.Errorf("input damaged: %v", err)
				}
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Save over an existing output replaces it atomically, keeping its mode 0644.
func TestSaveReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.onnx")
	os.WriteFile(p, []byte("old"), 0o600)
	if err := Save(tinyModel(), p, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("saved file mode %v, %v; want 0644", fi.Mode(), err)
	}
	if _, err := Load(p); err != nil {
		t.Error(err)
	}
}
