package runtime_test

import (
	"testing"

	"github.com/onnxslm/onnxslm/internal/rusage"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/runtime"
)

// BenchmarkLlama8 runs llama8 on the 16×128 calibration set (one batch) and
// reports tokens per second.
func BenchmarkLlama8(b *testing.B) {
	s := loadSession(b, "llama8", runtime.Options{})
	feeds := map[string]*runtime.Tensor{"input_ids": calibRows(b, 16)}
	benchTokens(b, s, feeds, 16*128)
}

// benchTokens runs s on feeds (tokens tokens) once to warm up, then b.N
// times, and reports tokens per second of wall-clock and of CPU time.
func benchTokens(b *testing.B, s *runtime.Session, feeds map[string]*runtime.Tensor, tokens int) {
	if _, err := s.Run(feeds, nil); err != nil {
		b.Fatal(err)
	}
	cpu0 := rusage.CPU()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Run(feeds, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(tokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
	// Per second of CPU time used by the process (all threads): a figure
	// that holds on a machine shared with other work.
	b.ReportMetric(float64(tokens*b.N)/(rusage.CPU()-cpu0).Seconds(), "tokens/cpu-s")
}

// BenchmarkGPT2 runs gpt2_6 on 16 rows of 256 tokens.
func BenchmarkGPT2(b *testing.B) {
	s := loadSession(b, "gpt2_6", runtime.Options{})
	ids := make([]int64, 16*256)
	for i := range ids {
		ids[i] = int64(i*7) % 256
	}
	x, _ := runtime.NewInt64([]int{16, 256}, ids)
	feeds := map[string]*runtime.Tensor{"input_ids": x}
	benchTokens(b, s, feeds, 16*256)
}

// BenchmarkNew measures compiling a Session (the SLM search makes one per
// candidate model).
func BenchmarkNew(b *testing.B) {
	m, err := onnx.Load(testenv.TestModel(b, "llama8"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := runtime.New(m.Proto, runtime.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLlama8Partial runs llama8 (16×128) from the hidden state entering
// layer 6, as the SLM search does for a candidate that merges layers 6..7.
func BenchmarkLlama8Partial(b *testing.B) {
	s := loadSession(b, "llama8", runtime.Options{})
	ids := calibRows(b, 16)
	const h = "/model/layers.5/Add_1_output_0"
	full, err := s.Run(map[string]*runtime.Tensor{"input_ids": ids}, []string{h})
	if err != nil {
		b.Fatal(err)
	}
	feeds := map[string]*runtime.Tensor{"input_ids": ids, h: full[h]}
	if _, err := s.Run(feeds, []string{"logits"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Run(feeds, []string{"logits"}); err != nil {
			b.Fatal(err)
		}
	}
}
