package runtime_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/judge"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
)

// Each contrib and quantization op against a plain Go reference written from
// onnxruntime's documented semantics (float64 where it computes in float).

// msModel is a one-node model of a com.microsoft op (domain "") with fed
// inputs (nil: absent) and the named outputs ("" absent).
func msModel(op, domain string, attrs []*pb.AttributeProto, inputs []*runtime.Tensor, outputs []string) (*pb.ModelProto, map[string]*runtime.Tensor) {
	opset := int64(21)
	if op == "RMSNormalization" {
		opset = 23
	}
	m, feeds := oneNodeModel(op, opset, attrs, inputs, 0, false)
	n := m.Graph.Node[0]
	n.Domain = proto.String(domain)
	n.Output = outputs
	for _, o := range outputs {
		if o != "" {
			m.Graph.Output = append(m.Graph.Output, &pb.ValueInfoProto{Name: proto.String(o)})
		}
	}
	if domain != "" {
		m.OpsetImport = append(m.OpsetImport, &pb.OperatorSetIdProto{Domain: proto.String(domain), Version: proto.Int64(1)})
	}
	return m, feeds
}

// runModel makes a session of m and returns its outputs on feeds.
func runModel(t *testing.T, m *pb.ModelProto, feeds map[string]*runtime.Tensor) map[string]*runtime.Tensor {
	t.Helper()
	_, out := newRun(t, m, runtime.Options{}, feeds)
	return out
}

// newRun makes a session of m with opts and runs it once on feeds.
func newRun(t testing.TB, m *pb.ModelProto, opts runtime.Options, feeds map[string]*runtime.Tensor) (*runtime.Session, map[string]*runtime.Tensor) {
	t.Helper()
	s, err := runtime.New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(feeds, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, out
}

func randT(r *rand.Rand, shape ...int) *runtime.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return f32(shape, v...)
}

// randInt8s is n uniform int8 values.
func randInt8s(r *rand.Rand, n int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(r.IntN(256) - 128)
	}
	return v
}

func within(t *testing.T, what string, got *runtime.Tensor, want []float64, rel float64) {
	t.Helper()
	g := got.Float32Data()
	if len(g) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(g), len(want))
	}
	d, s := stats.MaxAbsDiff(g, want), stats.MaxAbs(want)
	if d > rel*math.Max(s, 1e-30) {
		t.Errorf("%s: max |got − want| = %.3g, max |want| = %.3g (want ≤ %g relative)", what, d, s, rel)
	}
}

func TestSimplifiedLayerNorms(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	const d = 24
	x, skip, g, bias, beta := randT(r, 2, 3, d), randT(r, 2, 3, d), randT(r, d), randT(r, d), randT(r, d)
	const eps = 1e-6
	ref := func(sum bool, full bool, withBias bool) (y, s []float64) {
		xd, kd := x.Float32Data(), skip.Float32Data()
		for row := range 6 {
			v := make([]float64, d)
			var mean, ss float64
			for i := range v {
				v[i] = float64(xd[row*d+i])
				if sum {
					v[i] += float64(kd[row*d+i])
					if withBias {
						v[i] += float64(bias.Float32Data()[i])
					}
				}
				mean += v[i] / d
			}
			for i := range v {
				if full {
					ss += (v[i] - mean) * (v[i] - mean)
				} else {
					ss += v[i] * v[i]
				}
			}
			den := math.Sqrt(ss/d + eps)
			for i := range v {
				c := v[i]
				if full {
					c -= mean
				}
				o := c / den * float64(g.Float32Data()[i])
				if full {
					o += float64(beta.Float32Data()[i])
				}
				y, s = append(y, o), append(s, v[i])
			}
		}
		return
	}
	for _, domain := range []string{"", "com.microsoft", "rms"} {
		op := "SimplifiedLayerNormalization"
		if domain == "rms" {
			op, domain = "RMSNormalization", "" // opset 23, the same computation
		}
		m, f := msModel(op, domain, []*pb.AttributeProto{onnx.AttrFloat("epsilon", eps), onnx.AttrInt("axis", -1), onnx.AttrInt("stash_type", 1)},
			[]*runtime.Tensor{x, g}, []string{"y"})
		y, _ := ref(false, false, false)
		within(t, op+" "+domain, runModel(t, m, f)["y"], y, 1e-6)
	}
	m, f := msModel("SkipSimplifiedLayerNormalization", "com.microsoft", []*pb.AttributeProto{onnx.AttrFloat("epsilon", eps)},
		[]*runtime.Tensor{x, skip, g}, []string{"y", "", "", "sum"})
	out := runModel(t, m, f)
	y, s := ref(true, false, false)
	within(t, "SkipSimplifiedLayerNormalization", out["y"], y, 1e-6)
	within(t, "SkipSimplifiedLayerNormalization sum", out["sum"], s, 1e-7)
	m, f = msModel("SkipSimplifiedLayerNormalization", "com.microsoft", []*pb.AttributeProto{onnx.AttrFloat("epsilon", eps)},
		[]*runtime.Tensor{x, skip, g, bias}, []string{"y"})
	y, _ = ref(true, false, true)
	within(t, "SkipSimplifiedLayerNormalization with bias", runModel(t, m, f)["y"], y, 1e-6)
	m, f = msModel("SkipLayerNormalization", "com.microsoft", []*pb.AttributeProto{onnx.AttrFloat("epsilon", eps)},
		[]*runtime.Tensor{x, skip, g, beta, bias}, []string{"y", "", "", "sum"})
	out = runModel(t, m, f)
	y, s = ref(true, true, true)
	within(t, "SkipLayerNormalization", out["y"], y, 1e-6)
	within(t, "SkipLayerNormalization sum", out["sum"], s, 1e-7)
	// The saved statistics are refused, not left unset.
	m, _ = msModel("SkipSimplifiedLayerNormalization", "com.microsoft", nil, []*runtime.Tensor{x, skip, g}, []string{"y", "", "inv"})
	if _, err := runtime.New(m, runtime.Options{}); err == nil || !strings.Contains(err.Error(), "output 2") {
		t.Errorf("inv_std_var output: err = %v, want a refusal", err)
	}
}

func TestGelus(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	x, b := randT(r, 3, 10), randT(r, 10)
	fast := func(v float64) float64 { return 0.5 * v * (1 + math.Tanh(0.7978845608028654*(v+0.044715*v*v*v))) }
	exact := func(v float64) float64 { return v * 0.5 * math.Erfc(-v/math.Sqrt2) }
	for _, c := range []struct {
		op   string
		in   []*runtime.Tensor
		f    func(float64) float64
		bias bool
	}{{"FastGelu", []*runtime.Tensor{x}, fast, false}, {"FastGelu", []*runtime.Tensor{x, b}, fast, true}, {"BiasGelu", []*runtime.Tensor{x, b}, exact, true}} {
		var want []float64
		for i, v := range x.Float32Data() {
			w := float64(v)
			if c.bias {
				w = float64(v + b.Float32Data()[i%10])
			}
			want = append(want, c.f(w))
		}
		m, f := msModel(c.op, "com.microsoft", nil, c.in, []string{"y"})
		within(t, fmt.Sprintf("%s bias=%v", c.op, c.bias), runModel(t, m, f)["y"], want, 1e-6)
	}
}

// gqaCase is one GroupQueryAttention configuration.
type gqaCase struct {
	name                string
	B, S, P, N, KV, H   int
	half                int // rotary: cos/sin columns (0: no rotary)
	interleaved, packed bool
	window              int
	softcap, scale      float32
}

// gqaRef computes GroupQueryAttention in float64 from its definition.
func gqaRef(c gqaCase, q, k, v, pk, pv, cos, sin []float32) (out, presK, presV []float64) {
	H, T := c.H, c.P+c.S
	qAt := func(b, s, n int) []float32 {
		if c.packed {
			o := (b*c.S+s)*(c.N+2*c.KV)*H + n*H
			return q[o : o+H]
		}
		return q[(b*c.S+s)*c.N*H+n*H:][:H]
	}
	kvAt := func(val bool, b, s, h int) []float32 {
		if c.packed {
			o := (b*c.S+s)*(c.N+2*c.KV)*H + (c.N+h)*H
			if val {
				o += c.KV * H
			}
			return q[o : o+H]
		}
		src := k
		if val {
			src = v
		}
		return src[(b*c.S+s)*c.KV*H+h*H:][:H]
	}
	rot := func(x []float32, pos int) []float64 {
		y := make([]float64, H)
		for i := range y {
			y[i] = float64(x[i])
		}
		for i := range c.half {
			a, bI := i, i+c.half
			if c.interleaved {
				a, bI = 2*i, 2*i+1
			}
			co, si := float64(cos[pos*c.half+i]), float64(sin[pos*c.half+i])
			y[a] = float64(x[a])*co - float64(x[bI])*si
			y[bI] = float64(x[bI])*co + float64(x[a])*si
		}
		return y
	}
	scale := float64(c.scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(H))
	}
	presK = make([]float64, c.B*c.KV*T*H)
	presV = make([]float64, c.B*c.KV*T*H)
	for b := range c.B {
		for h := range c.KV {
			for j := range c.P {
				for d := range H {
					o := ((b*c.KV+h)*T+j)*H + d
					presK[o] = float64(pk[((b*c.KV+h)*c.P+j)*H+d])
					presV[o] = float64(pv[((b*c.KV+h)*c.P+j)*H+d])
				}
			}
			for s := range c.S {
				kr := rot(kvAt(false, b, s, h), c.P+s)
				vr := kvAt(true, b, s, h)
				for d := range H {
					o := ((b*c.KV+h)*T+c.P+s)*H + d
					presK[o], presV[o] = kr[d], float64(vr[d])
				}
			}
		}
	}
	out = make([]float64, c.B*c.S*c.N*H)
	for b := range c.B {
		for n := range c.N {
			h := n / (c.N / c.KV)
			for s := range c.S {
				qr := rot(qAt(b, s, n), c.P+s)
				end := c.P + s + 1
				start := 0
				if c.window > 0 && end > c.window {
					start = end - c.window // the last window keys, itself included
				}
				w := make([]float64, end)
				mx := math.Inf(-1)
				for j := start; j < end; j++ {
					var dot float64
					for d := range H {
						dot += qr[d] * presK[((b*c.KV+h)*T+j)*H+d]
					}
					x := dot * scale
					if c.softcap > 0 {
						x = float64(c.softcap) * math.Tanh(x/float64(c.softcap))
					}
					w[j] = x
					mx = math.Max(mx, x)
				}
				var sum float64
				for j := start; j < end; j++ {
					w[j] = math.Exp(w[j] - mx)
					sum += w[j]
				}
				for j := start; j < end; j++ {
					for d := range H {
						out[((b*c.S+s)*c.N+n)*H+d] += w[j] / sum * presV[((b*c.KV+h)*T+j)*H+d]
					}
				}
			}
		}
	}
	return out, presK, presV
}

func gqaModel(c gqaCase, r *rand.Rand) (*pb.ModelProto, map[string]*runtime.Tensor, [7][]float32) {
	var q, k, v *runtime.Tensor
	if c.packed {
		q = randT(r, c.B, c.S, (c.N+2*c.KV)*c.H)
	} else {
		q, k, v = randT(r, c.B, c.S, c.N*c.H), randT(r, c.B, c.S, c.KV*c.H), randT(r, c.B, c.S, c.KV*c.H)
	}
	pk, pv := randT(r, c.B, c.KV, c.P, c.H), randT(r, c.B, c.KV, c.P, c.H)
	seq := make([]int32, c.B)
	for i := range seq {
		seq[i] = int32(c.P + c.S - 1)
	}
	attrs := []*pb.AttributeProto{onnx.AttrInt("num_heads", int64(c.N)), onnx.AttrInt("kv_num_heads", int64(c.KV)),
		onnx.AttrInt("local_window_size", int64(c.window)), onnx.AttrFloat("softcap", c.softcap), onnx.AttrFloat("scale", c.scale),
		onnx.AttrInt("rotary_interleaved", boolInt(c.interleaved))}
	in := []*runtime.Tensor{q, k, v, pk, pv, i32(sh(c.B), seq...), i32(sh(), int32(c.P+c.S))}
	var cos, sin []float32
	if c.half > 0 {
		attrs = append(attrs, onnx.AttrInt("do_rotary", 1))
		const maxPos = 32
		cosT, sinT := randT(r, maxPos, c.half), randT(r, maxPos, c.half)
		cos, sin = cosT.Float32Data(), sinT.Float32Data()
		in = append(in, cosT, sinT)
	}
	m, f := msModel("GroupQueryAttention", "com.microsoft", attrs, in, []string{"out", "present_key", "present_value"})
	data := [7][]float32{q.Float32Data(), nil, nil, pk.Float32Data(), pv.Float32Data(), cos, sin}
	if !c.packed {
		data[1], data[2] = k.Float32Data(), v.Float32Data()
	}
	return m, f, data
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

var gqaCases = []gqaCase{
	{name: "packed_prompt_rotary", B: 2, S: 5, N: 4, KV: 2, H: 16, half: 8, packed: true, window: -1},
	{name: "past_interleaved_softcap_window", B: 1, S: 3, P: 4, N: 4, KV: 1, H: 16, half: 8, interleaved: true, window: 2, softcap: 3, scale: 0.3},
	{name: "decode_batch_partial_rotary", B: 2, S: 1, P: 6, N: 2, KV: 2, H: 32, half: 8, window: -1},
	{name: "interleaved_past", B: 1, S: 3, P: 4, N: 4, KV: 1, H: 16, half: 8, interleaved: true, window: -1},
	{name: "softcap_past", B: 1, S: 3, P: 4, N: 4, KV: 1, H: 16, half: 8, window: -1, softcap: 3},
	{name: "window_past", B: 1, S: 3, P: 4, N: 4, KV: 1, H: 16, half: 8, window: 2},
	{name: "window_edge", B: 1, S: 3, P: 4, N: 4, KV: 2, H: 16, half: 8, window: 5},
	{name: "scale_past", B: 1, S: 3, P: 4, N: 4, KV: 1, H: 16, half: 8, window: -1, scale: 0.3},
	{name: "no_rotary_past", B: 1, S: 2, P: 3, N: 6, KV: 3, H: 16, window: -1, packed: true},
}

// TestGroupQueryAttention: output and presents against the float64
// reference, and against onnxruntime (where installed) for the same
// one-node model.
func TestGroupQueryAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, c := range gqaCases {
		t.Run(c.name, func(t *testing.T) {
			m, feeds, d := gqaModel(c, r)
			got := runModel(t, m, feeds)
			out, pk, pv := gqaRef(c, d[0], d[1], d[2], d[3], d[4], d[5], d[6])
			within(t, "output", got["out"], out, 1e-5)
			within(t, "present_key", got["present_key"], pk, 1e-6)
			within(t, "present_value", got["present_value"], pv, 1e-7)
			t.Run("onnxruntime", func(t *testing.T) { compareORT(t, m, feeds, got) })
		})
	}
}

// compareORT runs the model in onnxruntime on the same feeds and compares
// every output with got (1e-5 relative to the largest value).
func compareORT(t *testing.T, m *pb.ModelProto, feeds, got map[string]*runtime.Tensor) {
	t.Helper()
	ort := judge.ORT(t)
	path := filepath.Join(t.TempDir(), "model.onnx")
	m = proto.Clone(m).(*pb.ModelProto)
	m.IrVersion = proto.Int64(10)
	if err := onnx.Save(m, path, onnx.SaveOptions{External: onnx.ExternalNever}); err != nil {
		t.Fatal(err)
	}
	for name, v := range ortTensors(t, ort, path, feeds) {
		w := make([]float64, v.Len())
		for i, x := range v.Float32Data() {
			w[i] = float64(x)
		}
		within(t, name+" vs onnxruntime", got[name], w, 1e-5)
	}
}

// TestGQARefusals: inputs and attributes outside what is implemented are
// refused when the session is made, naming the op, node and domain.
func TestGQARefusals(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	c := gqaCases[0]
	for _, bad := range []struct {
		name string
		edit func(n *pb.NodeProto)
		want string
	}{
		{"smooth_softmax", func(n *pb.NodeProto) { n.Attribute = append(n.Attribute, onnx.AttrInt("smooth_softmax", 1)) }, "smooth_softmax"},
		{"position_ids", func(n *pb.NodeProto) { n.Input = append(n.Input, "in0") }, "position_ids"},
		{"heads", func(n *pb.NodeProto) { n.Attribute[0] = onnx.AttrInt("num_heads", 3) }, "num_heads 3"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			m, _, _ := gqaModel(c, r)
			bad.edit(m.Graph.Node[0])
			_, err := runtime.New(m, runtime.Options{})
			var ue *runtime.UnsupportedError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "domain com.microsoft, opset 1") || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("err = %v, want an UnsupportedError naming %q", err, bad.want)
			}
		})
	}
}

// TestMatMulNBitsOp: the op (bias, zero points, 3-D A) against
// modelgen.DequantizeBlocks and a float64 multiply.
func TestMatMulNBitsOp(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, c := range []struct {
		bits, K, N, block int
		asym, bias        bool
	}{{4, 64, 20, 32, false, false}, {4, 72, 33, 16, true, true}, {8, 50, 17, 32, true, false}, {8, 128, 40, 64, false, true}} {
		t.Run(fmt.Sprintf("bits%d_K%d_N%d_block%d_asym%v_bias%v", c.bits, c.K, c.N, c.block, c.asym, c.bias), func(t *testing.T) {
			w := randT(r, c.K, c.N).Float32Data()
			q, err := modelgen.QuantizeBlocks(w, c.bits, c.K, c.N, c.block, c.asym)
			if err != nil {
				t.Fatal(err)
			}
			dq, err := q.Dequantize()
			if err != nil {
				t.Fatal(err)
			}
			a := randT(r, 2, 3, c.K)
			kb := q.KBlocks()
			in := []*runtime.Tensor{a, mustT(runtime.FromSlice(sh(c.N, kb, c.block*c.bits/8), q.Packed)), f32(sh(c.N*kb), q.Scales...), nil, nil, nil}
			if c.asym {
				in[3] = mustT(runtime.FromSlice(sh(len(q.ZeroPoints)), q.ZeroPoints))
			}
			var bias []float32
			if c.bias {
				b := randT(r, c.N)
				in[5], bias = b, b.Float32Data()
			}
			for len(in) > 3 && in[len(in)-1] == nil {
				in = in[:len(in)-1]
			}
			attrs := []*pb.AttributeProto{onnx.AttrInt("K", int64(c.K)), onnx.AttrInt("N", int64(c.N)), onnx.AttrInt("bits", int64(c.bits)),
				onnx.AttrInt("block_size", int64(c.block)), onnx.AttrInt("accuracy_level", 4)}
			m, f := msModel("MatMulNBits", "com.microsoft", attrs, in, []string{"y"})
			var want []float64
			ad := a.Float32Data()
			for i := range 6 {
				for j := range c.N {
					var s float64
					for p := range c.K {
						s += float64(ad[i*c.K+p]) * float64(dq[p*c.N+j])
					}
					if bias != nil {
						s += float64(bias[j])
					}
					want = append(want, s)
				}
			}
			y := runModel(t, m, f)["y"]
			if fmt.Sprint(y.Shape()) != fmt.Sprint([]int{2, 3, c.N}) {
				t.Fatalf("shape %v", y.Shape())
			}
			within(t, "MatMulNBits", y, want, 1e-6)
		})
	}
}

// TestDynamicQuantizeLinearOp: against onnxruntime's formula written out, on
// values with ties, an all-positive and an all-zero tensor.
func TestDynamicQuantizeLinearOp(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, x := range []*runtime.Tensor{randT(r, 3, 7), f32(sh(4), 0.5, 1, 2, 255), f32(sh(2), 0, 0), f32(sh(3), -2, -1, -0.5)} {
		m, f := msModel("DynamicQuantizeLinear", "", nil, []*runtime.Tensor{x}, []string{"y", "scale", "zp"})
		out := runModel(t, m, f)
		xd := x.Float32Data()
		var lo, hi float32
		for _, v := range xd {
			lo, hi = min(lo, v), max(hi, v)
		}
		scale := float32(1)
		if hi != lo {
			scale = (hi - lo) / 255
		}
		zp := math.RoundToEven(float64(min(max(-lo/scale, 0), 255)))
		if got := out["scale"].Float32Data()[0]; got != scale {
			t.Errorf("scale %v, want %v", got, scale)
		}
		if got := out["zp"].Data().([]uint8)[0]; float64(got) != zp {
			t.Errorf("zero point %d, want %v", got, zp)
		}
		y := out["y"].Data().([]uint8)
		for i, v := range xd {
			want := uint8(min(max(math.RoundToEven(float64(v/scale))+zp, 0), 255))
			if y[i] != want {
				t.Errorf("y[%d] = %d, want %d (x %v)", i, y[i], want, v)
			}
		}
	}
}

// TestMatMulIntegerOp: exact int32 results for uint8 × int8 with zero
// points (scalar and per column) over K longer than one exact chunk.
func TestMatMulIntegerOp(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const M, K, N = 5, 600, 19
	a := make([]uint8, M*K)
	for i := range a {
		a[i] = uint8(r.IntN(256))
	}
	b := randInt8s(r, K*N)
	bz := randInt8s(r, N)
	for _, perCol := range []bool{false, true} {
		zp := bz[:1]
		if perCol {
			zp = bz
		}
		in := []*runtime.Tensor{mustT(runtime.FromSlice(sh(1, M, K), a)), mustT(runtime.FromSlice(sh(K, N), b)),
			mustT(runtime.FromSlice(sh(), []uint8{255})), mustT(runtime.FromSlice(sh(len(zp)), zp))}
		if !perCol {
			in[3] = mustT(runtime.FromSlice(sh(), zp))
		}
		m, f := msModel("MatMulInteger", "", nil, in, []string{"y"})
		y := runModel(t, m, f)["y"]
		if fmt.Sprint(y.Shape()) != fmt.Sprint([]int{1, M, N}) {
			t.Fatalf("shape %v", y.Shape())
		}
		got := y.Int32Data()
		for i := range M {
			for j := range N {
				var s int32
				for p := range K {
					s += (int32(a[i*K+p]) - 255) * (int32(b[p*N+j]) - int32(zp[j%len(zp)]))
				}
				if got[i*N+j] != s {
					t.Fatalf("per column %v: y[%d][%d] = %d, want %d", perCol, i, j, got[i*N+j], s)
				}
			}
		}
	}
}

func TestDequantizeLinearOp(t *testing.T) {
	x := mustT(runtime.FromSlice(sh(2, 3), []int8{-128, -1, 0, 1, 5, 127}))
	m, f := msModel("DequantizeLinear", "", nil, []*runtime.Tensor{x, f32(sh(), 0.5), mustT(runtime.FromSlice(sh(), []int8{3}))}, []string{"y"})
	within(t, "per tensor", runModel(t, m, f)["y"], []float64{-65.5, -2, -1.5, -1, 1, 62}, 0)
	m, f = msModel("DequantizeLinear", "", []*pb.AttributeProto{onnx.AttrInt("axis", 0)},
		[]*runtime.Tensor{x, f32(sh(2), 0.5, 2), mustT(runtime.FromSlice(sh(2), []int8{0, 1}))}, []string{"y"})
	within(t, "per axis", runModel(t, m, f)["y"], []float64{-64, -0.5, 0, 0, 8, 252}, 0)
}

// TestContribOpsNeedTheirDomain: an op of com.microsoft is found only in its
// domain, and an unknown one is refused with its domain's opset.
func TestContribOpsNeedTheirDomain(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, c := range []struct{ op, domain, want string }{
		{"GroupQueryAttention", "", "domain ai.onnx, opset 21"},
		{"NoSuchContribOp", "com.microsoft", "unsupported op NoSuchContribOp in node \"node_NoSuchContribOp\" (domain com.microsoft, opset 1)"},
	} {
		m, _ := msModel(c.op, c.domain, nil, []*runtime.Tensor{randT(r, 2)}, []string{"y"})
		_, err := runtime.New(m, runtime.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s in %q: err = %v, want one naming %q", c.op, c.domain, err, c.want)
		}
	}
	names := strings.Join(runtime.SupportedOps(), " ")
	for _, op := range []string{"com.microsoft.MatMulNBits", "com.microsoft.GroupQueryAttention", " SimplifiedLayerNormalization", "MatMulInteger"} {
		if !strings.Contains(" "+names, op) {
			t.Errorf("SupportedOps lacks %s", op)
		}
	}
}
