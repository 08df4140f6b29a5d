package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testmodel"
)

func writeTask(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvalTaskBuiltin: the built-in task runs on the built-in model with no
// files, and --json has the harness's fields under results.
func TestEvalTaskBuiltin(t *testing.T) {
	testenv.Long(t, "scores 116 examples × 4 choices")
	code, stdout, stderr := runCLI(t, "eval", "builtin:llama8", "--task", "builtin:go-next-line", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	obj := decodeOne(t, stdout)
	res, ok := obj["results"].(map[string]any)["go-next-line"].(map[string]any)
	if !ok {
		t.Fatalf("no results.go-next-line in %s", stdout)
	}
	for _, k := range []string{"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"} {
		v, ok := res[k].(float64)
		if !ok || v <= 0 || v >= 1 {
			t.Errorf("%s = %v, want a number in (0, 1)", k, res[k])
		}
	}
	if n := res["n"]; n != 116.0 {
		t.Errorf("n = %v, want 116", n)
	}
	// Four choices: chance is 0.25; the model has seen Go, so it must beat it.
	if acc := res["acc"].(float64); acc <= 0.25 {
		t.Errorf("acc %v, not above chance", acc)
	}
}

// TestEvalTaskTable: several task files in several formats give one row each
// and an average; the detected format is said on stderr.
func TestEvalTaskTable(t *testing.T) {
	dir := t.TempDir()
	a := writeTask(t, dir, "native.jsonl", `{"context": "func main() {", "choices": ["}", "zzz"], "gold": 0}
{"context": "import \"fmt\"\n", "choices": ["func", "qqq"], "gold": 0}
`)
	b := writeTask(t, dir, "piqa.jsonl", `{"goal": "return an error", "sol1": "return err", "sol2": "xyzzy", "label": 0}
`)
	code, stdout, stderr := runCLI(t, "eval", "builtin:llama8", "--task", a, "--task", b)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"native", "piqa", "average", "acc_norm", "N/A"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	for _, want := range []string{"format context (context, choices, gold)", "format piqa (goal, sol1, sol2, label)", "byte-level"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// A field mapping for any other layout.
	c := writeTask(t, dir, "mine.jsonl", `{"q": "x := ", "opts": ["1", "{{{"], "ans": 0}`)
	code, stdout, stderr = runCLI(t, "eval", "builtin:llama8", "--task", c, "--task-format", "context=q,choices=opts,gold=ans", "--json")
	if code != 0 {
		t.Fatalf("--task-format mapping: exit %d, stderr %q", code, stderr)
	}
	if _, ok := decodeOne(t, stdout)["results"].(map[string]any)["mine"]; !ok {
		t.Errorf("no results.mine in %s", stdout)
	}
}

// TestHostileTaskFiles: bad task files exit 1 with one line naming the file
// and the line, and print nothing on stdout.
func TestHostileTaskFiles(t *testing.T) {
	dir := t.TempDir()
	good := `{"context": "c", "choices": ["a", "b"], "gold": 0}`
	for _, tc := range []struct{ name, text, want string }{
		{"notjson", good + "\nnot json\n", ":2: not a JSON object"},
		{"missing", `{"context": "c", "gold": 0}`, `:1: context format: missing field "choices"`},
		{"gold", good + "\n\n" + `{"context": "c", "choices": ["a"], "gold": 3}`, ":3: gold 3 is out of range for 1 choices"},
		{"empty", `{"context": "c", "choices": [], "gold": 0}`, ":1: no choices"},
		{"binary", "\x00\xff\xfe", ":1: not a JSON object"},
		{"nothing", "", ": no examples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTask(t, dir, tc.name+".jsonl", tc.text)
			code, stdout, stderr := runMainSafe(t, "eval", "builtin:llama8", "--task", p)
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr %q", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], p+tc.want) {
				t.Errorf("stderr %q, want one line containing %q", stderr, p+tc.want)
			}
		})
	}
	code, _, stderr := runMainSafe(t, "eval", "builtin:llama8", "--task", filepath.Join(dir, "absent.jsonl"))
	if code != 1 || !strings.Contains(stderr, "absent.jsonl") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

// TestEvalTaskUsage: mistakes in how eval --task is called exit 2.
func TestEvalTaskUsage(t *testing.T) {
	dir := t.TempDir()
	p := writeTask(t, dir, "t.jsonl", `{"context": "c", "choices": ["a"], "gold": 0}`)
	for _, args := range [][]string{
		{"eval", "builtin:llama8", "--task", p, "--tokens", "x.txt"},
		{"eval", "builtin:llama8", "--task", p, "--task-format", "nope"},
		{"eval", "builtin:llama8", "--task", p, "--max-length", "-1"},
	} {
		code, stdout, stderr := runMainSafe(t, args...)
		if code != 2 || stdout != "" {
			t.Errorf("onnxslm %s: exit %d, stdout %q, want 2 and nothing; stderr %q", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	code, _, stderr := runMainSafe(t, "eval", "builtin:llama8", "--task", "builtin:nope")
	if code != 1 || !strings.Contains(stderr, "builtin:go-next-line") {
		t.Errorf("unknown built-in task: exit %d, stderr %q", code, stderr)
	}
}

// TestEvalTaskTokenizer: a model with a BPE vocabulary scores a task through
// --tokenizer (byte-level BPE: " lower" is one token, and the context's
// trailing space joins the continuation as the harness does), and refuses
// to run without one.
func TestEvalTaskTokenizer(t *testing.T) {
	dir := t.TempDir()
	vocab := []string{"l", "o", "w", "e", "r", "s", "t", "Ġ", "lo", "low", "er", "Ġlow", "Ġlower", "es", "est"}
	v := map[string]int{}
	for i, tok := range vocab {
		v[tok] = i
	}
	doc := map[string]any{
		"version":       "1.0",
		"model":         map[string]any{"type": "BPE", "vocab": v, "merges": []string{"l o", "lo w", "e r", "Ġ low", "Ġlow er", "e s", "es t"}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	tok := writeTask(t, dir, "tokenizer.json", string(b))
	cfg := modelgen.Config{Arch: modelgen.Llama, Layers: 2, Hidden: 16, Heads: 2, FFN: 32, Vocab: len(vocab), MaxPos: 64, Opset: 17, Seed: 1}
	m, err := modelgen.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	model := testmodel.Write(t, filepath.Join(dir, "m.onnx"), m)
	task := writeTask(t, dir, "low.jsonl", `{"context": "low ", "choices": ["lower", "lowest", "low"], "gold": 0}
{"context": "low low", "choices": ["er", "est"], "gold": 1}
`)
	code, stdout, stderr := runCLI(t, "eval", model, "--task", task, "--tokenizer", tok, "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	res := decodeOne(t, stdout)["results"].(map[string]any)["low"].(map[string]any)
	if res["n"] != 2.0 {
		t.Errorf("n = %v, want 2", res["n"])
	}
	code, _, stderr = runCLI(t, "eval", model, "--task", task)
	if code != 2 || !strings.Contains(stderr, "needs --tokenizer") {
		t.Errorf("without --tokenizer: exit %d, stderr %q; want 2 and a hint", code, stderr)
	}
}
