package half

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// impl is one way the slice conversions may run: the vector code where the
// CPU has it (with the Go loops for the tails), or the Go loops alone.
type impl struct {
	name                  string
	widenF16, widenBF16   func([]float32, []byte) int
	narrowF16, narrowBF16 func([]byte, []float32) int
}

func impls() []impl {
	return []impl{
		{"default", widenF16, widenBF16, narrowF16, narrowBF16},
		{"go", none[float32, byte], none[float32, byte], none[byte, float32], none[byte, float32]},
	}
}

// use makes im the conversions for the rest of the test.
func (im impl) use(t testing.TB) {
	saved := impl{"", widenF16, widenBF16, narrowF16, narrowBF16}
	widenF16, widenBF16, narrowF16, narrowBF16 = im.widenF16, im.widenBF16, im.narrowF16, im.narrowBF16
	t.Cleanup(func() {
		widenF16, widenBF16, narrowF16, narrowBF16 = saved.widenF16, saved.widenBF16, saved.narrowF16, saved.narrowBF16
	})
}

// eachImpl runs test as a subtest per impl, with that impl in use.
func eachImpl(t *testing.T, test func(t *testing.T)) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			im.use(t)
			test(t)
		})
	}
}

// widening is a slice widening and the scalar function each element must
// agree with; narrowing the same the other way.
type (
	widening struct {
		name   string
		widen  func([]float32, []byte)
		scalar func(uint16) float32
	}
	narrowing struct {
		name   string
		narrow func([]byte, []float32)
		scalar func(float32) uint16
	}
)

// The slice conversions, float16 and bfloat16, each with its scalar function.
var (
	widenings  = []widening{{"float16", Widen, ToFloat32}, {"bfloat16", WidenBF16, BFloat16ToFloat32}}
	narrowings = []narrowing{{"float16", Narrow, FromFloat32}, {"bfloat16", NarrowBF16, BFloat16FromFloat32}}
)

// allHalves is every 16-bit pattern, little-endian.
func allHalves() []byte {
	b := make([]byte, 2<<16)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(b[2*h:], uint16(h))
	}
	return b
}

// narrowCases is a broad set of float32 bit patterns for the narrowing
// tests: every float16 value widened and its float32 neighbours, the
// midpoints (ties) between neighbouring float16 values and theirs, every
// float32 exponent with edge-case mantissas (subnormals, Inf, NaN payloads
// quiet and signalling), and random bits.
func narrowCases() []float32 {
	var c []uint32
	for h := range 1 << 16 {
		b := math.Float32bits(ToFloat32(uint16(h)))
		c = append(c, b-1, b, b+1)
		if h&0x7fff < 0x7c00 { // finite: the tie with the next value up in magnitude
			lo, hi := float64(ToFloat32(uint16(h))), float64(ToFloat32(uint16(h+1)))
			m := math.Float32bits(float32((lo + hi) / 2))
			c = append(c, m-1, m, m+1)
		}
	}
	for e := range uint32(256) {
		for _, m := range []uint32{0, 1, 2, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x3fffff, 0x400000, 0x400001, 0x7fe000, 0x7fffff} {
			c = append(c, e<<23|m, 1<<31|e<<23|m)
		}
	}
	r := rand.New(rand.NewPCG(13, 16))
	for range 1 << 18 {
		c = append(c, r.Uint32())
	}
	f := make([]float32, len(c))
	for i, b := range c {
		f[i] = math.Float32frombits(b)
	}
	return f
}

// TestWidenAll: every float16 and bfloat16 pattern widens bitwise as the
// scalar functions do, NaN payloads (signalling ones too) included, at every
// start offset that moves the vector loop's tail.
func TestWidenAll(t *testing.T) {
	src := allHalves()
	eachImpl(t, func(t *testing.T) {
		for _, c := range widenings {
			for off := range 9 {
				s := src[2*off:]
				dst := make([]float32, len(s)/2)
				c.widen(dst, s)
				for i, f := range dst {
					h := uint16(off + i)
					if got, want := math.Float32bits(f), math.Float32bits(c.scalar(h)); got != want {
						t.Fatalf("%s offset %d: %#04x widens to %#08x, want %#08x", c.name, off, h, got, want)
					}
				}
			}
		}
	})
}

// TestNarrowBroad: narrowing the broad case set gives the scalar encoders'
// bits (rounding, ties, subnormals, overflow, Inf, NaN).
func TestNarrowBroad(t *testing.T) {
	src := narrowCases()
	eachImpl(t, func(t *testing.T) {
		for _, c := range narrowings {
			for off := range 17 {
				s := src[off:]
				dst := make([]byte, 2*len(s))
				c.narrow(dst, s)
				for i, f := range s {
					if got, want := binary.LittleEndian.Uint16(dst[2*i:]), c.scalar(f); got != want {
						t.Fatalf("%s offset %d: %#08x narrows to %#04x, want %#04x", c.name, off, math.Float32bits(f), got, want)
					}
				}
			}
		}
	})
}

// TestLengths: lengths 0..70 convert exactly their elements, leave the rest
// of dst alone, and match the scalar functions (the vector loops' tails).
func TestLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 70))
	raw := make([]byte, 2*80)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	fs := make([]float32, 80)
	for i := range fs {
		fs[i] = math.Float32frombits(r.Uint32())
	}
	widens := append(slices.Clone(widenings),
		widening{"float16 bits", func(d []float32, s []byte) { WidenBits(d, bitsOf(s)) }, ToFloat32},
		widening{"bfloat16 bits", func(d []float32, s []byte) { WidenBF16Bits(d, bitsOf(s)) }, BFloat16ToFloat32},
	)
	eachImpl(t, func(t *testing.T) {
		for n := range 71 {
			for _, c := range widens {
				dst := make([]float32, n+1)
				dst[n] = 42
				c.widen(dst[:n], raw[:2*n+1]) // an odd byte is not a value
				for i := range n {
					if got, want := math.Float32bits(dst[i]), math.Float32bits(c.scalar(binary.LittleEndian.Uint16(raw[2*i:]))); got != want {
						t.Fatalf("%s n=%d [%d]: got %#08x, want %#08x", c.name, n, i, got, want)
					}
				}
				if dst[n] != 42 {
					t.Fatalf("%s n=%d: wrote past the end", c.name, n)
				}
			}
			for _, c := range narrowings {
				dst := make([]byte, 2*n+2)
				dst[2*n], dst[2*n+1] = 0xaa, 0xbb
				c.narrow(dst, fs[:n])
				for i := range n {
					if got, want := binary.LittleEndian.Uint16(dst[2*i:]), c.scalar(fs[i]); got != want {
						t.Fatalf("%s n=%d [%d]: got %#04x, want %#04x", c.name, n, i, got, want)
					}
				}
				if dst[2*n] != 0xaa || dst[2*n+1] != 0xbb {
					t.Fatalf("%s n=%d: wrote past the end", c.name, n)
				}
			}
		}
	})
}

// bitsOf reads b as little-endian uint16 values (an odd last byte dropped).
func bitsOf(b []byte) []uint16 {
	h := make([]uint16, len(b)/2)
	for i := range h {
		h[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return h
}

// benchN is the elements a benchmark converts per op: 64 Ki, so that the
// data stays in cache and the figure is the conversion's cost.
const benchN = 1 << 16

// BenchmarkWiden reports CPU ns per element: "before" is what package onnx
// did (decode raw_data into []uint16, then a call per element), "go" the Go
// loops, "default" the vector code where the CPU has it.
func BenchmarkWiden(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	src := make([]byte, 2*benchN)
	for i := range benchN {
		binary.LittleEndian.PutUint16(src[2*i:], FromFloat32(float32(r.NormFloat64()*0.02)))
	}
	dst := make([]float32, benchN)
	for _, c := range widenings {
		b.Run(c.name+"/before", func(b *testing.B) {
			bench(b, func() {
				h := make([]uint16, benchN)
				if _, err := binary.Decode(src, binary.LittleEndian, h); err != nil {
					b.Fatal(err)
				}
				conv := c.scalar
				for i, x := range h {
					dst[i] = conv(x)
				}
			})
		})
		benchImpls(b, c.name, func() { c.widen(dst, src) })
	}
}

// BenchmarkNarrow is BenchmarkWiden the other way: "before" is the loop
// onnx.EncodeLike ran (a call per element into []uint16, then
// binary.Append).
func BenchmarkNarrow(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, benchN)
	for i := range src {
		src[i] = float32(r.NormFloat64() * 0.02)
	}
	dst := make([]byte, 2*benchN)
	for _, c := range narrowings {
		b.Run(c.name+"/before", func(b *testing.B) {
			bench(b, func() {
				conv := c.scalar
				h := make([]uint16, benchN)
				for i, f := range src {
					h[i] = conv(f)
				}
				var err error
				if dst, err = binary.Append(dst[:0], binary.LittleEndian, h); err != nil {
					b.Fatal(err)
				}
			})
		})
		benchImpls(b, c.name, func() { c.narrow(dst, src) })
	}
}

// benchImpls benchmarks op under each impl, as name/impl.
func benchImpls(b *testing.B, name string, op func()) {
	for _, im := range impls() {
		b.Run(name+"/"+im.name, func(b *testing.B) {
			im.use(b)
			bench(b, op)
		})
	}
}

// bench runs op b.N times and reports CPU (not wall) ns per element: the
// machine's cores may be shared.
func bench(b *testing.B, op func()) {
	c0 := cpuNanos()
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(cpuNanos()-c0)/float64(b.N)/benchN, "cpu-ns/elem")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchN, "ns/elem")
}

// FuzzSlices: any bytes, read as float16, bfloat16 and float32 values, convert
// as the scalar functions do.
func FuzzSlices(f *testing.F) {
	f.Add([]byte{0x01, 0x7c, 0x00, 0x3c, 0xff, 0xff, 0x00, 0x80, 0x01, 0x00, 0x00, 0x7e, 0x00, 0x00, 0x80, 0x7f, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		w := make([]float32, len(b)/2)
		for _, c := range widenings {
			c.widen(w, b)
			for i, x := range w {
				if got, want := math.Float32bits(x), math.Float32bits(c.scalar(binary.LittleEndian.Uint16(b[2*i:]))); got != want {
					t.Fatalf("[%d]: got %#08x, want %#08x", i, got, want)
				}
			}
		}
		fs := make([]float32, len(b)/4)
		for i := range fs {
			fs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		n := make([]byte, 2*len(fs))
		for _, c := range narrowings {
			c.narrow(n, fs)
			for i, x := range fs {
				if got, want := binary.LittleEndian.Uint16(n[2*i:]), c.scalar(x); got != want {
					t.Fatalf("%#08x: got %#04x, want %#04x", math.Float32bits(x), got, want)
				}
			}
		}
	})
}
