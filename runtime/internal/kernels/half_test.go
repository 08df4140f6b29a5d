package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"testing"
	"time"
)

// TestHalfToFloat32 checks the vector widening against the scalar one on every
// 16-bit pattern, signalling NaNs included, at every tail length and
// alignment.
func TestHalfToFloat32(t *testing.T) {
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	for _, bf16 := range []bool{false, true} {
		conv := Float16ToFloat32
		if bf16 {
			conv = BFloat16ToFloat32
		}
		for _, off := range []int{0, 1, 3} {
			for _, n := range []int{0, 1, 7, 8, 9, 16, 23, 24, 100, len(all) - off} {
				src := all[off : off+n]
				dst := make([]float32, n+1)
				dst[n] = 42
				HalfToFloat32(dst, src, bf16)
				for i, h := range src {
					if got, want := math.Float32bits(dst[i]), math.Float32bits(conv(h)); got != want {
						t.Fatalf("bf16=%v off=%d n=%d: %#04x -> %#08x, want %#08x", bf16, off, n, h, got, want)
					}
				}
				if dst[n] != 42 {
					t.Fatalf("bf16=%v n=%d: wrote past the end", bf16, n)
				}
			}
		}
	}
}

// randHalf draws n normal values stored as float16 or bfloat16 (through the
// scalar narrowing of the float32 bits: truncation is enough for a test).
func randHalf(r *rand.Rand, n int, bf16 bool) []uint16 {
	v := make([]uint16, n)
	for i := range v {
		f := float32(r.NormFloat64())
		if bf16 {
			v[i] = uint16(math.Float32bits(f) >> 16)
		} else {
			v[i] = f16Bits(f)
		}
	}
	return v
}

// f16Bits narrows f to float16 by truncation (normal range of the test data;
// tiny values flush to a subnormal or zero).
func f16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	e := int(b>>23&0xff) - 127 + 15
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		if e < -10 {
			return sign
		}
		return sign | uint16((b&0x7fffff|0x800000)>>(14-e))
	}
	return sign | uint16(e)<<10 | uint16(b>>13&0x3ff)
}

// TestSgemmHalf checks that a float16/bfloat16 B gives results bitwise equal
// to widening B first, for row-major, transposed and strided B, ragged edges,
// alpha and beta, one and several threads, the assembly and the Go packing.
func TestSgemmHalf(t *testing.T) {
	saved := packHalfRows
	savedF16, savedBF16 := widenF16, widenBF16
	defer func() { packHalfRows, widenF16, widenBF16 = saved, savedF16, savedBF16 }()
	variants := []string{"default", "go"}
	r := rand.New(rand.NewPCG(3, 4))
	sizes := [][3]int{{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {5, 3, 300}, {13, 33, 257}, {97, 130, 64}, {200, 40, 513}, {3, 2100, 5}, {100, 2100, 300}}
	for _, variant := range variants {
		if variant == "go" {
			packHalfRows, widenF16, widenBF16 = nil, widenF16Go, widenBF16Go
		}
		for _, bf16 := range []bool{false, true} {
			for _, sz := range sizes {
				m, n, k := sz[0], sz[1], sz[2]
				for _, layout := range []string{"rows", "transposed", "strided"} {
					for _, ab := range [][2]float32{{1, 0}, {0.5, 1}} {
						for _, threads := range []int{1, 3} {
							name := fmt.Sprintf("%s/bf16=%v/%dx%dx%d/%s/alpha=%v,beta=%v/threads=%d", variant, bf16, m, n, k, layout, ab[0], ab[1], threads)
							a := MatView{Data: randF32(r, m*k), RS: k, CS: 1}
							var hb HalfView
							switch layout {
							case "rows":
								hb = HalfView{Data: randHalf(r, k*n+5, bf16), Off: 5, RS: n, CS: 1}
							case "transposed":
								hb = HalfView{Data: randHalf(r, k*n+5, bf16), Off: 5, RS: 1, CS: k}
							case "strided":
								hb = HalfView{Data: randHalf(r, 2*k*n+5, bf16), Off: 5, RS: 2 * n, CS: 2}
							}
							hb.BF16 = bf16
							wide := make([]float32, len(hb.Data))
							HalfToFloat32(wide, hb.Data, bf16)
							fb := MatView{Data: wide, Off: hb.Off, RS: hb.RS, CS: hb.CS}
							ldc := n + 1
							c := randF32(r, m*ldc)
							want := append([]float32{}, c...)
							Sgemm(threads, m, n, k, ab[0], a, fb, ab[1], want, ldc)
							SgemmB(threads, m, n, k, ab[0], a, hb, ab[1], c, ldc)
							for i := range c {
								if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
									t.Fatalf("%s: C[%d] = %v, want %v (widened first)", name, i, c[i], want[i])
								}
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkSgemmHalf compares the matrix multiply with a float16 B against
// float32 B on the shapes of a 1.26 B Llama's projections (512 tokens), B
// row-major ([in, out]) and transposed (a PyTorch [out, in] weight).
func BenchmarkSgemmHalf(b *testing.B) {
	for _, sz := range [][3]int{{512, 2048, 2048}, {512, 5632, 2048}, {512, 2048, 5632}} {
		for _, layout := range []string{"rows", "transposed"} {
			for _, kind := range []string{"f32", "f16", "bf16"} {
				m, n, k := sz[0], sz[1], sz[2]
				b.Run(fmt.Sprintf("%dx%dx%d/%s/%s", m, n, k, layout, kind), func(b *testing.B) {
					r := rand.New(rand.NewPCG(1, 2))
					a := MatView{Data: randF32(r, m*k), RS: k, CS: 1}
					rs, cs := n, 1
					if layout == "transposed" {
						rs, cs = 1, k
					}
					var src BSource
					h := randHalf(r, k*n, kind == "bf16")
					switch kind {
					case "f32":
						w := make([]float32, k*n)
						HalfToFloat32(w, h, false)
						src = MatView{Data: w, RS: rs, CS: cs}
					default:
						src = HalfView{Data: h, RS: rs, CS: cs, BF16: kind == "bf16"}
					}
					c := make([]float32, m*n)
					goruntime.LockOSThread()
					defer goruntime.UnlockOSThread()
					start, cpu0 := time.Now(), threadCPU()
					for b.Loop() {
						SgemmB(1, m, n, k, 1, a, src, 0, c, n)
					}
					flop := 2 * float64(m*n*k) * float64(b.N)
					b.ReportMetric(flop/time.Since(start).Seconds()/1e9, "GFLOP/s")
					b.ReportMetric(flop/(threadCPU()-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
				})
			}
		}
	}
}

// BenchmarkPackHalf is the widening and packing of one K×N block of a 16-bit
// B alone (what SgemmB adds to a float32 multiply), in ns per element, for
// the row-major and the transposed layouts.
func BenchmarkPackHalf(b *testing.B) {
	const kc, nc = gemmKC, gemmNC
	r := rand.New(rand.NewPCG(5, 6))
	h := randHalf(r, kc*nc, false)
	dst := make([]float32, kc*nc)
	for _, layout := range []string{"rows", "transposed"} {
		src := HalfView{Data: h, RS: nc, CS: 1}
		if layout == "transposed" {
			src = HalfView{Data: h, RS: 1, CS: kc}
		}
		b.Run(layout, func(b *testing.B) {
			for b.Loop() {
				src.PackB(dst, 0, 0, kc, nc, 0, nc/gemmNR)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(kc*nc), "ns/elem")
		})
	}
}
