package prune

import (
	"context"
	"fmt"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/similarity"
	"github.com/onnxslm/onnxslm/slm"
)

// scorer measures candidate models against the original: the paper's merge
// criterion, the mean over calibration sequences of the cosine similarity
// between the flattened final-normed hidden states of the candidate and of the
// original model.
type scorer struct {
	model *pb.ModelProto
	stack *discover.Stack
	cal   *calibration
	rt    runtime.Options
	// fullRerun makes every candidate run from the token ids instead of from the
	// cached stream entering its lowest changed layer (for the benchmark that
	// shows what the cache saves).
	fullRerun bool

	evaluations int
	elapsed     time.Duration
	step        func()
}

// candidate is the model of a plan, built and ready to run on the
// calibration batches. Scoring, measuring and repair fitting all build their
// models through it, so all run from the cached stream alike and count alike.
type candidate struct {
	*runtime.Session
	sc *scorer
	// from is the stream value the runs start from ("" for the token ids), the
	// input of the lowest layer the plan changes; below it the model equals
	// the original.
	from  string
	lower int
	t0    time.Time
}

// candidate builds the model of plan; lowest is the lowest layer the plan
// changes. fromStream false runs it from the token ids (the naive search).
// Candidates keep the original KV-cache names, so the calibration feeds
// (empty past_key_values.N for every original layer) stay valid; feeds of
// removed layers are dropped.
func (s *scorer) candidate(plan rewrite.Plan, lowest int, fromStream bool) (*candidate, error) {
	t0 := time.Now()
	res, err := rewrite.Merge(s.model, s.stack, plan, s.candidateOptions())
	if err != nil {
		return nil, err
	}
	sess, err := runtime.New(res.Model, s.rt)
	if err != nil {
		return nil, fmt.Errorf("candidate model: %w", err)
	}
	c := &candidate{Session: sess, sc: s, t0: t0}
	if fromStream && lowest > 0 {
		c.from, c.lower = s.stack.Hidden[lowest], lowest
	}
	return c, nil
}

// feeds are batch b's inputs to the candidate.
func (c *candidate) feeds(b calibBatch) map[string]*runtime.Tensor {
	if c.from == "" {
		return withHidden(c.Session, b, "", nil)
	}
	return withHidden(c.Session, b, c.from, b.hidden[c.lower])
}

// done counts the candidate as one evaluation of the search, with its time
// since it was built, and reports the step.
func (c *candidate) done() {
	s := c.sc
	s.evaluations++
	s.elapsed += time.Since(c.t0)
	if s.step != nil {
		s.step()
	}
}

// withHidden returns b's feeds with the stream value name set to h.
func withHidden(sess *runtime.Session, b calibBatch, name string, h *runtime.Tensor) map[string]*runtime.Tensor {
	feeds := make(map[string]*runtime.Tensor, len(b.feeds)+1)
	for k, v := range b.feeds {
		// A candidate of a KV-cache model lacks the removed layers' past inputs.
		if sess.HasValue(k) {
			feeds[k] = v
		}
	}
	if name != "" {
		feeds[name] = h
	}
	return feeds
}

// score builds the model of plan and returns its criterion. lowest is the
// lowest layer the plan changes: everything below it equals the original, so
// the candidate runs from the cached stream entering that layer.
func (s *scorer) score(ctx context.Context, plan rewrite.Plan, lowest int) (float64, error) {
	cand, err := s.candidate(plan, lowest, !s.fullRerun)
	if err != nil {
		return 0, err
	}
	var sum float64
	var n int
	for _, b := range s.cal.batches {
		out, err := cand.RunContext(ctx, cand.feeds(b), []string{s.stack.FinalNorm})
		if err != nil {
			return 0, fmt.Errorf("candidate model: %w", err)
		}
		got, want := out[s.stack.FinalNorm].Float32Data(), b.final.Float32Data()
		if len(got) != len(want) {
			return 0, fmt.Errorf("candidate model: final hidden state has %d values, the original %d", len(got), len(want))
		}
		per := len(want) / len(b.rows)
		for r := range b.rows {
			c, err := similarity.Cosine(got[r*per:(r+1)*per], want[r*per:(r+1)*per])
			if err != nil {
				return 0, err
			}
			sum += c
			n++
		}
		cand.Recycle(out[s.stack.FinalNorm])
	}
	cand.done()
	return sum / float64(n), nil
}

// windowScorer adapts scorer to the sliding loop: a candidate is the committed
// windows plus one more, all merged with one rule.
type windowScorer struct {
	*scorer
	rule rewrite.Rule
}

func (w windowScorer) Similarity(ctx context.Context, committed []slm.Window, c slm.Window) (float64, error) {
	plan := rewrite.Plan{Rule: w.rule}
	for _, cw := range append(append([]slm.Window(nil), committed...), c) {
		plan.Windows = append(plan.Windows, rewrite.Window{Window: cw})
	}
	return w.score(ctx, plan, c.Low)
}

// candidateOptions are the rewrite options of a candidate model: nothing
// renamed, no metadata, repairs folded in with the runtime's matrix product.
func (s *scorer) candidateOptions() rewrite.Options {
	return rewrite.Options{KeepKVNumbers: true, Meta: rewrite.Meta{Omit: true}, BLAS: runtime.BLAS(s.rt.Threads)}
}
