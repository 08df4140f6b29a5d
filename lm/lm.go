// Package lm runs causal language models on token sets with the runtime:
// standard feeds, batching, next-token NLL and perplexity.
package lm

import (
	"context"
	"errors"
	"fmt"
	"math"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/onnxslm/onnxslm/runtime"
)

// LogitsName returns the name of the model's logits output: the output named
// "logits", else the only float32 output of rank 3.
func LogitsName(s *runtime.Session) (string, error) {
	var cands []string
	for _, o := range s.Outputs() {
		if o.Name == "logits" {
			return o.Name, nil
		}
		if o.DType == runtime.Float32 && len(o.Shape) == 3 {
			cands = append(cands, o.Name)
		}
	}
	if len(cands) == 1 {
		return cands[0], nil
	}
	return "", errors.New("lm: the model has no output named logits and no single float32 output of rank 3")
}

// Vocab returns the vocabulary size: the fixed last dimension of the logits
// output, else the first dimension of the embedding table that input_ids
// indexes.
func Vocab(s *runtime.Session) (int, error) {
	name, err := LogitsName(s)
	if err != nil {
		return 0, err
	}
	for _, o := range s.Outputs() {
		if o.Name == name && len(o.Shape) == 3 && o.Shape[2].Size > 0 {
			return o.Shape[2].Size, nil
		}
	}
	g := s.Model().GetGraph()
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Gather" && len(n.GetInput()) == 2 && n.GetInput()[1] == "input_ids" {
			if dims, err := s.InitializerShape(n.GetInput()[0]); err == nil && len(dims) == 2 {
				return dims[0], nil
			}
		}
	}
	return 0, errors.New("lm: cannot tell the vocabulary size (logits width not fixed, no embedding Gather on input_ids)")
}

// Feeds builds the inputs of one batch of token rows (all of one length) for
// the inputs the model declares: input_ids; attention_mask (ones);
// position_ids (0..T-1 per row); cache_position (0..T-1); use_cache_branch
// (false: optimum's merged decoder without past); and empty
// past_key_values.* (past length 0). Symbolic dimensions of past inputs that
// are neither the batch nor a sequence length are set to 1 (the tensors are
// empty either way). Any other input is an error.
func Feeds(s *runtime.Session, rows [][]int64) (map[string]*runtime.Tensor, error) {
	feeds, err := batchFeeds(s, rows, 0, func(in runtime.ValueInfo, B int) (*runtime.Tensor, bool, error) {
		if !strings.HasPrefix(in.Name, "past") {
			return nil, false, nil
		}
		t, err := emptyPast(in, B)
		return t, true, err
	})
	if err != nil {
		return nil, err
	}
	if _, ok := feeds["input_ids"]; !ok {
		return nil, errors.New("lm: the model has no input_ids input")
	}
	return feeds, nil
}

// batchFeeds builds the inputs of rows (all of one length) that follow
// pastLen positions already run: input_ids, attention_mask (ones over past
// and rows), position_ids and cache_position (counting on from pastLen).
// Every other input is past's to feed; ok false means lm does not know it.
func batchFeeds(s *runtime.Session, rows [][]int64, pastLen int, past func(in runtime.ValueInfo, B int) (t *runtime.Tensor, ok bool, err error)) (map[string]*runtime.Tensor, error) {
	if len(rows) == 0 {
		return nil, errors.New("lm: no token rows")
	}
	B, T := len(rows), len(rows[0])
	ids := make([]int64, 0, B*T)
	for i, r := range rows {
		if len(r) != T {
			return nil, fmt.Errorf("lm: row %d has %d tokens, row 0 has %d (rows of one batch must have one length)", i, len(r), T)
		}
		ids = append(ids, r...)
	}
	feeds := map[string]*runtime.Tensor{}
	for _, in := range s.Inputs() {
		var t *runtime.Tensor
		var err error
		switch in.Name {
		case "input_ids":
			t, err = intTensor(in, []int{B, T}, ids)
		case "attention_mask":
			ones := make([]int64, B*(pastLen+T))
			for i := range ones {
				ones[i] = 1
			}
			t, err = intTensor(in, []int{B, pastLen + T}, ones)
		case "position_ids":
			pos := make([]int64, B*T)
			for i := range pos {
				pos[i] = int64(pastLen + i%T)
			}
			t, err = intTensor(in, []int{B, T}, pos)
		case "use_cache_branch":
			// optimum's merged decoder: the with-past branch once there is a past.
			t, err = runtime.FromSlice([]int{1}, []bool{pastLen > 0})
		case "cache_position":
			pos := make([]int64, T)
			for i := range pos {
				pos[i] = int64(pastLen + i)
			}
			t, err = intTensor(in, []int{T}, pos)
		default:
			var ok bool
			if t, ok, err = past(in, B); !ok && err == nil {
				return nil, fmt.Errorf("lm: the model declares input %q, which lm does not know how to feed", in.Name)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("lm: input %q: %w", in.Name, err)
		}
		feeds[in.Name] = t
	}
	return feeds, nil
}

// intTensor makes a tensor of the input's declared type from int64 values.
func intTensor(in runtime.ValueInfo, shape []int, v []int64) (*runtime.Tensor, error) {
	switch in.DType {
	case runtime.Int64, runtime.Invalid:
		return runtime.NewInt64(shape, v)
	case runtime.Int32:
		w := make([]int32, len(v))
		for i, x := range v {
			if x > math.MaxInt32 || x < math.MinInt32 {
				return nil, fmt.Errorf("value %d does not fit int32", x)
			}
			w[i] = int32(x)
		}
		return runtime.FromSlice(shape, w)
	case runtime.Float32:
		w := make([]float32, len(v))
		for i, x := range v {
			w[i] = float32(x)
		}
		return runtime.FromSlice(shape, w)
	case runtime.Bool:
		w := make([]bool, len(v))
		for i, x := range v {
			w[i] = x != 0
		}
		return runtime.FromSlice(shape, w)
	}
	return nil, fmt.Errorf("declared type %v is not supported", in.DType)
}

// emptyPast makes a zero-length past key/value input.
func emptyPast(in runtime.ValueInfo, batch int) (*runtime.Tensor, error) {
	if in.Shape == nil {
		return nil, errors.New("no declared shape")
	}
	shape := make([]int, len(in.Shape))
	sawPast := false
	for i, d := range in.Shape {
		p := strings.ToLower(d.Param)
		switch {
		case d.Size >= 0:
			shape[i] = d.Size
		case strings.Contains(p, "batch"):
			shape[i] = batch
		case strings.Contains(p, "past") || strings.Contains(p, "seq") || strings.Contains(p, "length"):
			shape[i] = 0
			sawPast = true
		default:
			shape[i] = 1
		}
	}
	if !sawPast {
		return nil, fmt.Errorf("no past-length dimension in declared shape %v", in.Shape)
	}
	dt := in.DType
	if dt == runtime.Invalid {
		dt = runtime.Float32
	}
	return runtime.Zeros(dt, shape)
}

// NLL returns the summed next-token negative log-likelihood (nats) of rows
// under logits [B, T, V] (position t predicts token t+1) and the number of
// predictions, B·(T−1). The log-sum-exp runs in float64.
func NLL(logits *runtime.Tensor, rows [][]int64) (float64, int, error) {
	sh := logits.Shape()
	if len(sh) != 3 || sh[0] != len(rows) {
		return 0, 0, fmt.Errorf("lm: logits of shape %v for %d rows", sh, len(rows))
	}
	B, T, V := sh[0], sh[1], sh[2]
	data := logits.Float32Data()
	if data == nil {
		return 0, 0, fmt.Errorf("lm: logits are %v, want float32", logits.DType())
	}
	for b, r := range rows {
		if len(r) != T {
			return 0, 0, fmt.Errorf("lm: row %d has %d tokens, logits have %d positions", b, len(r), T)
		}
		for t := 1; t < T; t++ {
			if r[t] < 0 || r[t] >= int64(V) {
				return 0, 0, fmt.Errorf("lm: row %d, column %d: token id %d is out of range for %d logits", b, t, r[t], V)
			}
		}
	}
	// One NLL per predicted position, computed in parallel, summed in order
	// (so the result does not depend on the number of goroutines).
	P := max(T-1, 0)
	nll := make([]float64, B*P)
	workers := min(goruntime.GOMAXPROCS(0), max(len(nll)*V/(1<<18), 1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(nll); i += workers {
				b, t := i/P, i%P
				row := data[(b*T+t)*V : (b*T+t+1)*V]
				nll[i] = LogSumExp(row) - float64(row[rows[b][t+1]])
			}
		}()
	}
	wg.Wait()
	var sum float64
	for _, x := range nll {
		sum += x
	}
	return sum, B * max(T-1, 0), nil
}

// Options tune Perplexity.
type Options struct {
	// Batch is the number of sequences per Run (default 8).
	Batch int
	// Progress, when set, is called after each batch with the sequences done.
	Progress func(done, total int)
}

// Result is the outcome of Perplexity.
type Result struct {
	Perplexity float64 // exp(MeanNLL)
	MeanNLL    float64 // nats per predicted token
	// Tokens is the number of predicted positions, N·(T−1).
	Tokens int
	// InputTokens is the number of tokens run through the model, N·T.
	InputTokens int
	Seconds     float64
	// TokensPerSecond is InputTokens per second of model time.
	TokensPerSecond float64
}

// LogSumExp is log Σ_j exp(z_j) of one row of logits, in float64 (stable:
// the maximum is taken out first).
func LogSumExp(z []float32) float64 {
	mx := math.Inf(-1)
	for _, x := range z {
		mx = max(mx, float64(x)) // as math.Max: NaN wins, +0 above −0; inlined
	}
	var s float64
	for _, x := range z {
		s += math.Exp(float64(x) - mx)
	}
	return mx + math.Log(s)
}

// Perplexity runs every row of rows through the model in batches and returns
// exp(mean next-token NLL) over all predicted positions. Rows must all have
// the same length and every id must be inside the vocabulary.
func Perplexity(ctx context.Context, s *runtime.Session, rows [][]int64, opts Options) (*Result, error) {
	if len(rows) == 0 {
		return nil, errors.New("lm: no token rows")
	}
	vocab, err := Vocab(s)
	if err != nil {
		return nil, err
	}
	if err := CheckTokens(rows, vocab); err != nil {
		return nil, err
	}
	logits, err := LogitsName(s)
	if err != nil {
		return nil, err
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = 8
	}
	res := &Result{}
	var sum float64
	start := time.Now()
	for lo := 0; lo < len(rows); lo += batch {
		hi := min(lo+batch, len(rows))
		feeds, err := Feeds(s, rows[lo:hi])
		if err != nil {
			return nil, err
		}
		out, err := s.RunContext(ctx, feeds, []string{logits})
		if err != nil {
			return nil, fmt.Errorf("lm: rows %d..%d: %w", lo, hi-1, err)
		}
		nll, n, err := NLL(out[logits], rows[lo:hi])
		s.Recycle(out[logits]) // the batch's logits are done with: reuse their memory
		if err != nil {
			return nil, err
		}
		sum += nll
		res.Tokens += n
		res.InputTokens += (hi - lo) * len(rows[lo])
		if opts.Progress != nil {
			opts.Progress(hi, len(rows))
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Tokens == 0 {
		return nil, errors.New("lm: sequences of one token have nothing to predict")
	}
	res.MeanNLL = sum / float64(res.Tokens)
	res.Perplexity = math.Exp(res.MeanNLL)
	if res.Seconds > 0 {
		res.TokensPerSecond = float64(res.InputTokens) / res.Seconds
	}
	return res, nil
}

// CheckTokens checks that rows all have one length and every id is in
// [0, vocab).
func CheckTokens(rows [][]int64, vocab int) error {
	for i, r := range rows {
		if len(r) != len(rows[0]) {
			return fmt.Errorf("lm: row %d has %d tokens, row 0 has %d", i, len(r), len(rows[0]))
		}
		for j, id := range r {
			if id < 0 || id >= int64(vocab) {
				return fmt.Errorf("lm: row %d, column %d: token id %d is out of range for a vocabulary of %d", i, j, id, vocab)
			}
		}
	}
	return nil
}
