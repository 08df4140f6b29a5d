package prune

import (
	"fmt"
	"sort"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
)

// This file decides which attention heads a width-pruned model keeps: every
// layer loses the same number of whole KV groups (a KV head with its query
// heads; a query head without grouped-query attention), those whose heads'
// o-projection inputs score least, with the channel scores of
// width_channels.go summed over a group's features. docs/design/width.md
// says why per layer and why whole groups.

// attnTaps returns, per layer of st, the value its o projection reads (the
// attention's merged heads), or nil when some layer's heads cannot be pruned
// (why).
func attnTaps(m *pb.ModelProto, st *discover.Stack) ([]string, error) {
	taps := make([]string, len(st.Layers))
	for i := range st.Layers {
		_, _, _, _, o, _, err := rewrite.AttnProjections(&st.Layers[i])
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if taps[i], err = dataInput(m, o); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return taps, nil
}

// headCost is the number of parameters removing h query heads (h/G whole
// groups) from every layer of st removes, less the o biases the compensation
// adds.
func headCost(st *discover.Stack, h int) (int64, error) {
	if h == 0 {
		return 0, nil
	}
	var n int64
	for i := range st.Layers {
		per, err := rewrite.HeadParams(&st.Layers[i])
		if err != nil {
			return 0, err
		}
		_, _, _, _, o, _, _ := rewrite.AttnProjections(&st.Layers[i])
		n += int64(h) * per
		if o.Bias < 0 {
			n -= o.Out
		}
	}
	return n, nil
}

// headOptions are the numbers of query heads per layer a split that asks
// rest parameters of width tries: 0, then whole KV groups while their
// parameters fit in rest (every layer keeps a group); or the one
// Options.WidthHeads fixes. why says why heads are not tried, if so.
func headOptions(st *discover.Stack, taps []string, tapErr error, rest int64, opts Options) (hs []int, why string, err error) {
	if opts.WidthHeads != nil && *opts.WidthHeads == 0 {
		return []int{0}, "", nil
	}
	if tapErr != nil {
		if opts.WidthHeads != nil {
			return nil, "", fmt.Errorf("width heads: %w", tapErr)
		}
		return []int{0}, tapErr.Error(), nil
	}
	a := st.Layers[0].Attention
	G := a.Heads / a.KVHeads
	if opts.WidthHeads != nil {
		h := *opts.WidthHeads
		if h%G != 0 || h >= a.Heads {
			return nil, "", fmt.Errorf("width heads: %d query heads per layer: want whole KV groups of %d, fewer than the %d heads", h, G, a.Heads)
		}
		cost, err := headCost(st, h)
		if err != nil {
			return nil, "", err
		}
		if cost > rest {
			return nil, "", &capacityError{fmt.Sprintf("%d heads per layer remove %d parameters, more than the %d asked of width", h, cost, rest)}
		}
		return []int{h}, "", nil
	}
	hs = []int{0}
	for g := 1; g < a.KVHeads; g++ {
		cost, err := headCost(st, g*G)
		if err != nil {
			return []int{0}, err.Error(), nil
		}
		if cost > rest {
			break
		}
		hs = append(hs, g*G)
	}
	return hs, "", nil
}

// headPlan chooses, in every layer of m, the h query heads (whole KV groups)
// whose o-projection input features score least, with the means of those
// features for FLAP's compensation.
func headPlan(m *pb.ModelProto, st *discover.Stack, stats []channelStats, h int, score WidthScore) ([]rewrite.AttnHeads, error) {
	var plan []rewrite.AttnHeads
	for i := range st.Layers {
		l := &st.Layers[i]
		_, _, _, _, o, a, err := rewrite.AttnProjections(l)
		if err != nil {
			return nil, err
		}
		feat, err := scoreChannels(m, l, o, stats[i], score)
		if err != nil {
			return nil, fmt.Errorf("heads: layer %d: %w", i, err)
		}
		G, D := a.Heads/a.KVHeads, a.HeadDim
		group := make([]float64, a.KVHeads)
		for j, s := range feat {
			group[j/D/G] += s
		}
		order := make([]int, a.KVHeads)
		for g := range order {
			order[g] = g
		}
		sort.SliceStable(order, func(x, y int) bool { return group[order[x]] < group[order[y]] })
		drop := map[int]bool{}
		for _, g := range order[:h/G] {
			drop[g] = true
		}
		c := rewrite.AttnHeads{Layer: i}
		for q := 0; q < a.Heads; q++ {
			if !drop[q/G] {
				c.Keep = append(c.Keep, q)
			}
		}
		s := stats[i]
		c.Mean = make([]float32, len(s.sum))
		for j := range c.Mean {
			c.Mean[j] = float32(s.sum[j] / s.n)
		}
		plan = append(plan, c)
	}
	return plan, nil
}
