package prune

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/stats"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
)

// This file decides which MLP channels a width-pruned model keeps: channel
// statistics of the MLP's intermediate activations (the values its down
// projection reads, fetched as taps on the calibration rows), a score per
// channel, and how many channels each layer gives up.

// WidthScore is how an MLP channel's importance is scored.
type WidthScore string

// Channel scores.
const (
	// Fluctuation is FLAP's (An et al., 2024): the channel's variance over
	// calibration tokens times the squared norm of its down-projection row.
	// What the bias compensation cannot restore of a removed channel is its
	// variation about its mean, which this measures.
	Fluctuation WidthScore = "fluct"
	// Wanda is Wanda's |W|·‖x‖ (Sun et al., 2024) summed over the channel's
	// down-projection row: ‖x_j‖₂·Σ_o |W_down[j,o]|.
	Wanda WidthScore = "wanda"
)

// WidthScores lists the channel scores.
var WidthScores = []WidthScore{Fluctuation, Wanda}

// WidthAlloc is how the channels to remove are spread over the layers.
type WidthAlloc string

// Channel allocations.
const (
	// PerLayer removes the same number of channels from every layer.
	PerLayer WidthAlloc = "layer"
	// Global ranks every channel of every layer by its score standardized
	// within its layer (FLAP's global compression) and removes the lowest,
	// keeping at least an eighth of each layer's channels.
	Global WidthAlloc = "global"
)

// WidthAllocs lists the allocations.
var WidthAllocs = []WidthAlloc{PerLayer, Global}

// channelStats are one layer's MLP channel statistics over calibration
// tokens: per channel, the sum and the sum of squares of the value the down
// projection reads, in float64.
type channelStats struct {
	sum, sq []float64
	n       float64
}

// dataInput returns the value projection p of m reads (its data input).
func dataInput(m *pb.ModelProto, p *discover.Projection) (string, error) {
	node := m.GetGraph().GetNode()[p.Node]
	w := p.Weights[0].Input
	if w > 1 || len(node.GetInput()) < 2 {
		return "", fmt.Errorf("%s projection %s reads its weight at input %d", p.Role, node.GetName(), w)
	}
	return node.GetInput()[1-w], nil
}

// mlpTap returns the value layer l's down projection reads (its data input).
func mlpTap(m *pb.ModelProto, l *discover.Layer) (string, error) {
	_, _, down, err := rewrite.MLPProjections(l)
	if err != nil {
		return "", err
	}
	return dataInput(m, down)
}

// forFitRows runs sess on the calibration batches that hold the first
// fitRows rows, fetching taps, and calls fn with each batch's results and
// the number of its rows (the first n) that are fit rows; a tap's first n
// rows are the first n/rows of its values (rows are outermost in [B, T, F]
// and in the [B·T, F] a Gemm reads).
func forFitRows(ctx context.Context, sess *runtime.Session, cal *calibration, fitRows int, taps []string, fn func(out map[string]*runtime.Tensor, n, rows int) error) error {
	row := 0
	for _, b := range cal.batches {
		n := min(len(b.rows), fitRows-row)
		row += len(b.rows)
		if n <= 0 {
			break
		}
		out, err := sess.RunContext(ctx, withHidden(sess, b, "", nil), taps)
		if err != nil {
			return err
		}
		if err := fn(out, n, len(b.rows)); err != nil {
			return err
		}
	}
	return nil
}

// collectStats runs m (a candidate: every calibration feed it declares is
// fed) on the calibration rows that fit (the first fitRows rows) and
// returns the channel statistics of each tap (the input of a layer's down or
// o projection).
func collectStats(ctx context.Context, m *pb.ModelProto, taps []string, cal *calibration, rt runtime.Options, fitRows int) ([]channelStats, error) {
	sess, err := runtime.New(m, rt)
	if err != nil {
		return nil, fmt.Errorf("width: %w", err)
	}
	stats := make([]channelStats, len(taps))
	err = forFitRows(ctx, sess, cal, fitRows, taps, func(out map[string]*runtime.Tensor, n, rows int) error {
		for i, name := range taps {
			t := out[name]
			F := t.Dim(t.Rank() - 1)
			x := t.Float32Data()
			x = x[:len(x)/rows*n]
			s := &stats[i]
			if s.sum == nil {
				s.sum, s.sq = make([]float64, F), make([]float64, F)
			}
			for k := 0; k+F <= len(x); k += F {
				for j, v := range x[k : k+F] {
					f := float64(v)
					s.sum[j] += f
					s.sq[j] += f * f
				}
				s.n++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("width: channel statistics: %w", err)
	}
	for i, s := range stats {
		if s.n == 0 {
			return nil, fmt.Errorf("width: no calibration rows to score %s", taps[i])
		}
	}
	return stats, nil
}

// scoreChannels returns the score of each input feature of projection p (a
// down or o projection) of layer l in m.
func scoreChannels(m *pb.ModelProto, l *discover.Layer, p *discover.Projection, s channelStats, score WidthScore) ([]float64, error) {
	down := p
	wt, err := initializerFloats(m, l.Params[down.Matrix()].Name)
	if err != nil {
		return nil, err
	}
	F, out := int(down.In), int(down.Out)
	if len(s.sum) != F {
		return nil, fmt.Errorf("width: %d channel statistics for a width of %d", len(s.sum), F)
	}
	scores := make([]float64, F)
	for j := 0; j < F; j++ {
		var l1, l2 float64
		for o := 0; o < out; o++ {
			x := float64(wt[j*out+o])
			if down.Transposed {
				x = float64(wt[o*F+j])
			}
			l1 += math.Abs(x)
			l2 += x * x
		}
		mean := s.sum[j] / s.n
		switch score {
		case Wanda:
			scores[j] = math.Sqrt(s.sq[j]) * l1
		default:
			v := s.sq[j]/s.n - mean*mean
			scores[j] = math.Max(v, 0) * l2
		}
	}
	return scores, nil
}

// initializerFloats decodes the tensor named name, an initializer or a
// Constant node's value.
func initializerFloats(m *pb.ModelProto, name string) ([]float32, error) {
	for _, t := range m.GetGraph().GetInitializer() {
		if t.GetName() == name {
			return onnx.Float32s(t)
		}
	}
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() == "Constant" && len(n.GetOutput()) == 1 && n.GetOutput()[0] == name {
			for _, a := range n.GetAttribute() {
				if a.GetName() == "value" && a.GetT() != nil {
					return onnx.Float32s(a.GetT())
				}
			}
		}
	}
	return nil, fmt.Errorf("width: tensor %q not found", name)
}

// allocate chooses remove channels to drop over layers with the given scores
// and returns, per layer, the channels kept (ascending).
func allocate(scores [][]float64, remove int, alloc WidthAlloc) ([][]int, error) {
	type ch struct {
		layer, j int
		s        float64
	}
	total, capacity := 0, 0
	minKeep := make([]int, len(scores))
	for i, s := range scores {
		total += len(s)
		minKeep[i] = max(1, len(s)/8)
		capacity += len(s) - minKeep[i]
	}
	if remove > capacity {
		return nil, &capacityError{fmt.Sprintf("cannot remove %d MLP channels: at most %d of %d (every layer keeps an eighth)", remove, capacity, total)}
	}
	drop := make([]map[int]bool, len(scores))
	for i := range drop {
		drop[i] = map[int]bool{}
	}
	sorted := func(i int) []ch {
		var cs []ch
		for j, v := range scores[i] {
			cs = append(cs, ch{i, j, v})
		}
		sort.SliceStable(cs, func(a, b int) bool { return cs[a].s < cs[b].s })
		return cs
	}
	switch alloc {
	case Global:
		var all []ch
		for i, s := range scores {
			mean, variance := stats.MeanVar(s)
			sd := math.Sqrt(variance)
			if sd == 0 {
				sd = 1
			}
			for j, v := range s {
				all = append(all, ch{i, j, (v - mean) / sd})
			}
		}
		sort.SliceStable(all, func(a, b int) bool { return all[a].s < all[b].s })
		left := make([]int, len(scores))
		for i, s := range scores {
			left[i] = len(s)
		}
		for _, c := range all {
			if remove == 0 {
				break
			}
			if left[c.layer] > minKeep[c.layer] {
				drop[c.layer][c.j] = true
				left[c.layer]--
				remove--
			}
		}
	default:
		// Spread evenly; the first layers take the remainder.
		n := len(scores)
		for i := range scores {
			k := remove / n
			if i < remove%n {
				k++
			}
			cs := sorted(i)
			if k > len(cs)-minKeep[i] {
				return nil, &capacityError{fmt.Sprintf("layer %d cannot lose %d of its %d channels (every layer keeps an eighth)", i, k, len(cs))}
			}
			for _, c := range cs[:k] {
				drop[i][c.j] = true
			}
		}
	}
	keep := make([][]int, len(scores))
	for i, s := range scores {
		for j := range s {
			if !drop[i][j] {
				keep[i] = append(keep[i], j)
			}
		}
	}
	return keep, nil
}

// capacityError says a width share asks more channels than the MLPs can give.
type capacityError struct{ msg string }

func (e *capacityError) Error() string { return "width: " + e.msg }
