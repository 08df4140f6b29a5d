package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerate: the text printed continues the prompt, --json gives the same
// tokens, the cache is used where the model has one and the speeds go to
// stderr.
func TestGenerate(t *testing.T) {
	kv := filepath.Join("..", "..", "testdata", "models", "tiny_llama_kv.onnx")
	for _, tc := range []struct {
		model, how string
	}{{"builtin:llama8", "(no KV cache)"}, {kv, "(KV cache)"}} {
		code, stdout, stderr := runCLI(t, "generate", tc.model, "--prompt", "func main() {", "--max-new-tokens", "8")
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", tc.model, code, stderr)
		}
		if !strings.HasPrefix(stdout, "func main() {") || len(stdout) <= len("func main() {\n") {
			t.Errorf("%s: stdout %q, want the prompt and more", tc.model, stdout)
		}
		for _, want := range []string{"prefill 13 tokens", "decode 7 tokens", "tokens/s", tc.how} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr %q lacks %q", tc.model, stderr, want)
			}
		}
		code, js, stderr := runCLI(t, "generate", tc.model, "--prompt", "func main() {", "--max-new-tokens", "8", "--json")
		if code != 0 {
			t.Fatalf("%s --json: exit %d, stderr %q", tc.model, code, stderr)
		}
		obj := decodeOne(t, js)
		if got := obj["prompt"].(string) + obj["text"].(string) + "\n"; tc.model == "builtin:llama8" && got != stdout {
			t.Errorf("--json text %q, the plain output %q", got, stdout)
		}
		if n := len(obj["tokens"].([]any)); n != 8 {
			t.Errorf("%d tokens, want 8", n)
		}
	}
	for _, args := range [][]string{
		{"generate", "builtin:llama8"},
		{"generate", "--prompt", "x"},
		{"generate", "builtin:llama8", "--prompt", "x", "--max-new-tokens", "0"},
		{"generate", "builtin:llama8", "--prompt", "x", "--temperature", "-1"},
	} {
		if code, stdout, _ := runMainSafe(t, args...); code != 2 || stdout != "" {
			t.Errorf("onnxslm %s: exit %d stdout %q, want 2 and nothing", strings.Join(args, " "), code, stdout)
		}
	}
}

// TestDetokenizer: byte-level pieces map back through GPT-2's byte table,
// SentencePiece pieces through ▁ and <0xNN>.
func TestDetokenizer(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ json, want string }{
		{`{"model": {"vocab": {"Hello": 0, "Ġworld": 1, "Ċ": 2}}, "decoder": {"type": "ByteLevel"}}`, "Hello world\n"},
		{`{"model": {"vocab": {"▁Hello": 0, "▁world": 1, "<0x0A>": 2}}, "decoder": {"type": "Sequence"}}`, " Hello world\n"},
	} {
		p := filepath.Join(dir, "tokenizer.json")
		if err := os.WriteFile(p, []byte(tc.json), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := loadDetokenizer(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.decode([]int64{0, 1, 2}); got != tc.want {
			t.Errorf("decode = %q, want %q", got, tc.want)
		}
	}
}
