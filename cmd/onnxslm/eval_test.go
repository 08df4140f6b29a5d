package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/builtin"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/npy"
)

// TestEvalJSON evaluates the built-in model on the shared eval_go set and
// compares with the perplexity torch recorded (llama8.truth.json: 9.349774).
func TestEvalJSON(t *testing.T) {
	testenv.Long(t, "runs 64×256 tokens")
	toks := testenv.TestFile(t, "tokens/eval_go_64x256.npy")
	code, stdout, stderr := runCLI(t, "eval", "builtin:llama8", "--tokens", toks, "--batch", "16", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	obj := decodeOne(t, stdout)
	for _, k := range []string{"perplexity", "mean_nll", "tokens", "tokens_per_second"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("JSON lacks key %q", k)
		}
	}
	if got, want := obj["perplexity"].(float64), 9.349774; math.Abs(got-want)/want > 5e-4 {
		t.Errorf("perplexity = %v, want %v within 0.05%%", got, want)
	}
	if got, want := obj["tokens"].(float64), float64(64*255); got != want {
		t.Errorf("tokens = %v, want %v", got, want)
	}
	if obj["tokens_per_second"].(float64) <= 0 {
		t.Errorf("tokens_per_second = %v, want > 0", obj["tokens_per_second"])
	}
}

// TestEvalText runs the built-in calibration text (16×128) and checks the
// human-readable report.
func TestEvalText(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "calib.txt")
	if err := os.WriteFile(f, builtin.CalibrationText(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "eval", "builtin:llama8", "--tokens", f, "--batch", "16")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"perplexity", "mean NLL", "2032 predicted (2048 run)", "tokens/s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	floatNpy := filepath.Join(dir, "float.npy")
	a, err := npy.New([]int{1, 3}, []float32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.Write(floatNpy, a); err != nil {
		t.Fatal(err)
	}
	cases := []failingCall{
		{"id too large", []string{"--tokens", write("big.txt", "1 2 3\n4 256 6\n")}, 1, "row 1, column 1: token id 256 is out of range for a vocabulary of 256"},
		{"negative id", []string{"--tokens", write("neg.txt", "1 -2 3\n")}, 1, "-2"},
		{"ragged lines", []string{"--tokens", write("ragged.txt", "1 2 3\n4 5\n")}, 1, "ragged.txt"},
		{"float npy", []string{"--tokens", floatNpy}, 1, "want int64"},
		{"one token", []string{"--tokens", write("one.txt", "7\n8\n")}, 1, "nothing to predict"},
		{"missing file", []string{"--tokens", filepath.Join(dir, "nope.npy")}, 1, "nope.npy"},
		{"no tokens flag", nil, 2, "--tokens"},
		{"bad batch", []string{"--tokens", write("ok.txt", "1 2 3\n"), "--batch", "0"}, 2, "--batch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.args = append([]string{"eval", "builtin:llama8"}, c.args...)
			c.check(t)
		})
	}
}
