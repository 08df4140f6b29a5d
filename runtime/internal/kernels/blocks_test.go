package kernels

import (
	"errors"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
)

// quantized returns random K×N weights quantized by modelgen (the producer's
// packing, an implementation independent of Blocks) and their dequantization.
func quantized(t testing.TB, r *rand.Rand, bits, K, N, block int, asym bool) (*Blocks, []float32) {
	t.Helper()
	q, err := modelgen.QuantizeBlocks(randF32(r, K*N), bits, K, N, block, asym)
	if err != nil {
		t.Fatal(err)
	}
	w, err := q.Dequantize()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBlocks(q.Packed, q.Scales, q.ZeroPoints, bits, K, N, block)
	if err != nil {
		t.Fatal(err)
	}
	return b, w
}

// TestBlocksBitwise: SgemmB over quantized blocks equals Sgemm over the
// dequantized matrix bit for bit, at shapes that cut blocks at KC and panel
// edges, with and without zero points, for every thread count.
func TestBlocksBitwise(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		bits, m, n, k, block int
		asym                 bool
	}{
		{4, 1, 16, 32, 32, false}, {4, 7, 33, 96, 32, true}, {4, 13, 50, 300, 32, false},
		{4, 97, 130, 520, 64, true}, {4, 5, 17, 48, 16, false}, {4, 200, 2100, 64, 32, true},
		{8, 3, 20, 100, 32, false}, {8, 31, 65, 513, 32, true}, {8, 6, 16, 256, 128, false},
	} {
		t.Run(fmt.Sprintf("bits%d/%dx%dx%d/block%d/asym=%v", c.bits, c.m, c.n, c.k, c.block, c.asym), func(t *testing.T) {
			b, w := quantized(t, r, c.bits, c.k, c.n, c.block, c.asym)
			if got := b.Dequantize(); !equalBits(got, w) {
				t.Fatal("Blocks.Dequantize differs from modelgen.DequantizeBlocks")
			}
			a := MatView{Data: randF32(r, c.m*c.k), RS: c.k, CS: 1}
			want := make([]float32, c.m*c.n)
			Sgemm(1, c.m, c.n, c.k, 1, a, MatView{Data: w, RS: c.n, CS: 1}, 0, want, c.n)
			for _, threads := range []int{1, 2, 4} {
				got := make([]float32, c.m*c.n)
				SgemmB(threads, c.m, c.n, c.k, 1, a, b, 0, got, c.n)
				if !equalBits(got, want) {
					t.Fatalf("threads %d: SgemmB(blocks) differs from Sgemm(dequantized)", threads)
				}
			}
		})
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

// TestInt8BExact: integer products summed in float32 over ExactIntK-long
// chunks equal the int32 sums.
func TestInt8BExact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const m, n, k = 9, 37, 300
	a := make([]float32, m*k)
	ai := make([]int32, m*k)
	for i := range a {
		ai[i] = int32(r.IntN(256)) - 7 // uint8 less a zero point of 7
		a[i] = float32(ai[i])
	}
	bd := make([]int8, k*n)
	for i := range bd {
		bd[i] = int8(r.IntN(256) - 128)
	}
	zp := make([]int32, n)
	for i := range zp {
		zp[i] = int32(r.IntN(256) - 128)
	}
	got := make([]int32, m*n)
	tmp := make([]float32, m*n)
	for p := 0; p < k; p += ExactIntK {
		kc := min(ExactIntK, k-p)
		SgemmB(2, m, n, kc, 1, MatView{Data: a, Off: p, RS: k, CS: 1}, Int8B[int8]{Data: bd, Off: p * n, RS: n, ZP: zp}, 0, tmp, n)
		for i, v := range tmp {
			got[i] += int32(v)
		}
	}
	for i := range m {
		for j := range n {
			var s int32
			for p := range k {
				s += ai[i*k+p] * (int32(bd[p*n+j]) - zp[j])
			}
			if got[i*n+j] != s {
				t.Fatalf("C[%d][%d] = %d, want %d", i, j, got[i*n+j], s)
			}
		}
	}
}

// TestNewBlocksErrors: sizes that do not fit are refused with ErrBlocks.
func TestNewBlocksErrors(t *testing.T) {
	for _, c := range []struct {
		name                string
		packed, scales, zps int
		bits, k, n, block   int
	}{
		{"bits", 16, 1, 0, 3, 32, 1, 32},
		{"block", 16, 1, 0, 4, 32, 1, 24},
		{"small block", 4, 1, 0, 4, 8, 1, 8},
		{"packed", 15, 1, 0, 4, 32, 1, 32},
		{"scales", 16, 2, 0, 4, 32, 1, 32},
		{"zero points", 16, 1, 2, 4, 32, 1, 32},
		{"K", 0, 0, 0, 4, 0, 1, 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			var zp []byte
			if c.zps > 0 {
				zp = make([]byte, c.zps)
			}
			_, err := NewBlocks(make([]byte, c.packed), make([]float32, c.scales), zp, c.bits, c.k, c.n, c.block)
			if !errors.Is(err, ErrBlocks) {
				t.Errorf("err = %v, want ErrBlocks", err)
			}
		})
	}
}

// FuzzBlocks: any bytes NewBlocks accepts pack without panicking, and equal
// modelgen's dequantization of the same bytes.
func FuzzBlocks(f *testing.F) {
	f.Add([]byte{0x12, 0x34}, uint8(4), uint8(40), uint8(3), uint8(0), true)
	f.Add([]byte{0xff, 0x80, 1}, uint8(8), uint8(33), uint8(2), uint8(1), false)
	f.Fuzz(func(t *testing.T, data []byte, bits, k, n, blockLog uint8, zp bool) {
		K, N, block := int(k)+1, int(n)%20+1, 16<<(blockLog%3)
		kb := (K + block - 1) / block
		blob := block * int(bits) / 8
		size := N * kb * blob
		packed := make([]byte, max(size, 0))
		for i := range packed {
			if len(data) > 0 {
				packed[i] = data[i%len(data)] + byte(i)
			}
		}
		scales := make([]float32, N*kb)
		for i := range scales {
			scales[i] = float32(i%7) - 3.5
		}
		var zps []byte
		if zp {
			zps = make([]byte, N*((kb*int(bits)+7)/8))
			for i := range zps {
				zps[i] = byte(i * 37)
			}
		}
		b, err := NewBlocks(packed, scales, zps, int(bits), K, N, block)
		if err != nil {
			return
		}
		want, err := modelgen.DequantizeBlocks(packed, scales, zps, int(bits), K, N, block)
		if err != nil {
			t.Fatalf("NewBlocks accepted what DequantizeBlocks refuses: %v", err)
		}
		if !equalBits(b.Dequantize(), want) {
			t.Fatal("Dequantize differs from modelgen's")
		}
	})
}

// BenchmarkBlocks compares the 4-bit (and 8-bit) block multiply with the
// float32 one on the same shapes: the decoding is per packed panel, paid once
// per KC×NC block of B and amortised over the M rows of A.
func BenchmarkBlocks(b *testing.B) {
	for _, sz := range [][3]int{{512, 1024, 1024}, {512, 2816, 1024}, {128, 1024, 1024}, {2048, 1024, 1024}} {
		m, n, k := sz[0], sz[1], sz[2]
		r := rand.New(rand.NewPCG(1, 2))
		q4, w := quantized(b, r, 4, k, n, 32, false)
		q8, _ := quantized(b, r, 8, k, n, 32, false)
		a := MatView{Data: randF32(r, m*k), RS: k, CS: 1}
		c := make([]float32, m*n)
		for _, v := range []struct {
			name string
			src  BSource
		}{{"float32", MatView{Data: w, RS: n, CS: 1}}, {"q4", q4}, {"q8", q8}} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", m, n, k, v.name), func(b *testing.B) {
				goruntime.LockOSThread()
				defer goruntime.UnlockOSThread()
				cpu0 := threadCPU()
				for b.Loop() {
					if mv, ok := v.src.(MatView); ok {
						Sgemm(1, m, n, k, 1, a, mv, 0, c, n)
					} else {
						SgemmB(1, m, n, k, 1, a, v.src, 0, c, n)
					}
				}
				flop := 2 * float64(m*n*k) * float64(b.N)
				b.ReportMetric(flop/(threadCPU()-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
			})
		}
	}
}

// BenchmarkPackB is the cost of packing one KC×NC block of B per element
// (ns/elem), float32 against the decoding of 4- and 8-bit blocks: what a
// multiply pays once per block of B, whatever M.
func BenchmarkPackB(b *testing.B) {
	const k, n = 1024, 1024
	r := rand.New(rand.NewPCG(1, 2))
	q4, w := quantized(b, r, 4, k, n, 32, false)
	q8, _ := quantized(b, r, 8, k, n, 32, true)
	dst := make([]float32, gemmKC*n)
	for _, v := range []struct {
		name string
		src  BSource
	}{{"float32", MatView{Data: w, RS: n, CS: 1}}, {"q4", q4}, {"q8_zero_points", q8}} {
		b.Run(v.name, func(b *testing.B) {
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			cpu0 := threadCPU()
			for b.Loop() {
				for pc := 0; pc < k; pc += gemmKC {
					v.src.PackB(dst, pc, 0, gemmKC, n, 0, n/gemmNR)
				}
			}
			b.ReportMetric(float64((threadCPU()-cpu0).Nanoseconds())/float64(b.N)/float64(k*n), "cpu-ns/elem")
		})
	}
}
