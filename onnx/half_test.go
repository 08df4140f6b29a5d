package onnx

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/onnx/pb"
)

// Values worked out by hand from the binary16 / bfloat16 layouts.
var float16Cases = []struct {
	bits uint16
	f    float32
}{
	{0x0000, 0},
	{0x3c00, 1},
	{0xc000, -2},
	{0x3555, 0.333251953125},         // 1.0101010101b × 2^-2
	{0x7bff, 65504},                  // largest finite
	{0x0400, 6.103515625e-05},        // 2^-14, smallest normal
	{0x03ff, 6.097555160522461e-05},  // 1023 × 2^-24, largest subnormal
	{0x0200, 3.0517578125e-05},       // 2^-15, a subnormal
	{0x0001, 5.960464477539063e-08},  // 2^-24, smallest subnormal
	{0x8001, -5.960464477539063e-08}, // its negative
	{0x7c00, float32(math.Inf(1))},   // +Inf
	{0xfc00, float32(math.Inf(-1))},  // -Inf
	{0x5640, 100},                    // 1.5625 × 2^6
	{0xd3d0, -62.5},                  // -1.953125 × 2^5
	{0x2e66, 0.0999755859375},        // nearest to 0.1
	{0x1000, 0.00048828125},          // 2^-11
	{0x7800, 32768},                  // 2^15
	{0x3bff, 0.99951171875},          // 1 - 2^-11
	{0x3c01, 1.0009765625},           // 1 + 2^-10
	{0x4248, 3.140625},               // nearest to pi
	{0x8000, float32(negZero)},       // -0
}

var negZero = math.Copysign(0, -1)

// pow2 is 2^e as a float32.
func pow2(e int) float32 { return float32(math.Ldexp(1, e)) }

// roundingCase is a float32 and the 16-bit pattern it must round to.
type roundingCase struct {
	name string
	f    float32
	want uint16
}

// checkRounding checks that narrow, named name in the messages, rounds each
// case's value to its pattern.
func checkRounding(t *testing.T, name string, narrow func(float32) uint16, cases []roundingCase) {
	t.Helper()
	for _, c := range cases {
		if got := narrow(c.f); got != c.want {
			t.Errorf("%s: %s(%g) = %#04x, want %#04x", c.name, name, c.f, got, c.want)
		}
	}
}

func TestFloat16ToFloat32(t *testing.T) {
	for _, c := range float16Cases {
		got := Float16ToFloat32(c.bits)
		if math.Float32bits(got) != math.Float32bits(c.f) {
			t.Errorf("Float16ToFloat32(%#04x) = %v (%#08x), want %v (%#08x)", c.bits, got, math.Float32bits(got), c.f, math.Float32bits(c.f))
		}
	}
	for _, h := range []uint16{0x7e00, 0x7c01, 0xfe00, 0x7fff} {
		if got := Float16ToFloat32(h); !math.IsNaN(float64(got)) {
			t.Errorf("Float16ToFloat32(%#04x) = %v, want NaN", h, got)
		}
	}
}

func TestFloat32ToFloat16(t *testing.T) {
	for _, c := range float16Cases {
		if got := Float32ToFloat16(c.f); got != c.bits {
			t.Errorf("Float32ToFloat16(%v) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
	checkRounding(t, "Float32ToFloat16", Float32ToFloat16, []roundingCase{
		{"1+2^-11 ties to even (down)", 1 + pow2(-11), 0x3c00},
		{"1+3*2^-11 ties to even (up)", 1 + 3*pow2(-11), 0x3c02},
		{"just above the tie rounds up", 1 + pow2(-11) + pow2(-20), 0x3c01},
		{"just below the tie rounds down", 1 + pow2(-11) - pow2(-22), 0x3c00},
		{"65519 rounds down to max", 65519, 0x7bff},
		{"65520 ties to even: Inf", 65520, 0x7c00},
		{"1e6 overflows to Inf", 1e6, 0x7c00},
		{"-1e6 overflows to -Inf", -1e6, 0xfc00},
		{"MaxFloat32 overflows to Inf", math.MaxFloat32, 0x7c00},
		{"2^-25 ties to even: 0", pow2(-25), 0x0000},
		{"-2^-25 ties to even: -0", -pow2(-25), 0x8000},
		{"just above 2^-25 rounds to smallest subnormal", pow2(-25) + pow2(-40), 0x0001},
		{"1.5*2^-25 rounds up", 3 * pow2(-26), 0x0001},
		{"3*2^-25 ties to even (up)", 3 * pow2(-25), 0x0002},
		{"5*2^-25 ties to even (down)", 5 * pow2(-25), 0x0002},
		{"2^-26 underflows to 0", pow2(-26), 0x0000},
		{"smallest float32 subnormal underflows", math.SmallestNonzeroFloat32, 0x0000},
		{"largest subnormal + half ulp ties to smallest normal", pow2(-14) - pow2(-25), 0x0400},
		{"a subnormal exactly", 5 * pow2(-24), 0x0005},
		{"+Inf", float32(math.Inf(1)), 0x7c00},
		{"-Inf", float32(math.Inf(-1)), 0xfc00},
	})
	for _, bits := range []uint32{0x7fc00000, 0x7f800001, 0xffc00000, 0x7fffffff} {
		h := Float32ToFloat16(math.Float32frombits(bits))
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
			t.Errorf("Float32ToFloat16(NaN %#08x) = %#04x, want a NaN", bits, h)
		}
	}
}

// Every binary16 value survives float32 and back.
func TestFloat16RoundTripAll(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := Float16ToFloat32(h)
		back := Float32ToFloat16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("Float32ToFloat16(Float16ToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

// Float32ToFloat16 picks the nearest binary16 value, ties to even: checked on
// random float32 values against their neighbours, in float64 arithmetic.
func TestFloat32ToFloat16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var f float32
		if r.IntN(2) == 0 {
			f = math.Float32frombits(r.Uint32())
		} else {
			f = float32(r.NormFloat64() * math.Ldexp(1, r.IntN(50)-30))
		}
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			continue
		}
		h := Float32ToFloat16(f)
		got := float64(Float16ToFloat32(h))
		x := float64(f)
		mag := h & 0x7fff
		if mag == 0x7c00 { // Inf: only if |x| >= 65520
			if math.Abs(x) < 65520 {
				t.Fatalf("Float32ToFloat16(%g) = Inf", f)
			}
			continue
		}
		if math.Signbit(got) != math.Signbit(x) {
			t.Fatalf("Float32ToFloat16(%g) = %#04x has the wrong sign", f, h)
		}
		for _, nb := range []uint16{mag - 1, mag + 1} {
			if nb > 0x7bff || mag == 0 && nb == 0xffff {
				continue
			}
			other := float64(Float16ToFloat32(nb | h&0x8000))
			dg, do := math.Abs(x-got), math.Abs(x-other)
			if do < dg || do == dg && h&1 == 1 {
				t.Fatalf("Float32ToFloat16(%g) = %#04x (%g), but %#04x (%g) is nearer or the even tie", f, h, got, nb|h&0x8000, other)
			}
		}
	}
}

func TestBFloat16(t *testing.T) {
	exact := []struct {
		bits uint16
		f    float32
	}{
		{0x0000, 0},
		{0x8000, float32(negZero)},
		{0x3f80, 1},
		{0xc000, -2},
		{0x4049, 3.140625},
		{0x7f7f, 3.3895313892515355e38},  // largest finite
		{0x0080, 1.1754943508222875e-38}, // smallest normal, 2^-126
		{0x0001, 9.183549615799121e-41},  // smallest subnormal, 2^-133
		{0x7f80, float32(math.Inf(1))},
		{0xff80, float32(math.Inf(-1))},
	}
	for _, c := range exact {
		if got := BFloat16ToFloat32(c.bits); math.Float32bits(got) != math.Float32bits(c.f) {
			t.Errorf("BFloat16ToFloat32(%#04x) = %v, want %v", c.bits, got, c.f)
		}
		if got := Float32ToBFloat16(c.f); got != c.bits {
			t.Errorf("Float32ToBFloat16(%v) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
	checkRounding(t, "Float32ToBFloat16", Float32ToBFloat16, []roundingCase{
		{"1+2^-8 ties to even (down)", 1 + pow2(-8), 0x3f80},
		{"1+3*2^-8 ties to even (up)", 1 + 3*pow2(-8), 0x3f82},
		{"just above the tie rounds up", 1 + pow2(-8) + pow2(-20), 0x3f81},
		{"MaxFloat32 rounds to Inf", math.MaxFloat32, 0x7f80},
		{"0.1", 0.1, 0x3dcd},
		{"subnormal tie to even", math.Float32frombits(0x00018000), 0x0002},
	})
	for _, bits := range []uint32{0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff} {
		h := Float32ToBFloat16(math.Float32frombits(bits))
		if !math.IsNaN(float64(BFloat16ToFloat32(h))) {
			t.Errorf("Float32ToBFloat16(NaN %#08x) = %#04x, not a NaN", bits, h)
		}
	}
	for i := range 1 << 16 {
		h := uint16(i)
		f := BFloat16ToFloat32(h)
		if math.IsNaN(float64(f)) {
			continue
		}
		if back := Float32ToBFloat16(f); back != h {
			t.Fatalf("Float32ToBFloat16(BFloat16ToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

// TestHalfSlicesMatchScalar: Float32s of a float16/bfloat16 raw_data tensor
// (every bit pattern) and EncodeLike into those types give what the scalar
// conversions and EncodeTensor give, including EncodeTensor's error when the
// data does not fill the dims.
func TestHalfSlicesMatchScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	for _, c := range []struct {
		dt     pb.TensorProto_DataType
		widen  func(uint16) float32
		narrow func(float32) uint16
	}{
		{pb.TensorProto_FLOAT16, Float16ToFloat32, Float32ToFloat16},
		{pb.TensorProto_BFLOAT16, BFloat16ToFloat32, Float32ToBFloat16},
	} {
		bits := make([]uint16, 1<<16)
		for i := range bits {
			bits[i] = uint16(i)
		}
		p, err := EncodeTensor("all", &Tensor{DType: c.dt, Dims: []int64{1 << 16}, Data: bits})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Float32s(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range got {
			if math.Float32bits(f) != math.Float32bits(c.widen(uint16(i))) {
				t.Fatalf("%s: Float32s[%#04x] = %#08x, want %#08x", DTypeName(c.dt), i, math.Float32bits(f), math.Float32bits(c.widen(uint16(i))))
			}
		}
		for _, n := range []int{0, 1, 7, 8, 17, 70, 1000} {
			data := make([]float32, n)
			for i := range data {
				data[i] = math.Float32frombits(r.Uint32())
				if i%2 == 0 {
					data[i] = float32(r.NormFloat64())
				}
			}
			h := make([]uint16, n)
			for i, f := range data {
				h[i] = c.narrow(f)
			}
			like := &pb.TensorProto{Name: ptr("like"), DataType: ptr(int32(c.dt)), Dims: []int64{int64(n)}}
			want, err := EncodeTensor("w", &Tensor{DType: c.dt, Dims: like.Dims, Data: h})
			if err != nil {
				t.Fatal(err)
			}
			got, err := EncodeLike("w", like, data)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("%s n=%d: EncodeLike gives %v, want %v", DTypeName(c.dt), n, got, want)
			}
		}
		like := &pb.TensorProto{DataType: ptr(int32(c.dt)), Dims: []int64{2, 3}}
		_, wantErr := EncodeTensor("w", &Tensor{DType: c.dt, Dims: like.Dims, Data: make([]uint16, 5)})
		if _, err := EncodeLike("w", like, make([]float32, 5)); err == nil || wantErr == nil || err.Error() != wantErr.Error() {
			t.Errorf("%s: EncodeLike of 5 values for [2 3]: error %v, want %v", DTypeName(c.dt), err, wantErr)
		}
		like.Dims = []int64{-1}
		_, wantErr = EncodeTensor("w", &Tensor{DType: c.dt, Dims: like.Dims, Data: []uint16{}})
		if _, err := EncodeLike("w", like, nil); err == nil || wantErr == nil || err.Error() != wantErr.Error() {
			t.Errorf("%s: EncodeLike for dims [-1]: error %v, want %v", DTypeName(c.dt), err, wantErr)
		}
	}
}
