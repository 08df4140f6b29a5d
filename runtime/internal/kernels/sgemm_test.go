package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"
)

// naiveGemm is the reference: C = alpha·A·B + beta·C in float64.
func naiveGemm(m, n, k int, alpha float32, a, b MatView, beta float32, c []float32, ldc int) {
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += float64(a.Data[a.Off+i*a.RS+p*a.CS]) * float64(b.Data[b.Off+p*b.RS+j*b.CS])
			}
			o := i*ldc + j
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[o])
			}
			c[o] = float32(v)
		}
	}
}

func randF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func TestSgemm(t *testing.T) {
	type kernels struct {
		packed func(int, []float32, []float32, []float32, int, bool)
		rows   func(int, []float32, int, []float32, []float32, int, bool)
	}
	variants := map[string]kernels{"go": {microKernelGo, nil}, "default": {microKernel, microKernelRows}}
	saved := kernels{microKernel, microKernelRows}
	defer func() { microKernel, microKernelRows = saved.packed, saved.rows }()
	r := rand.New(rand.NewPCG(1, 2))
	sizes := [][3]int{{1, 1, 1}, {6, 16, 1}, {7, 17, 3}, {5, 3, 300}, {13, 33, 257}, {97, 130, 64}, {200, 40, 513}, {3, 2100, 5}}
	for name, kern := range variants {
		microKernel, microKernelRows = kern.packed, kern.rows
		for _, sz := range sizes {
			m, n, k := sz[0], sz[1], sz[2]
			for _, tr := range []struct{ ta, tb bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
				for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {2, -0.5}} {
					t.Run(fmt.Sprintf("%s/%dx%dx%d/ta=%v,tb=%v/alpha=%v,beta=%v", name, m, n, k, tr.ta, tr.tb, ab[0], ab[1]), func(t *testing.T) {
						a := MatView{Data: randF32(r, m*k+3), Off: 3, RS: k, CS: 1}
						if tr.ta {
							a.RS, a.CS = 1, m
						}
						b := MatView{Data: randF32(r, k*n), RS: n, CS: 1}
						if tr.tb {
							b.RS, b.CS = 1, k
						}
						ldc := n + 2
						c := randF32(r, m*ldc)
						want := append([]float32{}, c...)
						naiveGemm(m, n, k, ab[0], a, b, ab[1], want, ldc)
						Sgemm(2, m, n, k, ab[0], a, b, ab[1], c, ldc)
						for i := range m {
							for j := range n {
								got, w := c[i*ldc+j], want[i*ldc+j]
								if math.Abs(float64(got-w)) > 1e-4*math.Sqrt(float64(k))*(1+math.Abs(float64(w))) {
									t.Fatalf("C[%d,%d] = %v, want %v", i, j, got, w)
								}
							}
							for j := n; j < ldc; j++ {
								if c[i*ldc+j] != want[i*ldc+j] {
									t.Fatalf("C[%d,%d] (past n) changed", i, j)
								}
							}
						}
					})
				}
			}
		}
	}
}

// BenchmarkSgemm reports GFLOP/s of the matrix multiply on shapes from the
// reference models and the ~370M Llama.
func BenchmarkSgemm(b *testing.B) {
	for _, sz := range [][3]int{{2048, 128, 128}, {2048, 384, 128}, {128, 128, 32}, {512, 1024, 1024}, {1024, 768, 3072},
		{512, 2816, 1024}, {512, 1024, 2816}, {512, 32000, 1024}, {128, 128, 64}, {128, 64, 128}} {
		for _, threads := range []int{1, 2} {
			m, n, k := sz[0], sz[1], sz[2]
			b.Run(fmt.Sprintf("%dx%dx%d/threads=%d", m, n, k, threads), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				a := MatView{Data: randF32(r, m*k), RS: k, CS: 1}
				bb := MatView{Data: randF32(r, k*n), RS: n, CS: 1}
				c := make([]float32, m*n)
				if threads == 1 {
					goruntime.LockOSThread()
					defer goruntime.UnlockOSThread()
				}
				start, cpu0 := time.Now(), threadCPU()
				for b.Loop() {
					Sgemm(threads, m, n, k, 1, a, bb, 0, c, n)
				}
				flop := 2 * float64(m*n*k) * float64(b.N)
				b.ReportMetric(flop/time.Since(start).Seconds()/1e9, "GFLOP/s")
				if threads == 1 {
					// Per second of this thread's CPU time: what the kernel does
					// when it has a core, however busy the machine is.
					b.ReportMetric(flop/(threadCPU()-cpu0).Seconds()/1e9, "GFLOP/cpu-s")
				}
			})
		}
	}
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
