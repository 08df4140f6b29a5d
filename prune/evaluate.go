package prune

import (
	"context"
	"fmt"
	"slices"
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
	// logits names the logits value, when a caller fetches it (its runs
	// count the LM head's work).
	logits string
	// work is what the candidates ran, in layers and LM heads over the
	// calibration set.
	work work

	evaluations int
	elapsed     time.Duration
	step        func()
	// note, when set, tells the progress report where a search stands.
	note func(string)
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
	from  boundary
	lower int
	// kept lists the original index of each of the candidate's layers.
	kept []int
	t0   time.Time
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
	c := &candidate{Session: sess, sc: s, kept: res.KeptFrom, t0: t0}
	if fromStream && lowest > 0 {
		c.from, c.lower = s.at(lowest), lowest
	}
	return c, nil
}

// run runs the candidate layer-major (walk) over the calibration batches
// bs, from its start up to layer below (L: the whole stack), and fetches
// fetch there: below < L fetches values inside layer below (which runs),
// below = L values above the stack (the final norm, the logits). end receives
// each batch's fetched values. The work is counted in the scorer's units.
func (c *candidate) run(ctx context.Context, bs []calibBatch, below int, fetch []string, end func(j int, out map[string]*runtime.Tensor) error) error {
	s := c.sc
	var start [][]*runtime.Tensor
	var path []boundary
	if c.from == nil {
		path = append(path, s.at(0))
	} else {
		for _, b := range bs {
			start = append(start, b.values(c.lower))
		}
	}
	layers := s.streamPath(c.kept, c.lower, below)
	path = append(path, layers...)
	err := walk(ctx, c.Session, bs, c.from, start, path, fetch, nil, end)
	if err != nil {
		return fmt.Errorf("candidate model: %w", err)
	}
	n := len(layers)
	if below < s.stack.NumLayers() {
		n++ // the final fetch runs layer below
	}
	s.work.add(bs, s.cal, n, slices.Contains(fetch, s.logits))
	return nil
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
	if name == "" {
		return withStream(sess, b, nil, nil)
	}
	return withStream(sess, b, boundary{name}, []*runtime.Tensor{h})
}

// withStream returns b's feeds with the values of boundary at set to vals.
func withStream(sess *runtime.Session, b calibBatch, at boundary, vals []*runtime.Tensor) map[string]*runtime.Tensor {
	feeds := make(map[string]*runtime.Tensor, len(b.feeds)+len(at))
	for k, v := range b.feeds {
		// A candidate of a KV-cache model lacks the removed layers' past inputs.
		if sess.HasValue(k) {
			feeds[k] = v
		}
	}
	// A candidate whose attention lost KV heads declares fewer heads in its
	// (empty) pasts.
	for _, in := range sess.Inputs() {
		v, ok := feeds[in.Name]
		if !ok || v.Len() != 0 || len(in.Shape) != v.Rank() {
			continue
		}
		shape := v.Shape()
		changed := false
		for i, d := range in.Shape {
			if d.Size >= 0 && d.Size != shape[i] {
				shape[i], changed = d.Size, true
			}
		}
		if changed {
			if z, err := runtime.Zeros(v.DType(), shape); err == nil {
				feeds[in.Name] = z
			}
		}
	}
	for i, name := range at {
		feeds[name] = vals[i]
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
	err = cand.run(ctx, s.cal.batches, s.stack.NumLayers(), []string{s.stack.FinalNorm}, func(j int, out map[string]*runtime.Tensor) error {
		b := s.cal.batches[j]
		got, want := out[s.stack.FinalNorm].Float32Data(), b.final.Float32Data()
		if len(got) != len(want) {
			return fmt.Errorf("candidate model: final hidden state has %d values, the original %d", len(got), len(want))
		}
		per := len(want) / len(b.rows)
		for r := range b.rows {
			c, err := similarity.Cosine(got[r*per:(r+1)*per], want[r*per:(r+1)*per])
			if err != nil {
				return err
			}
			sum += c
			n++
		}
		cand.Recycle(out[s.stack.FinalNorm])
		return nil
	})
	if err != nil {
		return 0, err
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
