package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/runtime"
)

// Encoder turns text into token ids (tokenizer.Tokenizer fits).
type Encoder interface {
	Encode(text string) ([]int64, error)
}

// EncodePair splits a (context, continuation) pair into tokens exactly as
// lm-evaluation-harness's _encode_pair does: trailing whitespace of the
// context moves to the front of the continuation; the continuation's tokens
// are what follows the context's token count in the tokens of the whole text
// context+continuation.
func EncodePair(tok Encoder, context, continuation string) (ctx, cont []int64, err error) {
	trimmed := strings.TrimRightFunc(context, unicode.IsSpace)
	if n := len(context) - len(trimmed); n > 0 {
		continuation = context[len(trimmed):] + continuation
		context = trimmed
	}
	whole, err := tok.Encode(context + continuation)
	if err != nil {
		return nil, nil, err
	}
	ctx, err = tok.Encode(context)
	if err != nil {
		return nil, nil, err
	}
	if len(ctx) > len(whole) {
		return ctx, nil, nil
	}
	return ctx, whole[len(ctx):], nil
}

// Request is one pair to score: the log-likelihood of Continuation given
// Context.
type Request struct {
	Context, Continuation []int64
}

// Input returns the tokens the model runs for r and the position of the first
// continuation token's prediction, as the harness builds them:
// (context+continuation)[-(maxLen+1):][:-1] (no truncation when maxLen ≤ 0).
func (r Request) Input(maxLen int) (inp []int64, first int, err error) {
	if len(r.Continuation) == 0 {
		return nil, 0, errors.New("the continuation has no tokens")
	}
	full := append(append(make([]int64, 0, len(r.Context)+len(r.Continuation)), r.Context...), r.Continuation...)
	if maxLen > 0 && len(full) > maxLen+1 {
		if len(r.Continuation) > maxLen {
			return nil, 0, fmt.Errorf("the continuation has %d tokens, more than the model's %d", len(r.Continuation), maxLen)
		}
		full = full[len(full)-(maxLen+1):]
	}
	inp = full[:len(full)-1]
	first = len(inp) - len(r.Continuation)
	if first < 0 {
		return nil, 0, errors.New("the context has no tokens")
	}
	return inp, first, nil
}

// Scorer returns the summed log-likelihood of each request.
type Scorer interface {
	LogLikelihoods(ctx context.Context, reqs []Request) ([]float64, error)
}

// Model scores requests with a causal language model run by the Go runtime.
// The requests of one call run as one batch, right-padded to one length
// (a causal model's logits at a position do not depend on later tokens).
// With a model that has a KV cache, requests that share their context (the
// choices of one example) run the context once and only their continuations
// in a batch that continues its cache.
type Model struct {
	Session *runtime.Session
	// MaxLength truncates inputs from the left (0: no limit).
	MaxLength int
	// NoCache runs every request whole even when the model has a KV cache.
	NoCache bool
	// InputTokens counts the tokens run, padding included.
	InputTokens int
}

// LogLikelihoods implements Scorer.
func (m *Model) LogLikelihoods(ctx context.Context, reqs []Request) ([]float64, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	logitsName, err := lm.LogitsName(m.Session)
	if err != nil {
		return nil, err
	}
	if kv := lm.FindKVCache(m.Session); kv != nil && !m.NoCache {
		lls := make([]float64, len(reqs))
		for lo := 0; lo < len(reqs); {
			hi := lo + 1
			for hi < len(reqs) && slices.Equal(reqs[hi].Context, reqs[lo].Context) {
				hi++
			}
			if err := m.shared(ctx, kv, logitsName, reqs[lo:hi], lls[lo:hi]); err != nil {
				return nil, err
			}
			lo = hi
		}
		return lls, nil
	}
	return m.batch(ctx, logitsName, reqs)
}

// shared scores requests of one context with the KV cache: the context runs
// once (its last logits predict each continuation's first token), then the
// continuations without their last token run as one batch after the
// context's presents, repeated along the batch.
func (m *Model) shared(ctx context.Context, kv *lm.KVCache, logitsName string, reqs []Request, lls []float64) error {
	c := reqs[0].Context
	T := 0
	for _, r := range reqs {
		if len(r.Continuation) == 0 {
			return errors.New("the continuation has no tokens")
		}
		if len(c) == 0 || m.MaxLength > 0 && len(c)+len(r.Continuation)-1 > m.MaxLength {
			// Truncation (or no context) changes the context per request.
			out, err := m.batch(ctx, logitsName, reqs)
			copy(lls, out)
			return err
		}
		T = max(T, len(r.Continuation)-1)
	}
	feeds, err := lm.Feeds(m.Session, [][]int64{c})
	if err != nil {
		return err
	}
	out, err := m.Session.RunContext(ctx, feeds, append([]string{logitsName}, kv.Present...))
	if err != nil {
		return err
	}
	m.InputTokens += len(c)
	first, V, err := lastRow(out[logitsName], 1, len(c))
	if err != nil {
		return err
	}
	for i, r := range reqs {
		for _, tok := range r.Continuation {
			if tok < 0 || tok >= int64(V) {
				return fmt.Errorf("token id %d is out of range for %d logits", tok, V)
			}
		}
		lls[i] = logProb(first, r.Continuation[0], V)
	}
	m.Session.Recycle(out[logitsName])
	if T == 0 {
		return nil
	}
	past := map[string]*runtime.Tensor{}
	for i, name := range kv.Present {
		if past[kv.Past[i]], err = repeatBatch(out[name], len(reqs)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	rows := make([][]int64, len(reqs))
	for i, r := range reqs {
		rows[i] = make([]int64, T)
		copy(rows[i], r.Continuation[:len(r.Continuation)-1])
	}
	feeds, err = lm.FeedsAfter(m.Session, rows, len(c), past)
	if err != nil {
		return err
	}
	out2, err := m.Session.RunContext(ctx, feeds, []string{logitsName})
	if err != nil {
		return err
	}
	m.InputTokens += len(rows) * T
	logits := out2[logitsName]
	defer m.Session.Recycle(logits)
	data := logits.Float32Data()
	if sh := logits.Shape(); len(sh) != 3 || sh[0] != len(rows) || sh[1] != T || sh[2] != V || data == nil {
		return fmt.Errorf("logits of shape %v (%v), want float32 [%d, %d, %d]", sh, logits.DType(), len(rows), T, V)
	}
	for i, r := range reqs {
		for j := 1; j < len(r.Continuation); j++ {
			row := data[(i*T+j-1)*V : (i*T+j)*V]
			lls[i] += logProb(row, r.Continuation[j], V)
		}
	}
	return nil
}

// lastRow returns the logits of the last of T positions of a [B, T, V] batch
// of one row.
func lastRow(logits *runtime.Tensor, B, T int) ([]float32, int, error) {
	sh, data := logits.Shape(), logits.Float32Data()
	if len(sh) != 3 || sh[0] != B || sh[1] != T || data == nil {
		return nil, 0, fmt.Errorf("logits of shape %v (%v), want float32 [%d, %d, vocab]", sh, logits.DType(), B, T)
	}
	V := sh[2]
	return append([]float32(nil), data[(T-1)*V:T*V]...), V, nil
}

// logProb is log softmax(row)[tok] (tok checked by the caller).
func logProb(row []float32, tok int64, V int) float64 {
	return float64(row[tok]) - lm.LogSumExp(row)
}

// repeatBatch repeats a [1, ...] float32 tensor n times along axis 0.
func repeatBatch(t *runtime.Tensor, n int) (*runtime.Tensor, error) {
	sh, data := t.Shape(), t.Float32Data()
	if len(sh) == 0 || sh[0] != 1 || data == nil {
		return nil, fmt.Errorf("cache of shape %v (%v), want float32 [1, ...]", sh, t.DType())
	}
	out := make([]float32, 0, n*len(data))
	for range n {
		out = append(out, data...)
	}
	sh[0] = n
	return runtime.FromSlice(sh, out)
}

// batch runs every request whole, right-padded to one length.
func (m *Model) batch(ctx context.Context, logitsName string, reqs []Request) ([]float64, error) {
	var err error
	inps := make([][]int64, len(reqs))
	firsts := make([]int, len(reqs))
	T := 0
	for i, r := range reqs {
		if inps[i], firsts[i], err = r.Input(m.MaxLength); err != nil {
			return nil, err
		}
		T = max(T, len(inps[i]))
	}
	rows := make([][]int64, len(reqs))
	for i, inp := range inps {
		rows[i] = make([]int64, T)
		copy(rows[i], inp)
	}
	feeds, err := lm.Feeds(m.Session, rows)
	if err != nil {
		return nil, err
	}
	out, err := m.Session.RunContext(ctx, feeds, []string{logitsName})
	if err != nil {
		return nil, err
	}
	m.InputTokens += len(rows) * T
	logits := out[logitsName]
	defer m.Session.Recycle(logits)
	sh := logits.Shape()
	data := logits.Float32Data()
	if len(sh) != 3 || sh[0] != len(rows) || sh[1] != T || data == nil {
		return nil, fmt.Errorf("logits of shape %v (%v), want float32 [%d, %d, vocab]", sh, logits.DType(), len(rows), T)
	}
	V := sh[2]
	lls := make([]float64, len(reqs))
	for i, r := range reqs {
		for j, tok := range r.Continuation {
			if tok < 0 || tok >= int64(V) {
				return nil, fmt.Errorf("token id %d is out of range for %d logits", tok, V)
			}
			row := data[(i*T+firsts[i]+j)*V : (i*T+firsts[i]+j+1)*V]
			lls[i] += float64(row[tok]) - lm.LogSumExp(row)
		}
	}
	return lls, nil
}

// Options tune Evaluate.
type Options struct {
	// Batch is the most rows (choices) per forward pass; the choices of one
	// example always run together (default 16).
	Batch int
	// Progress, when set, is called with the examples done.
	Progress func(done, total int)
}

// Result is a task's score, with the harness's field names.
type Result struct {
	Task          string   `json:"-"`
	Format        string   `json:"format"`
	N             int      `json:"n"`
	Acc           float64  `json:"acc"`
	AccStderr     *float64 `json:"acc_stderr"`
	AccNorm       float64  `json:"acc_norm"`
	AccNormStderr *float64 `json:"acc_norm_stderr"`
	// LogLikelihoods holds each example's choice scores.
	LogLikelihoods [][]float64 `json:"-"`
	Seconds        float64     `json:"seconds"`
}

// Evaluate scores every example of t: each choice by the sum of its
// continuation tokens' log-likelihoods given the context (EncodePair of the
// context and Delimiter+choice); acc is the share of examples whose highest
// sum is the gold choice, acc_norm the same with each sum divided by the
// choice's length in characters (without the delimiter), as the harness does.
// Ties go to the first choice (numpy's argmax).
func Evaluate(ctx context.Context, t *Task, tok Encoder, sc Scorer, opts Options) (*Result, error) {
	batch := opts.Batch
	if batch <= 0 {
		batch = 16
	}
	start := time.Now()
	res := &Result{Task: t.Name, Format: t.Format, N: len(t.Examples), LogLikelihoods: make([][]float64, len(t.Examples))}
	type pending struct {
		ex   int
		reqs []Request
	}
	var queue []pending
	rows := 0
	flush := func() error {
		if len(queue) == 0 {
			return nil
		}
		var all []Request
		for _, p := range queue {
			all = append(all, p.reqs...)
		}
		lls, err := sc.LogLikelihoods(ctx, all)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", t.Source, t.Examples[queue[0].ex].Line, err)
		}
		if len(lls) != len(all) {
			return fmt.Errorf("scorer returned %d log-likelihoods for %d requests", len(lls), len(all))
		}
		for _, p := range queue {
			res.LogLikelihoods[p.ex], lls = lls[:len(p.reqs)], lls[len(p.reqs):]
			if opts.Progress != nil {
				opts.Progress(p.ex+1, len(t.Examples))
			}
		}
		queue, rows = queue[:0], 0
		return nil
	}
	for i, ex := range t.Examples {
		reqs := make([]Request, len(ex.Choices))
		for j, c := range ex.Choices {
			cx, ct, err := EncodePair(tok, ex.Context, t.Delimiter+c)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: tokenize: %w", t.Source, ex.Line, err)
			}
			if len(ct) == 0 {
				return nil, fmt.Errorf("%s:%d: choice %d has no tokens of its own", t.Source, ex.Line, j)
			}
			reqs[j] = Request{Context: cx, Continuation: ct}
		}
		if rows > 0 && rows+len(reqs) > batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		queue = append(queue, pending{i, reqs})
		rows += len(reqs)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	acc := make([]float64, len(t.Examples))
	accNorm := make([]float64, len(t.Examples))
	for i, ex := range t.Examples {
		lls := res.LogLikelihoods[i]
		norm := make([]float64, len(lls))
		for j, c := range ex.Choices {
			norm[j] = lls[j] / float64(utf8.RuneCountInString(c))
		}
		if Argmax(lls) == ex.Gold {
			acc[i] = 1
		}
		if Argmax(norm) == ex.Gold {
			accNorm[i] = 1
		}
	}
	res.Acc, res.AccStderr = Mean(acc), MeanStderr(acc)
	res.AccNorm, res.AccNormStderr = Mean(accNorm), MeanStderr(accNorm)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// Argmax is the index of the first largest value (numpy's argmax: NaN wins).
func Argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if math.IsNaN(v) {
			return i
		}
		if v > x[best] {
			best = i
		}
	}
	return best
}

// Mean is the arithmetic mean.
func Mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// MeanStderr is the harness's mean_stderr: the sample standard deviation
// (n−1) over √n; nil (the harness's "N/A") for fewer than two values.
func MeanStderr(x []float64) *float64 {
	n := len(x)
	if n < 2 {
		return nil
	}
	mu := Mean(x)
	var ss float64
	for _, v := range x {
		ss += (v - mu) * (v - mu)
	}
	se := math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
	return &se
}

// Average is the unweighted mean of the tasks' acc and acc_norm (as the
// paper's "Avg." column), with standard errors combined as for independent
// tasks: √(Σ se²)/k.
func Average(rs []*Result) *Result {
	avg := &Result{Task: "average"}
	var se, seNorm float64
	okSE := true
	for _, r := range rs {
		avg.N += r.N
		avg.Acc += r.Acc / float64(len(rs))
		avg.AccNorm += r.AccNorm / float64(len(rs))
		avg.Seconds += r.Seconds
		if r.AccStderr == nil || r.AccNormStderr == nil {
			okSE = false
			continue
		}
		se += *r.AccStderr * *r.AccStderr
		seNorm += *r.AccNormStderr * *r.AccNormStderr
	}
	if okSE && len(rs) > 0 {
		a, b := math.Sqrt(se)/float64(len(rs)), math.Sqrt(seNorm)/float64(len(rs))
		avg.AccStderr, avg.AccNormStderr = &a, &b
	}
	return avg
}
