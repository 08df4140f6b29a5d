package quant

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// normals returns n draws of N(0, std²) from a generator seeded by seed.
func normals(seed int64, n int, std float64) []float32 {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64() * std)
	}
	return w
}

// TestBlocksLayout pins the packing on hand-made blocks: nibble order, offsets,
// the signed symmetric scale and the asymmetric zero point.
func TestBlocksLayout(t *testing.T) {
	// K=32 (one block), N=1: column values 0, 1, ..., 15, then -16, ..., -1.
	w := make([]float32, 32)
	for k := range w {
		w[k] = float32(k)
		if k >= 16 {
			w[k] = float32(k - 32)
		}
	}
	q, err := QuantizeBlocks(w, 4, 32, 1, 32, false)
	if err != nil {
		t.Fatal(err)
	}
	// Largest magnitude is -16: scale = -16 / -8 = 2; q = round(x/2) + 8.
	if q.Scales[0] != 2 {
		t.Fatalf("scale %v, want 2", q.Scales[0])
	}
	// x=0 → 8, x=1 → round(0.5)+8 = 9 (half away from zero): byte 0 = 0x98.
	if q.Packed[0] != 0x98 {
		t.Errorf("byte 0 = %#x, want 0x98 (x=0 in the low nibble, x=1 in the high)", q.Packed[0])
	}
	// x=-16 → 0, x=-15 → round(-7.5 + 8) = 1 (MLAS adds the offset before
	// rounding): byte 8 = 0x10.
	if q.Packed[8] != 0x10 {
		t.Errorf("byte 8 = %#x, want 0x10", q.Packed[8])
	}
	if q.ZeroPoints != nil {
		t.Error("symmetric quantization wrote zero points")
	}
	// A positive extreme gives a negative scale (MLAS keeps the sign).
	pos := make([]float32, 32)
	pos[3] = 4
	q, err = QuantizeBlocks(pos, 4, 32, 1, 32, false)
	if err != nil {
		t.Fatal(err)
	}
	if q.Scales[0] != -0.5 || q.Packed[1]>>4 != 0 {
		t.Errorf("scale %v, nibble of 4 = %d; want -0.5 and 0", q.Scales[0], q.Packed[1]>>4)
	}

	// Asymmetric: values 0..3 over a block: lo 0, hi 3, scale 0.2, zp 0.
	a := make([]float32, 64) // K=64: two blocks, the second all -1
	for k := 0; k < 32; k++ {
		a[k] = float32(k%4) * 1
		a[32+k] = -1
	}
	q, err = QuantizeBlocks(a, 4, 64, 1, 32, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.ZeroPoints) != 1 {
		t.Fatalf("%d zero-point bytes, want 1 (two blocks share a byte)", len(q.ZeroPoints))
	}
	// Block 1: lo -1, hi 0 → scale 1/15, zp 15; stored in the high nibble.
	if q.ZeroPoints[0] != 0xF0 {
		t.Errorf("zero points %#x, want 0xf0", q.ZeroPoints[0])
	}
	dq, err := q.Dequantize()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range dq {
		if math.Abs(float64(v-a[k])) > 1e-6 {
			t.Errorf("dequantized[%d] = %v, want %v", k, v, a[k])
		}
	}
}

// TestBlocksRoundTrip: on random weights of awkward shapes, every dequantized
// value is within one scale step of the weight (half a step unless clamped at
// the positive end), the block's extreme is exact, and quantizing the
// dequantized weight gives the same bytes.
func TestBlocksRoundTrip(t *testing.T) {
	tests := []struct {
		bits, K, N, block int
		asym              bool
	}{
		{4, 32, 8, 32, false}, {4, 80, 5, 32, false}, {4, 80, 5, 32, true}, {4, 17, 3, 16, false},
		{4, 64, 7, 16, true}, {4, 300, 4, 128, false}, {4, 1, 1, 16, true},
		{8, 80, 5, 32, false}, {8, 80, 5, 32, true}, {8, 17, 3, 16, true}, {8, 1, 1, 16, false},
	}
	for _, tt := range tests {
		w := normals(int64(tt.K*tt.N), tt.K*tt.N, 0.3)
		q, err := QuantizeBlocks(w, tt.bits, tt.K, tt.N, tt.block, tt.asym)
		if err != nil {
			t.Fatal(err)
		}
		kb := q.KBlocks()
		if len(q.Packed) != tt.N*kb*tt.block*tt.bits/8 || len(q.Scales) != tt.N*kb {
			t.Fatalf("%+v: %d bytes, %d scales", tt, len(q.Packed), len(q.Scales))
		}
		dq, err := q.Dequantize()
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < tt.N; n++ {
			for b := 0; b < kb; b++ {
				s := math.Abs(float64(q.Scales[n*kb+b]))
				var ext, extQ float64
				for k := b * tt.block; k < min((b+1)*tt.block, tt.K); k++ {
					x, y := float64(w[k*tt.N+n]), float64(dq[k*tt.N+n])
					if d := math.Abs(x - y); d > s*(1+1e-6) || (d > s/2*(1+1e-6) && tt.asym) {
						t.Fatalf("%+v: w[%d,%d] = %v dequantized to %v, step %v", tt, k, n, x, y, s)
					}
					if math.Abs(x) > math.Abs(ext) {
						ext, extQ = x, y
					}
				}
				if !tt.asym && math.Abs(ext-extQ) > 1e-6*math.Abs(ext) {
					t.Errorf("%+v: block extreme %v dequantized to %v", tt, ext, extQ)
				}
			}
		}
		if tt.asym {
			continue // the zero point of a re-quantized block may move
		}
		q2, err := QuantizeBlocks(dq, tt.bits, tt.K, tt.N, tt.block, tt.asym)
		if err != nil {
			t.Fatal(err)
		}
		dq2, err := q2.Dequantize()
		if err != nil {
			t.Fatal(err)
		}
		for i := range dq {
			if math.Abs(float64(dq[i]-dq2[i])) > 1e-6*math.Abs(float64(dq[i]))+1e-12 {
				t.Fatalf("%+v: re-quantizing moved value %d from %v to %v", tt, i, dq[i], dq2[i])
			}
		}
	}
}

func TestBlocksErrors(t *testing.T) {
	good, err := QuantizeBlocks(make([]float32, 64), 4, 32, 2, 32, true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		packed   []byte
		scales   []float32
		zp       []byte
		bits     int
		K, N, bs int
	}{
		{"block 24", good.Packed, good.Scales, nil, 4, 32, 2, 24},
		{"block 8", good.Packed, good.Scales, nil, 4, 32, 2, 8},
		{"3 bits", good.Packed, good.Scales, nil, 3, 32, 2, 32},
		{"8 bits, 4-bit data", good.Packed, good.Scales, nil, 8, 32, 2, 32},
		{"K 0", nil, nil, nil, 4, 0, 2, 32},
		{"short B", good.Packed[1:], good.Scales, nil, 4, 32, 2, 32},
		{"long scales", good.Packed, append(good.Scales, 1), nil, 4, 32, 2, 32},
		{"short zero points", good.Packed, good.Scales, []byte{}, 4, 32, 2, 32},
		{"huge N", nil, nil, nil, 4, 32, 1 << 40, 32},
	}
	for _, tt := range tests {
		if _, err := DequantizeBlocks(tt.packed, tt.scales, tt.zp, tt.bits, tt.K, tt.N, tt.bs); !errors.Is(err, ErrBlocks) {
			t.Errorf("%s: err = %v, want ErrBlocks", tt.name, err)
		}
	}
	if _, err := QuantizeBlocks(make([]float32, 5), 4, 32, 2, 32, false); !errors.Is(err, ErrBlocks) {
		t.Errorf("wrong length: err = %v, want ErrBlocks", err)
	}
}

// FuzzDequantizeBlocks feeds untrusted bytes to the unpacker: it must refuse
// or unpack without panicking, and what it unpacks must follow the formula.
func FuzzDequantizeBlocks(f *testing.F) {
	q, _ := QuantizeBlocks(normals(1, 80*3, 1), 4, 80, 3, 16, true)
	f.Add(uint16(80), uint8(3), uint8(4), false, true, q.Packed, []byte{1, 2, 3})
	q8, _ := QuantizeBlocks(normals(1, 40*2, 1), 8, 40, 2, 32, true)
	f.Add(uint16(40), uint8(2), uint8(5), true, true, q8.Packed, q8.ZeroPoints)
	f.Add(uint16(32), uint8(1), uint8(5), false, false, make([]byte, 16), []byte{})
	f.Fuzz(func(t *testing.T, K uint16, N uint8, logBlock uint8, eight, withZP bool, packed, extra []byte) {
		bits := 4
		if eight {
			bits = 8
		}
		block := 1 << (logBlock % 9)
		kb := (int(K) + block - 1) / block
		scales := make([]float32, int(N)*kb)
		for i := range scales {
			scales[i] = float32(i%7) - 3
		}
		var zp []byte
		if withZP {
			zp = extra
		}
		w, err := DequantizeBlocks(packed, scales, zp, bits, int(K), int(N), block)
		if err != nil {
			if !errors.Is(err, ErrBlocks) {
				t.Fatalf("error %v does not wrap ErrBlocks", err)
			}
			return
		}
		if len(w) != int(K)*int(N) {
			t.Fatalf("%d values for [%d, %d]", len(w), K, N)
		}
		// Check the first value of each column against the formula.
		mask := 1<<bits - 1
		for n := 0; n < int(N); n++ {
			v := int(packed[n*kb*block*bits/8]) & mask
			z := 1 << (bits - 1)
			if zp != nil {
				z = int(zp[n*((kb*bits+7)/8)]) & mask
			}
			if want := float32(v-z) * scales[n*kb]; w[n] != want {
				t.Fatalf("w[0,%d] = %v, want %v", n, w[n], want)
			}
		}
	})
}

func TestQuantizeInt8(t *testing.T) {
	w := []float32{0.5, -1.27, 0.005, 0.015, 1, 0}
	q := QuantizeInt8(w)
	// scale = 2·1.27/254 = 0.01; 0.005/0.01 = 0.5 rounds to even 0, 0.015 → 2 (1.5 → 2).
	want := []int8{50, -127, 0, 2, 100, 0}
	if math.Abs(float64(q.Scale)-0.01) > 1e-9 {
		t.Errorf("scale %v, want 0.01", q.Scale)
	}
	for i := range want {
		if q.Values[i] != want[i] {
			t.Errorf("q[%d] = %d, want %d", i, q.Values[i], want[i])
		}
	}
	if z := QuantizeInt8(make([]float32, 3)); z.Scale != 0 || z.Values[0] != 0 {
		t.Errorf("all-zero tensor: %+v", z)
	}
}
