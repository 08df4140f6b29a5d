package prune

import (
	"context"
	"fmt"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/similarity"
)

// calibration is what one run of the original model over the calibration set
// leaves for the search: the residual stream at every layer boundary (so a
// candidate that changes layers from k up can start at layer k), the reference
// final-normed hidden states, and each layer's Block Influence.
type calibration struct {
	batches []calibBatch
	// blockInfluence[i] = 1 − mean over calibration tokens of cos(h_i, h_{i+1}).
	blockInfluence []float64
	tokens         int
}

type calibBatch struct {
	rows  [][]int64
	feeds map[string]*runtime.Tensor // the model's inputs for these rows
	// hidden[i] is h_i, the stream entering layer i; hidden[L] leaves the last layer.
	hidden []*runtime.Tensor
	// branch[i], on a fused-residual stack (discover.Stack.Branch), is the
	// branch not yet added to hidden[i] (nil for i = 0); sum[i] is then the
	// stream hidden[i] + branch[i]. Both nil for other stacks.
	branch []*runtime.Tensor
	sum    [][]float32
	// final is the final-normed hidden state of the original model, [B, T, d].
	final *runtime.Tensor
}

// calibrate runs the original model over rows in batches of batch sequences,
// layer-major (walk): every batch through layer 0, then every batch through
// layer 1, and so on. step is called once per layer (and once for the
// embedding and once for the final norm).
func calibrate(ctx context.Context, sess *runtime.Session, st *discover.Stack, rows [][]int64, batch int, step func()) (*calibration, error) {
	bs, err := calibBatches(sess, rows, batch)
	if err != nil {
		return nil, err
	}
	path := make([]boundary, len(st.Hidden))
	for j := range bs {
		bs[j].hidden = make([]*runtime.Tensor, len(st.Hidden))
		if st.Branch != nil {
			bs[j].branch = make([]*runtime.Tensor, len(st.Hidden))
		}
	}
	for i := range path {
		path[i] = stackBoundary(st, i)
	}
	err = walk(ctx, sess, bs, nil, nil, path, []string{st.FinalNorm}, func(i int, vals [][]*runtime.Tensor) error {
		for j, v := range vals {
			bs[j].hidden[i] = v[0]
			if len(v) > 1 {
				bs[j].branch[i] = v[1]
			}
		}
		if step != nil {
			step()
		}
		return nil
	}, func(j int, out map[string]*runtime.Tensor) error {
		bs[j].final = out[st.FinalNorm]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	if step != nil {
		step()
	}
	return finishCalibration(sess, st, bs)
}

// calibrationSteps is the number of progress steps of the calibration run
// of a model of L layers (calibrate's step calls).
func calibrationSteps(L int) int { return L + 2 }

// calibBatches splits rows into batches of batch sequences with their feeds.
func calibBatches(sess *runtime.Session, rows [][]int64, batch int) ([]calibBatch, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("calibration set is empty")
	}
	if batch < 1 {
		batch = 1
	}
	var bs []calibBatch
	for start := 0; start < len(rows); start += batch {
		end := min(start+batch, len(rows))
		feeds, err := lm.Feeds(sess, rows[start:end])
		if err != nil {
			return nil, fmt.Errorf("calibration rows %d..%d: %w", start, end-1, err)
		}
		bs = append(bs, calibBatch{rows: rows[start:end], feeds: feeds})
	}
	return bs, nil
}

// finishCalibration computes the Block Influence of each of the L layers
// from the batches' cached streams.
func finishCalibration(sess *runtime.Session, st *discover.Stack, bs []calibBatch) (*calibration, error) {
	L := st.NumLayers()
	cal := &calibration{batches: bs}
	var biases [][]float32
	if st.Branch != nil {
		biases = make([][]float32, len(st.Hidden))
		for i := range biases {
			var err error
			if biases[i], err = branchBias(sess, stackBoundary(st, i)); err != nil {
				return nil, err
			}
		}
	}
	for j := range bs {
		if err := bs[j].sumBranches(biases); err != nil {
			return nil, err
		}
	}
	bi := make([]similarity.BlockInfluenceMean, L)
	for _, b := range bs {
		for i := range bi {
			d := b.width()
			if err := bi[i].Add(b.stream(i), b.stream(i+1), d); err != nil {
				return nil, fmt.Errorf("block influence of layer %d: %w", i, err)
			}
		}
		cal.tokens += len(b.rows) * len(b.rows[0])
	}
	for i := range bi {
		cal.blockInfluence = append(cal.blockInfluence, bi[i].Value())
	}
	return cal, nil
}

// calibrateBatchMajor is calibrate the way it ran first, and the reference
// the layer-major run is tested against: each batch through the whole model,
// fetching every boundary at once.
func calibrateBatchMajor(ctx context.Context, sess *runtime.Session, st *discover.Stack, rows [][]int64, batch int) (*calibration, error) {
	bs, err := calibBatches(sess, rows, batch)
	if err != nil {
		return nil, err
	}
	fetch := append(append([]string(nil), st.Hidden...), st.FinalNorm)
	for _, name := range st.Branch {
		if name != "" {
			fetch = append(fetch, name)
		}
	}
	for j := range bs {
		out, err := sess.RunContext(ctx, bs[j].feeds, fetch)
		if err != nil {
			return nil, fmt.Errorf("calibration batch %d: %w", j, err)
		}
		bs[j].final = out[st.FinalNorm]
		for i, name := range st.Hidden {
			bs[j].hidden = append(bs[j].hidden, out[name])
			if st.Branch != nil {
				bs[j].branch = append(bs[j].branch, out[st.Branch[i]]) // nil for ""
			}
		}
	}
	return finishCalibration(sess, st, bs)
}

// spanInfluence is the Block Influence of layers lo..hi taken together: 1 −
// the mean over calibration tokens of cos(h_lo, h_{hi+1}), from the cached
// stream (no model run). A window whose layers barely turn the stream is a
// cheap one to merge.
func (c *calibration) spanInfluence(lo, hi int) (float64, error) {
	var acc similarity.BlockInfluenceMean
	for _, b := range c.batches {
		if lo < 0 || hi+1 >= len(b.hidden) || lo > hi {
			return 0, fmt.Errorf("span %d..%d outside the %d layers", lo, hi, len(b.hidden)-1)
		}
		if err := acc.Add(b.stream(lo), b.stream(hi+1), b.width()); err != nil {
			return 0, fmt.Errorf("block influence of layers %d..%d: %w", lo, hi, err)
		}
	}
	return acc.Value(), nil
}

// removedInfluence is the auto method's screening score of window lo..hi: the
// window keeps (a merge of) layer lo and loses what layers lo+1..hi did to the
// stream, so the score is their span influence, 1 − cos(h_lo+1, h_hi+1).
func (c *calibration) removedInfluence(lo, hi int) (float64, error) {
	return c.spanInfluence(lo+1, hi)
}

// sumBranches computes sum[i] = hidden[i] + branch[i] (+ bias[i], the
// constant the boundary norm adds with the branch, when it adds one) on a
// fused-residual stack (nothing otherwise).
func (b *calibBatch) sumBranches(bias [][]float32) error {
	if b.branch == nil {
		return nil
	}
	b.sum = make([][]float32, len(b.hidden))
	for i, br := range b.branch {
		if br == nil {
			continue
		}
		h, r := b.hidden[i].Float32Data(), br.Float32Data()
		if len(h) != len(r) {
			return fmt.Errorf("boundary %d: %d stream values, %d branch values", i, len(h), len(r))
		}
		var c []float32
		if bias != nil {
			c = bias[i]
		}
		s, err := addBranch(h, r, c)
		if err != nil {
			return fmt.Errorf("boundary %d: %w", i, err)
		}
		b.sum[i] = s
	}
	return nil
}

// addBranch returns h + r + bias (bias broadcast along the last axis; nil
// for none) in a new slice.
func addBranch(h, r, bias []float32) ([]float32, error) {
	if len(bias) > 0 && len(h)%len(bias) != 0 {
		return nil, fmt.Errorf("a branch bias of %d values for a stream of %d", len(bias), len(h))
	}
	s := make([]float32, len(h))
	for k := range s {
		s[k] = h[k]
		if k < len(r) {
			s[k] += r[k]
		}
		if len(bias) > 0 {
			s[k] += bias[k%len(bias)]
		}
	}
	return s, nil
}

// branchBias is the constant the model of sess adds with the branch of
// boundary at (discover.BranchBias), nil when it adds none.
func branchBias(sess *runtime.Session, at boundary) ([]float32, error) {
	if len(at) < 2 {
		return nil, nil
	}
	name := discover.BranchBias(sess.Model(), at[1])
	if name == "" {
		return nil, nil
	}
	t, err := sess.Initializer(name)
	if err != nil {
		return nil, fmt.Errorf("the bias added with branch %q: %w", at[1], err)
	}
	return t.Float32Data(), nil
}

// stream is the residual stream entering layer i (leaving the last layer
// for i = L), [B, T, d] flattened: h_i, plus the branch not yet added on a
// fused-residual stack.
func (b calibBatch) stream(i int) []float32 {
	if b.sum != nil && b.sum[i] != nil {
		return b.sum[i]
	}
	return b.hidden[i].Float32Data()
}

// width is the stream's width d.
func (b calibBatch) width() int {
	h := b.hidden[0]
	return h.Dim(h.Rank() - 1)
}

// values are the values of boundary i as a run from it feeds them
// (aligned with stackBoundary).
func (b calibBatch) values(i int) []*runtime.Tensor {
	if b.branch != nil && b.branch[i] != nil {
		return []*runtime.Tensor{b.hidden[i], b.branch[i]}
	}
	return []*runtime.Tensor{b.hidden[i]}
}
