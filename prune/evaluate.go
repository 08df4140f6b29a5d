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

// score builds the model of plan and returns its criterion. lowest is the
// lowest layer the plan changes: everything below it equals the original, so
// the candidate runs from the cached stream entering that layer.
func (s *scorer) score(ctx context.Context, plan rewrite.Plan, lowest int) (float64, error) {
	t0 := time.Now()
	// Candidates keep the original KV-cache names, so the calibration feeds
	// (empty past_key_values.N for every original layer) stay valid; feeds of
	// removed layers are dropped below.
	res, err := rewrite.Merge(s.model, s.stack, plan, s.candidateOptions())
	if err != nil {
		return 0, err
	}
	sess, err := runtime.New(res.Model, s.rt)
	if err != nil {
		return 0, fmt.Errorf("candidate model: %w", err)
	}
	var sum float64
	var n int
	for _, b := range s.cal.batches {
		feeds := withHidden(sess, b, "", nil)
		if !s.fullRerun && lowest > 0 {
			feeds = withHidden(sess, b, s.stack.Hidden[lowest], b.hidden[lowest])
		}
		out, err := sess.RunContext(ctx, feeds, []string{s.stack.FinalNorm})
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
		sess.Recycle(out[s.stack.FinalNorm])
	}
	s.evaluations++
	s.elapsed += time.Since(t0)
	if s.step != nil {
		s.step()
	}
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
		plan.Windows = append(plan.Windows, rewrite.Window{Low: cw.Low, High: cw.High})
	}
	return w.score(ctx, plan, c.Low)
}

// candidateOptions are the rewrite options of a candidate model: nothing
// renamed, no metadata, repairs folded in with the runtime's matrix product.
func (s *scorer) candidateOptions() rewrite.Options {
	return rewrite.Options{KeepKVNumbers: true, Meta: rewrite.Meta{Omit: true}, BLAS: runtime.BLAS(s.rt.Threads)}
}
