package modeldiff

import (
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/testmodel"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/slm"
)

func loadShared(t *testing.T, name string) (*onnx.Model, *discover.Stack) {
	t.Helper()
	return testmodel.Shared(t, name)
}

func names(ts []Tensor) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

func sorted(xs []string) []string {
	out := append([]string{}, xs...)
	sort.Strings(out)
	return slices.Compact(out)
}

// TestPrunedSharedModel merges windows 2..3 and 5..6 of llama8 (paper rule)
// and checks that the diff names exactly what the merge did, with and without
// onnxslm's metadata in the result.
func TestPrunedSharedModel(t *testing.T) {
	a, st := loadShared(t, "llama8")
	windows := []rewrite.Window{{Window: slm.Window{Low: 2, High: 3}}, {Window: slm.Window{Low: 5, High: 6}}}
	// What the merge must have removed, derived from the layers' parameter
	// slots: every tensor of the removed layers, and the projection weights of
	// the layers the windows merge into (replaced by merged tensors).
	var wantRemoved []string
	wantReplaced := map[string]bool{}
	for _, l := range []int{3, 6} {
		for _, p := range st.Layers[l].Params {
			wantRemoved = append(wantRemoved, p.Name)
		}
	}
	for _, l := range []int{2, 5} {
		for _, p := range st.Layers[l].Params {
			if p.Kind.IsProjection() {
				wantRemoved = append(wantRemoved, p.Name)
				wantReplaced[p.Name] = true
			}
		}
	}
	for _, omit := range []bool{false, true} {
		res, err := rewrite.Merge(a.Proto, st, rewrite.Plan{Rule: rewrite.Paper, Windows: windows},
			rewrite.Options{Meta: rewrite.Meta{Version: "test", Method: "slm", Omit: omit}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := Compare(a, &onnx.Model{Proto: res.Model})
		if err != nil {
			t.Fatal(err)
		}
		wantSource := "metadata"
		if omit {
			wantSource = "weights"
		}
		if d.Identical {
			t.Errorf("omit=%v: identical, want differences", omit)
		}
		if got, want := names(d.Initializers.Added), sorted(res.NewInitializers); !reflect.DeepEqual(got, want) {
			t.Errorf("omit=%v: added initializers: got %v, want %v", omit, got, want)
		}
		if got, want := names(d.Initializers.Removed), sorted(wantRemoved); !reflect.DeepEqual(got, want) {
			t.Errorf("omit=%v: removed initializers: got %v, want %v", omit, got, want)
		}
		if len(d.Initializers.Changed) != 0 {
			t.Errorf("omit=%v: changed in place: got %v, want none", omit, d.Initializers.Changed)
		}
		if got, want := len(d.Initializers.Replaced), len(wantReplaced); got != want {
			t.Errorf("omit=%v: replaced: got %d, want %d", omit, got, want)
		}
		for _, r := range d.Initializers.Replaced {
			if !wantReplaced[r.A.Name] {
				t.Errorf("omit=%v: replaced %s → %s: %s is not a merged projection", omit, r.A.Name, r.B.Name, r.A.Name)
			}
			want := relChange(t, a.Proto, r.A.Name, res.Model, r.B.Name)
			if r.RelChange == nil || math.Abs(*r.RelChange-want) > 1e-9 {
				t.Errorf("omit=%v: replaced %s: rel change got %v, want %v", omit, r.A.Name, r.RelChange, want)
			}
		}
		dd := d.Decoder
		if dd == nil {
			t.Fatalf("omit=%v: no decoder diff", omit)
		}
		if dd.LayersA != 8 || dd.LayersB != 6 {
			t.Errorf("omit=%v: layers %d → %d, want 8 → 6", omit, dd.LayersA, dd.LayersB)
		}
		if !reflect.DeepEqual(dd.KeptFrom, res.KeptFrom) || dd.KeptFromSource != wantSource {
			t.Errorf("omit=%v: kept from %v (%s), want %v (%s)", omit, dd.KeptFrom, dd.KeptFromSource, res.KeptFrom, wantSource)
		}
		if got, want := dd.RemovedLayers, []int{3, 6}; !reflect.DeepEqual(got, want) {
			t.Errorf("omit=%v: removed layers %v, want %v", omit, got, want)
		}
		if got, want := dd.Windows, [][2]int{{2, 3}, {5, 6}}; !reflect.DeepEqual(got, want) {
			t.Errorf("omit=%v: windows %v, want %v", omit, got, want)
		}
		if len(dd.Fused) != 2 || dd.Fused[0].Layer != 2 || dd.Fused[0].From != 2 || dd.Fused[1].Layer != 4 || dd.Fused[1].From != 5 {
			t.Fatalf("omit=%v: fused %+v, want B layers 2 (from 2) and 4 (from 5)", omit, dd.Fused)
		}
		for _, f := range dd.Fused {
			if f.Window == nil || f.Window[0] != f.From || f.Window[1] != f.From+1 {
				t.Errorf("omit=%v: fused layer %d: window %v, want [%d %d]", omit, f.Layer, f.Window, f.From, f.From+1)
			}
			var got []string
			for _, ft := range f.Tensors {
				if !ft.New {
					t.Errorf("omit=%v: fused tensor %s not marked new", omit, ft.B)
				}
				got = append(got, ft.A)
			}
			var want []string
			for _, p := range st.Layers[f.From].Params {
				if p.Kind.IsProjection() {
					want = append(want, p.Name)
				}
			}
			if !reflect.DeepEqual(sorted(got), sorted(want)) {
				t.Errorf("omit=%v: fused layer %d tensors %v, want the projections %v", omit, f.Layer, got, want)
			}
		}
		if got, want := d.A.Parameters-d.B.Parameters, st.Layers[3].NumParams()+st.Layers[6].NumParams(); got != want {
			t.Errorf("omit=%v: parameters removed: got %d, want %d", omit, got, want)
		}
	}
}

func relChange(t *testing.T, ma *pb.ModelProto, na string, mb *pb.ModelProto, nb string) float64 {
	t.Helper()
	a, b := testmodel.Floats(t, ma, na), testmodel.Floats(t, mb, nb)
	var d, n float64
	for i := range a {
		d += (float64(b[i]) - float64(a[i])) * (float64(b[i]) - float64(a[i]))
		n += float64(a[i]) * float64(a[i])
	}
	return math.Sqrt(d / n)
}

// TestLayersMatchedByWeights: without metadata, the layers kept are found by
// their tensors whatever the rewrite did (the authors' rule takes projection
// weights from the top of the window; removal keeps layers unchanged).
func TestLayersMatchedByWeights(t *testing.T) {
	a, st := loadShared(t, "gpt2_6")
	cases := []struct {
		name        string
		plan        rewrite.Plan
		keptFrom    []int
		fused       []int // B layers
		sameAsLayer int   // for a projection of the first fused layer; -1: none
	}{
		{"code rule", rewrite.Plan{Rule: rewrite.Code, Windows: []rewrite.Window{{Window: slm.Window{Low: 1, High: 2}}, {Window: slm.Window{Low: 3, High: 4}}}}, []int{0, 1, 3, 5}, []int{1, 2}, 2},
		{"drop rule", rewrite.Plan{Rule: rewrite.Drop, Windows: []rewrite.Window{{Window: slm.Window{Low: 2, High: 4}}}}, []int{0, 1, 2, 5}, nil, -1},
		{"removal", rewrite.Plan{Remove: []int{1, 4}}, []int{0, 2, 3, 5}, nil, -1},
	}
	for _, c := range cases {
		res, err := rewrite.Merge(a.Proto, st, c.plan, rewrite.Options{Meta: rewrite.Meta{Omit: true}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		d, err := Compare(a, &onnx.Model{Proto: res.Model})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		dd := d.Decoder
		if dd == nil {
			t.Fatalf("%s: no decoder diff", c.name)
		}
		if !reflect.DeepEqual(dd.KeptFrom, c.keptFrom) || dd.KeptFromSource != "weights" {
			t.Errorf("%s: kept from %v (%s), want %v (weights)", c.name, dd.KeptFrom, dd.KeptFromSource, c.keptFrom)
		}
		var fused []int
		for _, f := range dd.Fused {
			fused = append(fused, f.Layer)
		}
		if !slices.Equal(fused, c.fused) {
			t.Errorf("%s: fused layers %v, want %v", c.name, fused, c.fused)
		}
		if c.sameAsLayer >= 0 && len(dd.Fused) > 0 {
			found := false
			for _, ft := range dd.Fused[0].Tensors {
				if ft.SameAsLayer != nil && *ft.SameAsLayer == c.sameAsLayer && !ft.New {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no tensor of fused layer %d taken from layer %d: %+v", c.name, dd.Fused[0].Layer, c.sameAsLayer, dd.Fused[0].Tensors)
			}
		}
	}
}

// TestSelfAndStorage: a model against itself, and against the same model
// stored with external data, has no differences.
func TestSelfAndStorage(t *testing.T) {
	a, _ := loadShared(t, "gpt2_6")
	d, err := Compare(a, a)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Identical {
		t.Errorf("model against itself: not identical: %+v", d)
	}
	if d.Decoder == nil || !reflect.DeepEqual(d.Decoder.KeptFrom, []int{0, 1, 2, 3, 4, 5}) || len(d.Decoder.Fused) != 0 || len(d.Decoder.RemovedLayers) != 0 {
		t.Errorf("model against itself: decoder %+v, want every layer kept unchanged", d.Decoder)
	}
	path := filepath.Join(t.TempDir(), "ext.onnx")
	if err := onnx.Save(a.Proto, path, onnx.SaveOptions{External: onnx.ExternalAlways}); err != nil {
		t.Fatal(err)
	}
	b, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err = Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Identical {
		t.Errorf("inline vs external data: not identical: header %v, initializers %+v, other %v", d.Header, d.Initializers.Changed, d.Other)
	}
	if len(d.B.Files) != 2 || d.B.Files[1].Bytes <= 0 || d.B.FileBytes != d.B.Files[0].Bytes+d.B.Files[1].Bytes {
		t.Errorf("external data files: got %+v (total %d), want the model and its .data file", d.B.Files, d.B.FileBytes)
	}
}

// tiny is a small hand-made model: y = Relu(x·W + b), x [batch, 4].
func tiny() *pb.ModelProto {
	dim := func(v int64, p string) *pb.TensorShapeProto_Dimension {
		if p != "" {
			return &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: p}}
		}
		return &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	value := func(name string, dt pb.TensorProto_DataType, dims ...*pb.TensorShapeProto_Dimension) *pb.ValueInfoProto {
		return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: &pb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(dt)), Shape: &pb.TensorShapeProto{Dim: dims}}}}}
	}
	w := make([]float32, 16)
	for i := range w {
		w[i] = float32(i%5) - 2
	}
	return &pb.ModelProto{
		IrVersion:       proto.Int64(8),
		ProducerName:    proto.String("hand"),
		ProducerVersion: proto.String("1"),
		OpsetImport:     []*pb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		MetadataProps: []*pb.StringStringEntryProto{
			{Key: proto.String("author"), Value: proto.String("test")},
			{Key: proto.String("license"), Value: proto.String("MIT")},
		},
		Graph: &pb.GraphProto{
			Name: proto.String("tiny"),
			Node: []*pb.NodeProto{
				{Name: proto.String("mm"), OpType: proto.String("MatMul"), Input: []string{"x", "W"}, Output: []string{"xw"}},
				{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"xw", "b"}, Output: []string{"z"}},
				{Name: proto.String("relu"), OpType: proto.String("Relu"), Input: []string{"z"}, Output: []string{"y"}},
			},
			Initializer: []*pb.TensorProto{
				onnx.NewFloat32("W", []int64{4, 4}, w),
				onnx.NewFloat32("b", []int64{4}, []float32{1, 2, 3, 4}),
			},
			Input:  []*pb.ValueInfoProto{value("x", pb.TensorProto_FLOAT, dim(0, "batch"), dim(4, ""))},
			Output: []*pb.ValueInfoProto{value("y", pb.TensorProto_FLOAT, dim(0, "batch"), dim(4, ""))},
		},
	}
}

func TestTinyChanges(t *testing.T) {
	cases := []struct {
		name   string
		change func(m *pb.ModelProto)
		check  func(t *testing.T, d *Diff)
	}{
		{"nothing", func(m *pb.ModelProto) {}, func(t *testing.T, d *Diff) {
			if !d.Identical {
				t.Errorf("got differences, want none: %+v", d)
			}
		}},
		{"input added", func(m *pb.ModelProto) {
			m.Graph.Input = append(m.Graph.Input, proto.Clone(m.Graph.Input[0]).(*pb.ValueInfoProto))
			m.Graph.Input[1].Name = proto.String("mask")
		}, func(t *testing.T, d *Diff) {
			if len(d.Inputs.Added) != 1 || d.Inputs.Added[0].Name != "mask" || len(d.Inputs.Removed)+len(d.Inputs.Changed) != 0 {
				t.Errorf("inputs: got %+v, want mask added", d.Inputs)
			}
		}},
		{"input renamed", func(m *pb.ModelProto) {
			m.Graph.Input[0].Name = proto.String("x2")
			m.Graph.Node[0].Input[0] = "x2"
		}, func(t *testing.T, d *Diff) {
			if len(d.Inputs.Added) != 1 || len(d.Inputs.Removed) != 1 || d.Inputs.Removed[0].Name != "x" {
				t.Errorf("inputs: got %+v, want x removed and x2 added", d.Inputs)
			}
			if len(d.Nodes.Changed) != 1 || !slices.Equal(d.Nodes.Changed[0].Parts, []string{"inputs"}) || len(d.Nodes.Ops) != 0 {
				t.Errorf("nodes: got %+v, want mm's inputs changed", d.Nodes)
			}
		}},
		{"output shape and dtype", func(m *pb.ModelProto) {
			tt := m.Graph.Output[0].Type.GetTensorType()
			tt.ElemType = proto.Int32(int32(pb.TensorProto_FLOAT16))
			tt.Shape.Dim[0].Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: 1}
		}, func(t *testing.T, d *Diff) {
			c := d.Outputs.Changed
			if len(c) != 1 || c[0].A.DType != "float32" || c[0].B.DType != "float16" || c[0].A.Shape[0].String() != "batch" || c[0].B.Shape[0].String() != "1" {
				t.Errorf("outputs: got %+v, want y float32 [batch, 4] → float16 [1, 4]", d.Outputs)
			}
		}},
		{"metadata", func(m *pb.ModelProto) {
			m.MetadataProps = []*pb.StringStringEntryProto{
				{Key: proto.String("author"), Value: proto.String("other")},
				{Key: proto.String("onnxslm.method"), Value: proto.String("slm")},
			}
		}, func(t *testing.T, d *Diff) {
			var got []string
			for _, c := range d.Metadata {
				got = append(got, c.Key+":"+deref(c.A)+">"+deref(c.B))
			}
			want := []string{"author:test>other", "license:MIT><nil>", "onnxslm.method:<nil>>slm"}
			if !slices.Equal(got, want) {
				t.Errorf("metadata: got %v, want %v", got, want)
			}
		}},
		{"opsets, IR version, producer", func(m *pb.ModelProto) {
			m.OpsetImport[0].Version = proto.Int64(18)
			m.OpsetImport = append(m.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)})
			m.IrVersion = proto.Int64(9)
			m.ProducerName = proto.String("onnxslm")
		}, func(t *testing.T, d *Diff) {
			if got, want := d.Opsets, []OpsetChange{{"ai.onnx", 17, 18}, {"com.microsoft", 0, 1}}; !reflect.DeepEqual(got, want) {
				t.Errorf("opsets: got %v, want %v", got, want)
			}
			if got, want := d.Header, []FieldChange{{"ir_version", "8", "9"}, {"producer_name", "hand", "onnxslm"}}; !reflect.DeepEqual(got, want) {
				t.Errorf("header: got %v, want %v", got, want)
			}
		}},
		{"node added and removed", func(m *pb.ModelProto) {
			m.Graph.Node[2] = &pb.NodeProto{Name: proto.String("gelu"), OpType: proto.String("Gelu"), Domain: proto.String("com.microsoft"), Input: []string{"z"}, Output: []string{"y"}}
		}, func(t *testing.T, d *Diff) {
			if got, want := d.Nodes.Ops, []OpCount{{"Relu", 1, 0}, {"com.microsoft:Gelu", 0, 1}}; !reflect.DeepEqual(got, want) {
				t.Errorf("ops: got %v, want %v", got, want)
			}
			if len(d.Nodes.Added) != 1 || d.Nodes.Added[0].Name != "gelu" || len(d.Nodes.Removed) != 1 || d.Nodes.Removed[0].Name != "relu" {
				t.Errorf("nodes: got %+v, want gelu added, relu removed", d.Nodes)
			}
		}},
		{"attribute", func(m *pb.ModelProto) {
			m.Graph.Node[2].Attribute = []*pb.AttributeProto{onnx.AttrFloat("alpha", 0.1)}
		}, func(t *testing.T, d *Diff) {
			if len(d.Nodes.Changed) != 1 || !slices.Equal(d.Nodes.Changed[0].Parts, []string{"attributes"}) {
				t.Errorf("nodes: got %+v, want relu's attributes changed", d.Nodes.Changed)
			}
		}},
		{"initializer scaled", func(m *pb.ModelProto) {
			w, _ := onnx.Float32s(m.Graph.Initializer[0])
			w2 := make([]float32, len(w))
			for i := range w {
				w2[i] = 3 * w[i]
			}
			m.Graph.Initializer[0] = onnx.NewFloat32("W", []int64{4, 4}, w2)
		}, func(t *testing.T, d *Diff) {
			c := d.Initializers.Changed
			if len(c) != 1 || c[0].Name != "W" || c[0].RelChange == nil || math.Abs(*c[0].RelChange-2) > 1e-12 {
				t.Errorf("initializers: got %+v, want W with rel change 2 (×3)", c)
			}
		}},
		{"initializer reshaped, added, removed", func(m *pb.ModelProto) {
			m.Graph.Initializer[1] = onnx.NewFloat32("b", []int64{1, 4}, []float32{1, 2, 3, 4})
			m.Graph.Initializer = append(m.Graph.Initializer, onnx.NewInt64("shape", []int64{2}, []int64{-1, 4}))
			m.Graph.Initializer[0].Name = proto.String("W2")
			m.Graph.Node[0].Input[1] = "W2"
		}, func(t *testing.T, d *Diff) {
			in := d.Initializers
			if len(in.Changed) != 1 || in.Changed[0].Name != "b" || in.Changed[0].RelChange != nil || !slices.Equal(in.Changed[0].B.Dims, []int64{1, 4}) {
				t.Errorf("changed: got %+v, want b reshaped without a rel change", in.Changed)
			}
			if got, want := names(in.Added), []string{"W2", "shape"}; !slices.Equal(got, want) {
				t.Errorf("added: got %v, want %v", got, want)
			}
			if got, want := names(in.Removed), []string{"W"}; !slices.Equal(got, want) {
				t.Errorf("removed: got %v, want %v", got, want)
			}
			if len(in.Replaced) != 1 || in.Replaced[0].A.Name != "W" || in.Replaced[0].B.Name != "W2" || in.Replaced[0].RelChange == nil || *in.Replaced[0].RelChange != 0 {
				t.Errorf("replaced: got %+v, want W → W2 unchanged in value", in.Replaced)
			}
		}},
		{"initializer to float16", func(m *pb.ModelProto) {
			h := []uint16{onnx.Float32ToFloat16(1), onnx.Float32ToFloat16(2), onnx.Float32ToFloat16(3), onnx.Float32ToFloat16(4.01)}
			x, err := onnx.EncodeTensor("b", &onnx.Tensor{DType: pb.TensorProto_FLOAT16, Dims: []int64{4}, Data: h})
			if err != nil {
				panic(err)
			}
			m.Graph.Initializer[1] = x
		}, func(t *testing.T, d *Diff) {
			c := d.Initializers.Changed
			// Only the last value moves: to the float16 nearest 4.01. ‖a‖ = √30.
			want := (float64(onnx.Float16ToFloat32(onnx.Float32ToFloat16(4.01))) - 4) / math.Sqrt(30)
			if len(c) != 1 || c[0].B.DType != "float16" || c[0].RelChange == nil || math.Abs(*c[0].RelChange-want) > 1e-9 || want == 0 {
				t.Errorf("initializers: got %+v, want b float32 → float16 with rel change %.6g", c, want)
			}
		}},
		{"same values, other encoding", func(m *pb.ModelProto) {
			w, _ := onnx.Float32s(m.Graph.Initializer[0])
			m.Graph.Initializer[0] = &pb.TensorProto{Name: proto.String("W"), DataType: proto.Int32(int32(pb.TensorProto_FLOAT)), Dims: []int64{4, 4}, FloatData: append([]float32{}, w...)}
		}, func(t *testing.T, d *Diff) {
			if !d.Identical {
				t.Errorf("float_data vs raw_data: got differences %+v, want none", d.Initializers)
			}
		}},
		{"node order", func(m *pb.ModelProto) {
			m.Graph.Node[0], m.Graph.Node[1] = m.Graph.Node[1], m.Graph.Node[0]
		}, func(t *testing.T, d *Diff) {
			if d.Identical || !slices.Equal(d.Other, []string{"node order"}) {
				t.Errorf("other: got %v, want [node order]", d.Other)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := tiny(), tiny()
			c.change(b)
			d, err := Compare(&onnx.Model{Proto: a}, &onnx.Model{Proto: b})
			if err != nil {
				t.Fatal(err)
			}
			if d.Decoder != nil || d.A.NotDecoder == "" {
				t.Errorf("tiny model: got a decoder diff %+v (A: %q), want none", d.Decoder, d.A.NotDecoder)
			}
			c.check(t, d)
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
