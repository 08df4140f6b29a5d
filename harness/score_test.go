package harness

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/tokenizer"
)

// words is a GPT-2-like encoder: a word keeps the space before it (" sat" is
// one token), a lone trailing space is a token of its own.
type words map[string]int64

func (w words) Encode(s string) ([]int64, error) {
	var ids []int64
	for len(s) > 0 {
		end := 1
		for end < len(s) && s[end] != ' ' {
			end++
		}
		tok := s[:end]
		id, ok := w[tok]
		if !ok {
			id = int64(len(w))
			w[tok] = id
		}
		ids = append(ids, id)
		s = s[end:]
	}
	return ids, nil
}

func TestEncodePairBoundary(t *testing.T) {
	w := words{}
	want, _ := w.Encode("The cat sat")
	for _, tc := range []struct{ ctx, cont string }{
		{"The cat", " sat"},
		{"The cat ", "sat"}, // the context's trailing space moves to the continuation
	} {
		ctx, cont, err := EncodePair(w, tc.ctx, tc.cont)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ctx, want[:2]) || !slices.Equal(cont, want[2:]) {
			t.Errorf("EncodePair(%q, %q) = %v, %v; want %v, %v", tc.ctx, tc.cont, ctx, cont, want[:2], want[2:])
		}
	}
	// The continuation is the tail of the whole text's tokens, not the
	// continuation tokenized alone.
	ctx, cont, _ := EncodePair(w, "a b", "c d")
	whole, _ := w.Encode("a bc d")
	if !slices.Equal(cont, whole[len(ctx):]) {
		t.Errorf("continuation %v, want the tail %v of %v", cont, whole[len(ctx):], whole)
	}
}

func TestRequestInput(t *testing.T) {
	r := Request{Context: []int64{1, 2, 3, 4}, Continuation: []int64{5, 6}}
	for _, tc := range []struct {
		maxLen int
		inp    []int64
		first  int
	}{
		{0, []int64{1, 2, 3, 4, 5}, 3},
		{5, []int64{1, 2, 3, 4, 5}, 3},
		{3, []int64{3, 4, 5}, 1}, // (ctx+cont)[-(3+1):][:-1]
	} {
		inp, first, err := r.Input(tc.maxLen)
		if err != nil || !slices.Equal(inp, tc.inp) || first != tc.first {
			t.Errorf("Input(%d) = %v, %d, %v; want %v, %d", tc.maxLen, inp, first, err, tc.inp, tc.first)
		}
	}
	if _, _, err := r.Input(1); err == nil {
		t.Error("a continuation longer than the model's length was accepted")
	}
}

// table scores a request by a fixed value per continuation.
type table map[string]float64

func (tb table) LogLikelihoods(_ context.Context, reqs []Request) ([]float64, error) {
	out := make([]float64, len(reqs))
	for i, r := range reqs {
		var b strings.Builder
		for _, id := range r.Continuation {
			b.WriteByte(byte(id))
		}
		out[i] = tb[b.String()]
	}
	return out, nil
}

// TestEvaluateMetrics: acc takes the largest sum, acc_norm the largest sum per
// character of the choice (delimiter not counted), ties go to the first
// choice; the standard error is the sample one.
func TestEvaluateMetrics(t *testing.T) {
	task := &Task{Name: "t", Source: "t", Delimiter: " ", Examples: []Example{
		// sums -4 vs -6: acc picks "ab"; per character -2 vs -1: acc_norm picks "cdefgh".
		{Context: "q", Choices: []string{"ab", "cdefgh"}, Gold: 1, Line: 1},
		// a tie: both pick choice 0.
		{Context: "q", Choices: []string{"x", "y"}, Gold: 0, Line: 2},
		{Context: "q", Choices: []string{"x", "y"}, Gold: 1, Line: 3},
	}}
	sc := table{" ab": -4, " cdefgh": -6, " x": -1, " y": -1}
	var progress []int
	res, err := Evaluate(context.Background(), task, tokenizer.Bytes(), sc, Options{Batch: 3, Progress: func(d, _ int) { progress = append(progress, d) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acc != 1.0/3 || res.AccNorm != 2.0/3 {
		t.Errorf("acc %v acc_norm %v, want 1/3 and 2/3", res.Acc, res.AccNorm)
	}
	// sample stddev of {0,1,0} is √(1/3); over √3: 1/3.
	if se := *res.AccStderr; math.Abs(se-1.0/3) > 1e-15 {
		t.Errorf("acc_stderr %v, want 1/3", se)
	}
	if se := *res.AccNormStderr; math.Abs(se-1.0/3) > 1e-15 {
		t.Errorf("acc_norm_stderr %v, want 1/3", se)
	}
	if !slices.Equal(progress, []int{1, 2, 3}) {
		t.Errorf("progress %v, want 1 2 3", progress)
	}
	if MeanStderr([]float64{1}) != nil {
		t.Error("stderr of one value is not N/A")
	}
	avg := Average([]*Result{res, res})
	if avg.Acc != res.Acc || math.Abs(*avg.AccStderr-*res.AccStderr/math.Sqrt2) > 1e-15 {
		t.Errorf("average %v ± %v", avg.Acc, *avg.AccStderr)
	}
}

// TestEncodePairBPE: with a byte-level BPE tokenizer, "low " + "lower" splits
// as the harness splits it: "low" | "Ġlower" (the space joins the
// continuation's word), not "low" "Ġ" | "lower".
func TestEncodePairBPE(t *testing.T) {
	vocab := []string{"l", "o", "w", "e", "r", "s", "t", "Ġ", "lo", "low", "er", "Ġlow", "Ġlower", "es", "est"}
	v := map[string]int{}
	for i, tok := range vocab {
		v[tok] = i
	}
	doc, _ := json.Marshal(map[string]any{
		"version":       "1.0",
		"model":         map[string]any{"type": "BPE", "vocab": v, "merges": []string{"l o", "lo w", "e r", "Ġ low", "Ġlow er", "e s", "es t"}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
	})
	tok, err := tokenizer.Parse(doc, tokenizer.WithSpecialTokens(false))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"low ", "lower"}, {"low", " lower"}} {
		ctx, cont, err := EncodePair(tok, tc[0], tc[1])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ctx, []int64{9}) || !slices.Equal(cont, []int64{12}) {
			t.Errorf("EncodePair(%q, %q) = %v | %v, want [9] | [12]", tc[0], tc[1], ctx, cont)
		}
	}
	// Tokenized apart, "low " would end in a lone "Ġ" (7).
	if ids, _ := tok.Encode("low "); !slices.Equal(ids, []int64{9, 7}) {
		t.Errorf("Encode(\"low \") = %v, want [9 7]", ids)
	}
}
