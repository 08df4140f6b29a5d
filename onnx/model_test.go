package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
					AttrTensor("value", NewInt64("", []int64{2}, []int64{-1, 16}))}},
				{Name: ptr("reshape"), OpType: ptr("Reshape"), Input: []string{"x", "s"}, Output: []string{"r"}},
				{Name: ptr("mm"), OpType: ptr("MatMul"), Input: []string{"r", "w1"}, Output: []string{"m"}},
				{Name: ptr("add"), OpType: ptr("Add"), Input: []string{"m", "b1"}, Output: []string{"y"}},
			},
			Initializer: []*pb.TensorProto{
				NewFloat32("w1", []int64{16, 16}, seq(256)),
				NewFloat32("b1", []int64{16}, seq(16)),
			},
			Input:  []*pb.ValueInfoProto{TensorInfo("x", pb.TensorProto_FLOAT, "batch", 16)},
			Output: []*pb.ValueInfoProto{TensorInfo("y", pb.TensorProto_FLOAT, "batch", 16)},
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
	m.Graph.ValueInfo = []*pb.ValueInfoProto{TensorInfo("r", pb.TensorProto_FLOAT, "batch", 16)}
	m.Graph.SparseInitializer = []*pb.SparseTensorProto{{
		Values:  NewFloat32("sp", []int64{2}, []float32{1, 2}),
		Indices: NewInt64("sp_idx", []int64{2}, []int64{0, 5}),
		Dims:    []int64{8},
	}}
	then := &pb.GraphProto{
		Name:        ptr("then"),
		Node:        []*pb.NodeProto{{OpType: ptr("Identity"), Input: []string{"big"}, Output: []string{"o"}}},
		Initializer: []*pb.TensorProto{NewFloat32("big", []int64{512}, seq(512))},
		Output:      []*pb.ValueInfoProto{TensorInfo("o", pb.TensorProto_FLOAT, 512)},
	}
	els := &pb.GraphProto{
		Name:   ptr("else"),
		Node:   []*pb.NodeProto{{OpType: ptr("Constant"), Output: []string{"o"}, Attribute: []*pb.AttributeProto{AttrTensor("value", NewFloat32("c", []int64{512}, seq(512)))}}},
		Output: []*pb.ValueInfoProto{TensorInfo("o", pb.TensorProto_FLOAT, 512)},
	}
	m.Graph.Node = append(m.Graph.Node, &pb.NodeProto{Name: ptr("if"), OpType: ptr("If"), Input: []string{"cond"}, Output: []string{"z"}, DocString: ptr("node doc"),
		Attribute: []*pb.AttributeProto{
			AttrGraph("then_branch", then),
			AttrGraph("else_branch", els),
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
		if files := testenv.DirNames(t, dir); !slices.Equal(files, wantFiles) {
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
	m := testenv.ReadModelProto(t, path)
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
