package prune

import (
	"context"
	"fmt"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/runtime"
)

// Layer-major execution (issue 13). The calibration set is small: the residual
// stream of all its tokens at one boundary costs tokens × d × 4 bytes. So the
// runs below take the whole calibration set through one layer, then the next,
// instead of taking one batch through the whole model, then the next. Only
// one layer's weights are read at a time (pages of a memory-mapped weight
// file come and go), and each layer's plan of the runtime is built once and
// used for every batch.
//
// The runtime runs from any intermediate value: a step feeds the boundary
// h_i of every batch (plus the batch's graph inputs, from which masks and
// positions are derived) and fetches h_{i+1}.

// boundary names the stream's values at a layer boundary: h_i alone, or,
// on a stack whose residual adds are fused into the next norm
// (discover.Stack.Branch), h_i and the branch not yet added to it. The
// stream itself is their sum (calibBatch.stream); a run from a boundary feeds
// its values as they are.
type boundary []string

// walk runs sess over the batches bs layer-major. Each batch starts from
// start[j], the values of boundary from (nil and nil: from the token ids),
// goes through the boundaries path in order, one step for all batches at a
// time, and ends by fetching fetch, whose values end receives batch by batch
// (so a batch's logits can be used and recycled before the next batch's are
// made). visit, when set, sees every batch's values at each boundary of path
// (visit(i, vals) for path[i], vals[j] aligned with path[i]) and may keep
// them: then walk leaves them alone, else it hands a step's values back to
// the session once the next step has read them (never the start values,
// which belong to the caller).
func walk(ctx context.Context, sess *runtime.Session, bs []calibBatch, from boundary, start [][]*runtime.Tensor, path []boundary, fetch []string,
	visit func(i int, vals [][]*runtime.Tensor) error, end func(j int, out map[string]*runtime.Tensor) error) error {
	cur := start
	if len(from) == 0 {
		cur = make([][]*runtime.Tensor, len(bs))
	}
	owned := false // whether cur came from this walk's runs (and may be recycled)
	for i, names := range path {
		next := make([][]*runtime.Tensor, len(bs))
		for j, b := range bs {
			out, err := sess.RunContext(ctx, withStream(sess, b, from, cur[j]), names)
			if err != nil {
				return fmt.Errorf("batch %d: stream value %q: %w", j, names[0], err)
			}
			for _, n := range names {
				next[j] = append(next[j], out[n])
			}
		}
		if owned {
			for _, c := range cur {
				sess.Recycle(c...)
			}
		}
		owned = visit == nil
		if visit != nil {
			if err := visit(i, next); err != nil {
				return err
			}
		}
		from, cur = names, next
	}
	for j, b := range bs {
		out, err := sess.RunContext(ctx, withStream(sess, b, from, cur[j]), fetch)
		if err != nil {
			return fmt.Errorf("batch %d: %w", j, err)
		}
		if owned {
			sess.Recycle(cur[j]...)
		}
		if err := end(j, out); err != nil {
			return err
		}
	}
	return nil
}

// at is the boundary entering layer i (i = L: leaving the last layer).
func (s *scorer) at(i int) boundary { return stackBoundary(s.stack, i) }

func stackBoundary(st *discover.Stack, i int) boundary {
	if st.Branch != nil && st.Branch[i] != "" {
		return boundary{st.Hidden[i], st.Branch[i]}
	}
	return boundary{st.Hidden[i]}
}

// streamPath is the candidate model's stream values above layer lowest, up to
// (excluding) layer below: the outputs of the kept layers lowest..below−1.
// kept lists the original indices of the candidate's layers (ascending).
// A merged window keeps its lowest layer's output name; a removed run of layers
// is bridged by the rewrite, so the next kept layer reads that output.
func (s *scorer) streamPath(kept []int, lowest, below int) []boundary {
	var path []boundary
	for _, k := range kept {
		if k >= lowest && k < below {
			l := s.stack.Layers[k]
			b := boundary{l.Output}
			if l.OutputBranch != "" {
				b = append(b, l.OutputBranch)
			}
			path = append(path, b)
		}
	}
	return path
}
