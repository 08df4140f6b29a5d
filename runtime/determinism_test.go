package runtime_test

import (
	"fmt"
	goruntime "runtime"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/runtime"
)

// TestThreadsBitwise runs llama8 with 1, 2 and 3 threads, and with 2 threads
// under GOMAXPROCS=1, and requires bitwise-identical logits and layer
// boundary states: how work is split between goroutines must never change a
// result (the SLM search's decisions and the output files depend on them).
func TestThreadsBitwise(t *testing.T) {
	hidden, _ := testenv.Streams(t, "llama8")
	fetch := append([]string{"logits"}, hidden...)
	for _, rows := range []int{1, 4} {
		feeds := map[string]*runtime.Tensor{"input_ids": calibRows(t, rows)}
		var ref map[string]*runtime.Tensor
		for _, c := range []struct {
			threads, procs int
		}{{1, 0}, {2, 0}, {3, 0}, {2, 1}} {
			t.Run(fmt.Sprintf("rows=%d/threads=%d/procs=%d", rows, c.threads, c.procs), func(t *testing.T) {
				if c.procs > 0 {
					defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(c.procs))
				}
				s := loadSession(t, "llama8", runtime.Options{Threads: c.threads})
				if err := runtime.RunsAgree(s, feeds, fetch, &ref); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestRecycle checks that outputs handed back with Recycle are reused without
// changing later results, and that recycling twice is harmless.
func TestRecycle(t *testing.T) {
	s := loadSession(t, "llama8", runtime.Options{})
	feeds := map[string]*runtime.Tensor{"input_ids": calibRows(t, 2)}
	var want *runtime.Tensor
	for run := range 4 {
		out, err := s.Run(feeds, nil)
		if err != nil {
			t.Fatal(err)
		}
		logits := out["logits"]
		if want == nil {
			want = logits.Clone()
		} else if err := runtime.SameBits(logits, want); err != nil {
			t.Fatalf("run %d after Recycle: %v", run, err)
		}
		s.Recycle(logits)
		s.Recycle(logits, nil)
		if got := logits.Shape(); len(got) != 1 || got[0] != 0 || len(logits.Float32Data()) != 0 {
			t.Fatalf("recycled tensor has shape %v and %d values, want [0] and none", got, len(logits.Float32Data()))
		}
	}
}
