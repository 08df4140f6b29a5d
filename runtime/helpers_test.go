package runtime_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/npy"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// Tensor literals.
func f32(shape []int, v ...float32) *runtime.Tensor {
	if v == nil {
		return mustT(runtime.Zeros(runtime.Float32, shape))
	}
	return mustT(runtime.FromSlice(shape, v))
}
func i64(shape []int, v ...int64) *runtime.Tensor  { return mustT(runtime.FromSlice(shape, v)) }
func bools(shape []int, v ...bool) *runtime.Tensor { return mustT(runtime.FromSlice(shape, v)) }
func i32(shape []int, v ...int32) *runtime.Tensor  { return mustT(runtime.FromSlice(shape, v)) }

func mustT(t *runtime.Tensor, err error) *runtime.Tensor {
	if err != nil {
		panic(err)
	}
	return t
}

func sh(d ...int) []int { return d }

// Attribute literals.
func aTensor(name string, t *runtime.Tensor) *pb.AttributeProto {
	return onnx.AttrTensor(name, encode("", t))
}

var onnxTypes = map[runtime.DType]pb.TensorProto_DataType{
	runtime.Float32: pb.TensorProto_FLOAT, runtime.Float64: pb.TensorProto_DOUBLE, runtime.Int64: pb.TensorProto_INT64,
	runtime.Int32: pb.TensorProto_INT32, runtime.Int8: pb.TensorProto_INT8, runtime.Uint8: pb.TensorProto_UINT8,
	runtime.Bool: pb.TensorProto_BOOL,
}

func encode(name string, t *runtime.Tensor) *pb.TensorProto {
	dims := make([]int64, t.Rank())
	for i, d := range t.Shape() {
		dims[i] = int64(d)
	}
	p, err := onnx.EncodeTensor(name, &onnx.Tensor{DType: onnxTypes[t.DType()], Dims: dims, Data: t.Data()})
	if err != nil {
		panic(err)
	}
	return p
}

// oneNodeModel builds a model with a single node of op. With asInits the
// inputs are initializers (so the node is folded as a constant); otherwise
// they are graph inputs, fed at run time. nil inputs are absent optional
// inputs.
func oneNodeModel(op string, opset int64, attrs []*pb.AttributeProto, inputs []*runtime.Tensor, nOut int, asInits bool) (*pb.ModelProto, map[string]*runtime.Tensor) {
	g := &pb.GraphProto{Name: proto.String("test")}
	n := &pb.NodeProto{OpType: proto.String(op), Name: proto.String("node_" + op), Attribute: attrs}
	feeds := map[string]*runtime.Tensor{}
	for i, t := range inputs {
		if t == nil {
			n.Input = append(n.Input, "")
			continue
		}
		name := fmt.Sprintf("in%d", i)
		n.Input = append(n.Input, name)
		if asInits {
			g.Initializer = append(g.Initializer, encode(name, t))
			continue
		}
		feeds[name] = t
		g.Input = append(g.Input, &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
			TensorType: &pb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxTypes[t.DType()]))}}}})
	}
	for i := range nOut {
		name := fmt.Sprintf("out%d", i)
		n.Output = append(n.Output, name)
		g.Output = append(g.Output, &pb.ValueInfoProto{Name: proto.String(name)})
	}
	g.Node = []*pb.NodeProto{n}
	return &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(opset)}}, Graph: g}, feeds
}

// runOne runs op once with fed inputs and once with constant inputs, checks
// both give the same, and returns the outputs.
func runOne(op string, opset int64, attrs []*pb.AttributeProto, inputs []*runtime.Tensor, nOut int) ([]*runtime.Tensor, error) {
	var results [2][]*runtime.Tensor
	for k, asInits := range []bool{false, true} {
		m, feeds := oneNodeModel(op, opset, attrs, inputs, nOut, asInits)
		s, err := runtime.New(m, runtime.Options{})
		if err != nil {
			return nil, err
		}
		var fetch []string
		for i := range nOut {
			fetch = append(fetch, fmt.Sprintf("out%d", i))
		}
		for run := range 2 { // the second run takes the cached (folded) path
			out, err := s.Run(feeds, fetch)
			if err != nil {
				return nil, err
			}
			res := make([]*runtime.Tensor, nOut)
			for i, f := range fetch {
				res[i] = out[f]
			}
			if run == 1 {
				if err := sameTensors(results[k], res); err != nil {
					return nil, fmt.Errorf("second run differs from first: %w", err)
				}
			}
			results[k] = res
		}
	}
	if err := sameTensors(results[0], results[1]); err != nil {
		return nil, fmt.Errorf("constant inputs give another result than fed inputs: %w", err)
	}
	return results[0], nil
}

func sameTensors(a, b []*runtime.Tensor) error {
	for i := range a {
		if err := closeTo(a[i], b[i], 0); err != nil {
			return fmt.Errorf("output %d: %w", i, err)
		}
	}
	return nil
}

// closeTo compares dtype, shape and values (floats within rel, NaN equal NaN).
func closeTo(got, want *runtime.Tensor, rel float64) error {
	if got == nil || want == nil {
		if got != want {
			return fmt.Errorf("got %v, want %v", got, want)
		}
		return nil
	}
	if got.DType() != want.DType() {
		return fmt.Errorf("dtype %v, want %v", got.DType(), want.DType())
	}
	if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape()) {
		return fmt.Errorf("shape %v, want %v", got.Shape(), want.Shape())
	}
	switch g := got.Data().(type) {
	case []float32:
		w := want.Float32Data()
		for i := range g {
			if !floatClose(float64(g[i]), float64(w[i]), rel) {
				return fmt.Errorf("element %d: got %v, want %v", i, g[i], w[i])
			}
		}
	case []float64:
		w := want.Float64Data()
		for i := range g {
			if !floatClose(g[i], w[i], rel) {
				return fmt.Errorf("element %d: got %v, want %v", i, g[i], w[i])
			}
		}
	default:
		if fmt.Sprint(got.Data()) != fmt.Sprint(want.Data()) {
			return fmt.Errorf("got %v, want %v", got.Data(), want.Data())
		}
	}
	return nil
}

func floatClose(g, w, rel float64) bool {
	if math.IsNaN(w) {
		return math.IsNaN(g)
	}
	if math.IsInf(w, 0) {
		return g == w
	}
	return math.Abs(g-w) <= rel*math.Max(math.Abs(w), 1e-30) || g == w
}

// opCase is one hand-computed op test.
type opCase struct {
	name    string
	op      string
	opset   int64 // 0: 17
	attrs   []*pb.AttributeProto
	in      []*runtime.Tensor
	want    []*runtime.Tensor
	wantErr string
	rel     float64 // 0: 1e-6
}

func runOpCases(t *testing.T, cases []opCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.op+"/"+c.name, func(t *testing.T) {
			opset := c.opset
			if opset == 0 {
				opset = 17
			}
			n := len(c.want)
			if n == 0 {
				n = 1
			}
			got, err := runOne(c.op, opset, c.attrs, c.in, n)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rel := c.rel
			if rel == 0 {
				rel = 1e-6
			}
			for i, w := range c.want {
				if err := closeTo(got[i], w, rel); err != nil {
					t.Errorf("output %d: %v", i, err)
				}
			}
		})
	}
}

// softmaxRef turns the scores sc into softmax(sc) in place, in float64, as
// the attention references compute it: exp(sc − max) / sum.
func softmaxRef(sc []float64) {
	mx := math.Inf(-1)
	for _, v := range sc {
		mx = math.Max(mx, v)
	}
	var sum float64
	for j := range sc {
		sc[j] = math.Exp(sc[j] - mx)
		sum += sc[j]
	}
	for j := range sc {
		sc[j] /= sum
	}
}

// ortTensors runs the model file path in onnxruntime on feeds and returns
// its outputs as float32 tensors.
func ortTensors(t *testing.T, ort *judge.Runtime, path string, feeds map[string]*runtime.Tensor) map[string]*runtime.Tensor {
	t.Helper()
	in := map[string]*npy.Array{}
	for name, v := range feeds {
		a, err := npy.New(v.Shape(), v.Data())
		if err != nil {
			t.Fatal(err)
		}
		in[name] = a
	}
	res, err := ort.Run(path, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*runtime.Tensor{}
	for name, a := range res {
		v, err := a.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = f32(a.Shape, v...)
	}
	return out
}
