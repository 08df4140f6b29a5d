package lm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/runtime"
)

// KVCache pairs a model's past key/value inputs with the outputs that hold
// them after a run: past_key_values.I.key → present.I.key (also past.I.key).
type KVCache struct {
	Past    []string // inputs
	Present []string // the outputs that feed them at the next step
}

// FindKVCache returns the model's KV cache, nil when it has none (no past
// inputs, or a past input without a matching present output).
func FindKVCache(s *runtime.Session) *KVCache {
	outs := map[string]bool{}
	for _, o := range s.Outputs() {
		outs[o.Name] = true
	}
	kv := &KVCache{}
	for _, in := range s.Inputs() {
		if !strings.HasPrefix(in.Name, "past") {
			continue
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(in.Name, "past_key_values"), "past")
		present := "present" + rest
		if !outs[present] {
			return nil
		}
		kv.Past = append(kv.Past, in.Name)
		kv.Present = append(kv.Present, present)
	}
	if len(kv.Past) == 0 {
		return nil
	}
	return kv
}

// GenerateOptions tune Generate.
type GenerateOptions struct {
	// MaxNewTokens is the number of tokens to generate (default 32).
	MaxNewTokens int
	// Temperature 0 decodes greedily (the first largest logit); above 0 it
	// samples from softmax(logits/Temperature) with a PCG seeded by Seed.
	Temperature float64
	Seed        uint64
	// NoCache runs the whole sequence at every step even when the model has
	// a KV cache.
	NoCache bool
	// MaxLength stops generation when the sequence reaches it (0: no limit).
	MaxLength int
	// Token, when set, is called with each new token as it is chosen.
	Token func(id int64)
}

// Generation is what Generate produced.
type Generation struct {
	Tokens []int64 // the new tokens, without the prompt
	// Cached says whether the KV cache was used.
	Cached         bool
	PromptTokens   int
	PrefillSeconds float64 // the prompt's run, which also gives the first new token
	DecodeSeconds  float64 // every later step
}

// PrefillTokensPerSecond is the prompt's tokens per second of its run.
func (g *Generation) PrefillTokensPerSecond() float64 {
	return rate(g.PromptTokens, g.PrefillSeconds)
}

// DecodeTokensPerSecond is the tokens after the first per second of decoding.
func (g *Generation) DecodeTokensPerSecond() float64 {
	return rate(len(g.Tokens)-1, g.DecodeSeconds)
}

func rate(n int, s float64) float64 {
	if n <= 0 || s <= 0 {
		return 0
	}
	return float64(n) / s
}

// Generate continues prompt with the model: with its KV cache when it has one
// (the prompt runs once, then one token per run with the presents fed back as
// past), else by running the whole sequence at every step.
func Generate(ctx context.Context, s *runtime.Session, prompt []int64, opts GenerateOptions) (*Generation, error) {
	if len(prompt) == 0 {
		return nil, errors.New("lm: empty prompt")
	}
	if opts.Temperature < 0 || math.IsNaN(opts.Temperature) || math.IsInf(opts.Temperature, 0) {
		return nil, fmt.Errorf("lm: temperature %v, want 0 (greedy) or more", opts.Temperature)
	}
	n := opts.MaxNewTokens
	if n <= 0 {
		n = 32
	}
	vocab, err := Vocab(s)
	if err != nil {
		return nil, err
	}
	if err := CheckTokens([][]int64{prompt}, vocab); err != nil {
		return nil, err
	}
	logitsName, err := LogitsName(s)
	if err != nil {
		return nil, err
	}
	if opts.MaxLength > 0 && len(prompt) >= opts.MaxLength {
		return nil, fmt.Errorf("lm: the prompt has %d tokens, the model takes at most %d", len(prompt), opts.MaxLength)
	}
	kv := FindKVCache(s)
	if opts.NoCache {
		kv = nil
	}
	g := &Generation{Cached: kv != nil, PromptTokens: len(prompt)}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6f6e6e78736c6d))
	seq := append([]int64{}, prompt...)
	fetch := []string{logitsName}
	if kv != nil {
		fetch = append(fetch, kv.Present...)
	}
	var past map[string]*runtime.Tensor
	for step := 0; step < n; step++ {
		if opts.MaxLength > 0 && len(seq) >= opts.MaxLength {
			break
		}
		start := time.Now()
		var feeds map[string]*runtime.Tensor
		if step == 0 || kv == nil {
			feeds, err = Feeds(s, [][]int64{seq})
		} else {
			feeds, err = FeedsAfter(s, [][]int64{{seq[len(seq)-1]}}, len(seq)-1, past)
		}
		if err != nil {
			return nil, err
		}
		out, err := s.RunContext(ctx, feeds, fetch)
		if err != nil {
			return nil, fmt.Errorf("lm: generating token %d: %w", step+1, err)
		}
		logits := out[logitsName]
		sh, data := logits.Shape(), logits.Float32Data()
		if len(sh) != 3 || sh[0] != 1 || sh[1] < 1 || data == nil {
			return nil, fmt.Errorf("lm: logits of shape %v (%v), want float32 [1, T, vocab]", sh, logits.DType())
		}
		V := sh[2]
		last := data[(sh[1]-1)*V : sh[1]*V]
		var next int64
		if opts.Temperature == 0 {
			next = int64(stats.Argmax(last))
		} else {
			next = int64(sample(last, opts.Temperature, rng))
		}
		s.Recycle(logits)
		if kv != nil {
			past = map[string]*runtime.Tensor{}
			for i, p := range kv.Present {
				past[kv.Past[i]] = out[p]
			}
		}
		if step == 0 {
			g.PrefillSeconds = time.Since(start).Seconds()
		} else {
			g.DecodeSeconds += time.Since(start).Seconds()
		}
		seq = append(seq, next)
		g.Tokens = append(g.Tokens, next)
		if opts.Token != nil {
			opts.Token(next)
		}
	}
	return g, nil
}

// FeedsAfter builds the inputs of rows (all of one length) that continue a
// cached past of pastLen positions: past maps each past input to its tensor
// (the presents of the run before, batch dimension len(rows)); the attention
// mask covers past and rows, positions count on from pastLen.
func FeedsAfter(s *runtime.Session, rows [][]int64, pastLen int, past map[string]*runtime.Tensor) (map[string]*runtime.Tensor, error) {
	return batchFeeds(s, rows, pastLen, func(in runtime.ValueInfo, _ int) (*runtime.Tensor, bool, error) {
		t := past[in.Name]
		return t, t != nil, nil
	})
}

// sample draws an index from softmax(z/temp), in float64.
func sample(z []float32, temp float64, rng *rand.Rand) int {
	mx := float64(z[stats.Argmax(z)])
	p := make([]float64, len(z))
	var sum float64
	for i, v := range z {
		p[i] = math.Exp((float64(v) - mx) / temp)
		sum += p[i]
	}
	u := rng.Float64() * sum
	for i, v := range p {
		u -= v
		if u < 0 {
			return i
		}
	}
	return len(p) - 1
}

// MaxPositions returns the longest sequence the model takes, 0 when it cannot
// tell: the model's max_position_embeddings (or n_positions) metadata, else
// the rows of a learned position table (a 2-D initializer whose name says
// "wpe" or "position", gathered by something other than input_ids).
func MaxPositions(s *runtime.Session) int {
	for _, p := range s.Model().GetMetadataProps() {
		switch p.GetKey() {
		case "max_position_embeddings", "n_positions":
			if n, err := strconv.Atoi(p.GetValue()); err == nil && n > 0 {
				return n
			}
		}
	}
	for _, n := range s.Model().GetGraph().GetNode() {
		if n.GetOpType() != "Gather" || len(n.GetInput()) != 2 || n.GetInput()[1] == "input_ids" {
			continue
		}
		name := strings.ToLower(n.GetInput()[0] + " " + n.GetName())
		if !strings.Contains(name, "wpe") && !strings.Contains(name, "position") {
			continue
		}
		if dims, err := s.InitializerShape(n.GetInput()[0]); err == nil && len(dims) == 2 {
			return dims[0]
		}
	}
	return 0
}
