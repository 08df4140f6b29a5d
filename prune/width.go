package prune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/similarity"
)

// This file is the parameter target (Options.ParamsRatio): remove a share of
// the decoder layers' parameters, part by depth (the default method at a
// depth) and the rest by width (MLP channels of the kept layers, with FLAP's
// bias compensation), the mix chosen by the KL divergence of next-token
// distributions on the calibration rows held out from fitting (or fixed by
// Options.WidthRatio). docs/design/width.md says why and what it measured.

// WidthReport says how a parameter target was met and what was removed where.
type WidthReport struct {
	// ParamsRatio is the share of the decoder layers' parameters to remove;
	// WidthRatio the share of them asked of width, when fixed by hand.
	ParamsRatio float64  `json:"params_ratio"`
	WidthRatio  *float64 `json:"width_ratio,omitempty"`
	// DecoderParams counts the decoder layers' parameters before; Target how
	// many of them to remove; Removed how many were (depth + width, less any
	// bias the compensation added).
	DecoderParams int64 `json:"decoder_params"`
	Target        int64 `json:"target"`
	Removed       int64 `json:"removed"`
	// Mixes are the depth/width splits measured, Chosen the index of the one
	// kept (least KL on the held-out calibration rows).
	Mixes  []WidthMix `json:"mixes"`
	Chosen int        `json:"chosen"`
	// Layers says, for each layer of the result (by original index), its MLP
	// width before and after.
	Layers []WidthLayer `json:"layers"`
}

// WidthMix is one depth/width split of a parameter target.
type WidthMix struct {
	LayersRemoved   int   `json:"layers_removed"`
	DepthParams     int64 `json:"depth_params"`
	ChannelsRemoved int   `json:"channels_removed"`
	// HeadsRemoved is the number of query heads each layer loses (whole KV
	// groups); HeadsSkipped says why heads were not tried, if so.
	HeadsRemoved int    `json:"heads_removed_per_layer"`
	HeadsSkipped string `json:"heads_skipped,omitempty"`
	// WidthParams are the parameters channels and heads removed.
	WidthParams int64 `json:"width_params"`
	// KL is the mean KL(original ‖ candidate) of next-token distributions on
	// the calibration rows held out from the channel statistics and repairs.
	KL float64 `json:"kl_check"`
	// Skipped says why the split was not measured (the MLPs cannot give the
	// channels it asks).
	Skipped string `json:"skipped,omitempty"`
	// Score and Alloc are the channel choice kept, of the Variants measured
	// (each channel score with each allocation unless the options fix them).
	// Refit says the down projections were refitted by least squares
	// (refitDown) rather than given FLAP's mean compensation.
	Score    WidthScore     `json:"score,omitempty"`
	Alloc    WidthAlloc     `json:"alloc,omitempty"`
	Refit    bool           `json:"refit,omitempty"`
	Variants []WidthVariant `json:"variants,omitempty"`
}

// WidthVariant is one channel and head choice of a split and its held-out
// KL.
type WidthVariant struct {
	Heads int        `json:"heads_removed_per_layer"`
	Score WidthScore `json:"score"`
	Alloc WidthAlloc `json:"alloc"`
	Refit bool       `json:"refit"`
	KL    float64    `json:"kl_check"`
}

// WidthLayer is one kept layer's MLP width and head count change.
type WidthLayer struct {
	// From is the original layer (the lowest of a merged window).
	From        int  `json:"from"`
	Before      int  `json:"mlp_before"`
	After       int  `json:"mlp_after"`
	Compensated bool `json:"compensated"`
	AddedBias   bool `json:"added_bias,omitempty"`
	// HeadsBefore/After and KVHeadsBefore/After are the attention's query
	// and KV head counts (0 when not known).
	HeadsBefore   int `json:"heads_before"`
	HeadsAfter    int `json:"heads_after"`
	KVHeadsBefore int `json:"kv_heads_before"`
	KVHeadsAfter  int `json:"kv_heads_after"`
}

// widthMix is a measured split with what rebuilds it.
type widthMix struct {
	WidthMix
	depth rewrite.Plan
	lower int
	width rewrite.WidthPlan
	rep   *Report // the depth decision's report fields
	cos   float64 // the paper's criterion over all calibration rows
}

// decideParams meets opts.ParamsRatio: it measures each depth/width split and
// returns the best one's depth plan (with its lowest changed layer) and width
// plan (for the layers of the depth-pruned model), filling rep.
func decideParams(ctx context.Context, sc *scorer, L int, opts Options, rep *Report) (*widthMix, error) {
	st := sc.stack
	var dec int64
	for i := range st.Layers {
		dec += st.Layers[i].NumParams()
	}
	perLayer := dec / int64(L)
	target := int64(math.Round(opts.ParamsRatio * float64(dec)))
	maxDepth := int(target / perLayer)
	if maxDepth >= L {
		maxDepth = L - 1
	}
	depths := make([]int, 0, maxDepth+1)
	if opts.WidthRatio != nil {
		d := int(math.Round((1 - *opts.WidthRatio) * float64(target) / float64(perLayer)))
		depths = append(depths, min(d, maxDepth))
	} else {
		for d := 0; d <= maxDepth; d++ {
			depths = append(depths, d)
		}
	}
	a, err := newAutoEval(ctx, sc)
	if err != nil {
		return nil, err
	}
	wr := &WidthReport{ParamsRatio: opts.ParamsRatio, WidthRatio: opts.WidthRatio, DecoderParams: dec, Target: target}
	var best *widthMix
	var capErr *capacityError
	for _, d := range depths {
		mix, err := measureMix(ctx, sc, a, L, d, target, opts)
		if errors.As(err, &capErr) && opts.WidthRatio == nil {
			wr.Mixes = append(wr.Mixes, WidthMix{LayersRemoved: d, Skipped: capErr.msg})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("params ratio: %d layers removed: %w", d, err)
		}
		wr.Mixes = append(wr.Mixes, mix.WidthMix)
		if best == nil || mix.KL < best.KL {
			best, wr.Chosen = mix, len(wr.Mixes)-1
		}
	}
	if best == nil {
		return nil, fmt.Errorf("params ratio: no split of depth and width reaches it: %w", capErr)
	}
	// The chosen depth decision's report fields.
	if best.rep != nil {
		rep.Auto, rep.Merge, rep.TargetLayers = best.rep.Auto, best.rep.Merge, best.rep.TargetLayers
	}
	wr.Removed = best.DepthParams + best.WidthParams
	rep.Width = wr
	return best, nil
}

// measureMix builds the split that removes d layers by the default method and
// the rest of target by MLP channels, and measures it.
func measureMix(ctx context.Context, sc *scorer, a *autoEval, L, d int, target int64, opts Options) (*widthMix, error) {
	mix := &widthMix{lower: L}
	mix.LayersRemoved = d
	if d > 0 {
		mix.rep = &Report{TargetLayers: L - d}
		dopts := opts
		dopts.Method = Auto
		plan, lowest, err := decide(ctx, sc, L, L-d, dopts, mix.rep)
		if err != nil {
			return nil, err
		}
		mix.depth, mix.lower = plan, lowest
	}
	res, err := rewrite.Merge(sc.model, sc.stack, mix.depth, sc.candidateOptions())
	if err != nil {
		return nil, err
	}
	st, err := discover.Find(res.Model)
	if err != nil {
		return nil, fmt.Errorf("depth-pruned model: %w", err)
	}
	before, _ := onnx.Parameters(sc.model)
	after, _ := onnx.Parameters(res.Model)
	mix.DepthParams = before - after
	rest := target - mix.DepthParams
	if rest <= 0 {
		mix.KL, mix.cos, err = checkKL(ctx, a, res.Model, sc.rt)
		return mix, err
	}
	n := len(st.Layers)
	taps := make([]string, n)
	for i := range st.Layers {
		if taps[i], err = mlpTap(res.Model, &st.Layers[i]); err != nil {
			return nil, fmt.Errorf("width: layer %d: %w", i, err)
		}
	}
	htaps, tapErr := attnTaps(res.Model, st)
	heads, why, err := headOptions(st, htaps, tapErr, rest, opts)
	if err != nil {
		return nil, err
	}
	mix.HeadsSkipped = why
	if len(heads) > 1 || heads[0] > 0 {
		taps = append(taps, htaps...)
	}
	stats, err := collectStats(ctx, res.Model, taps, sc.cal, sc.rt, a.fitRows)
	if err != nil {
		return nil, err
	}
	first := true
	var capErr error
	for _, h := range heads {
		hcost, err := headCost(st, h)
		if err != nil {
			return nil, err
		}
		for _, score := range opts.widthScores() {
			for _, alloc := range opts.widthAllocs() {
				plan, channels, err := widthPlan(res.Model, st, stats[:n], rest-hcost, score, alloc)
				var ce *capacityError
				if errors.As(err, &ce) {
					capErr = err // more heads may leave fewer channels to remove
					continue
				}
				if err != nil {
					return nil, err
				}
				if channels == 0 && alloc != opts.widthAllocs()[0] {
					continue // the same heads-only plan
				}
				if h > 0 {
					if plan.Heads, err = headPlan(res.Model, st, stats[n:], h, score); err != nil {
						return nil, err
					}
				}
				for _, refit := range []bool{false, true} {
					if refit {
						if plan, err = refitDown(ctx, res.Model, st, sc.cal, sc.rt, a.fitRows, plan); err != nil {
							return nil, err
						}
					}
					wres, err := rewrite.Width(res.Model, st, plan, rewrite.Options{Meta: rewrite.Meta{Omit: true}})
					if err != nil {
						return nil, err
					}
					kl, cos, err := checkKL(ctx, a, wres.Model, sc.rt)
					if err != nil {
						return nil, err
					}
					mix.Variants = append(mix.Variants, WidthVariant{Score: score, Alloc: alloc, Refit: refit, Heads: h, KL: kl})
					if first || kl < mix.KL {
						first = false
						wafter, _ := onnx.Parameters(wres.Model)
						mix.width, mix.ChannelsRemoved, mix.HeadsRemoved, mix.WidthParams = plan, channels, h, after-wafter
						mix.KL, mix.cos, mix.Score, mix.Alloc, mix.Refit = kl, cos, score, alloc, refit
					}
				}
			}
		}
	}
	if first {
		return nil, capErr
	}
	return mix, nil
}

// widthPlan chooses the MLP channels of m's layers to remove for at least
// rest parameters, counting the biases the compensation adds, from the
// layers' channel statistics.
func widthPlan(m *pb.ModelProto, st *discover.Stack, stats []channelStats, rest int64, score WidthScore, alloc WidthAlloc) (rewrite.WidthPlan, int, error) {
	if rest <= 0 { // the heads removed meet the target
		return rewrite.WidthPlan{}, 0, nil
	}
	n := len(st.Layers)
	per, err := rewrite.MLPChannelParams(&st.Layers[0])
	if err != nil {
		return rewrite.WidthPlan{}, 0, fmt.Errorf("width: %w", err)
	}
	_, _, down, _ := rewrite.MLPProjections(&st.Layers[0])
	if down.Bias < 0 { // the compensation adds a bias to every pruned layer
		rest += int64(n) * down.Out
	}
	channels := int((rest + per - 1) / per)
	if alloc == PerLayer { // one width for every layer
		channels = (channels + n - 1) / n * n
	}
	scores := make([][]float64, n)
	for i := range st.Layers {
		_, _, down, _ := rewrite.MLPProjections(&st.Layers[i])
		if scores[i], err = scoreChannels(m, &st.Layers[i], down, stats[i], score); err != nil {
			return rewrite.WidthPlan{}, 0, fmt.Errorf("width: layer %d: %w", i, err)
		}
	}
	keep, err := allocate(scores, channels, alloc)
	if err != nil {
		return rewrite.WidthPlan{}, 0, err
	}
	var plan rewrite.WidthPlan
	for i, k := range keep {
		if len(k) == len(scores[i]) {
			continue
		}
		s := stats[i]
		mean := make([]float32, len(s.sum))
		for j := range mean {
			mean[j] = float32(s.sum[j] / s.n)
		}
		plan.MLP = append(plan.MLP, rewrite.MLPChannels{Layer: i, Keep: k, Mean: mean})
	}
	return plan, channels, nil
}

// checkKL is the mean KL(original ‖ m) of next-token distributions over the
// calibration rows held out from fitting (all rows when none are), and the
// paper's criterion (mean cosine of the final-normed states per sequence)
// over all rows.
func checkKL(ctx context.Context, a *autoEval, m *pb.ModelProto, rt runtime.Options) (kl, cos float64, err error) {
	sess, err := runtime.New(m, rt)
	if err != nil {
		return 0, 0, fmt.Errorf("candidate model: %w", err)
	}
	final := a.sc.stack.FinalNorm
	var sum, n, cosSum, seqs float64
	for bi, b := range a.sc.cal.batches {
		out, err := sess.RunContext(ctx, withHidden(sess, b, "", nil), []string{a.logits, final})
		if err != nil {
			return 0, 0, fmt.Errorf("candidate model: %w", err)
		}
		lg := out[a.logits].Float32Data()
		got, want := out[final].Float32Data(), b.final.Float32Data()
		if len(lg) != len(a.orig[bi].p) || len(got) != len(want) {
			return 0, 0, fmt.Errorf("candidate model: %d logits, the original %d", len(lg), len(a.orig[bi].p))
		}
		per := len(want) / len(b.rows)
		for r := range b.rows {
			c, err := similarity.Cosine(got[r*per:(r+1)*per], want[r*per:(r+1)*per])
			if err != nil {
				return 0, 0, err
			}
			cosSum += c
			seqs++
		}
		klTok, _ := a.orig[bi].tokenScores(lg, a.vocab, a.threads)
		T := len(klTok) / len(b.rows)
		for r := range b.rows {
			if a.fitRows < a.rows && a.firstRow[bi]+r < a.fitRows {
				continue
			}
			for _, v := range klTok[r*T : (r+1)*T] {
				sum += v
				n++
			}
		}
		sess.Recycle(out[a.logits])
	}
	a.sc.evaluations++
	return sum / n, cosSum / seqs, nil
}

// runParams is prune.Run for a parameter target: decide the mix, then build
// the result (depth rewrite with the run's options and metadata, then width).
func runParams(ctx context.Context, sc *scorer, L int, opts Options, rep *Report, t0 time.Time) (*Outcome, error) {
	best, err := decideParams(ctx, sc, L, opts, rep)
	if err != nil {
		return nil, err
	}
	meta := rewrite.Meta{Version: opts.Version, Method: "params", Extra: map[string]string{
		"params_ratio": fmt.Sprintf("%g", opts.ParamsRatio),
	}}
	res, err := rewrite.Merge(sc.model, sc.stack, best.depth, rewrite.Options{KeepKVNumbers: opts.KeepKVNumbers, Meta: meta, BLAS: runtime.BLAS(opts.Runtime.Threads)})
	if err != nil {
		return nil, fmt.Errorf("build the pruned model: %w", err)
	}
	model := res.Model
	st, err := discover.Find(model)
	if err != nil {
		return nil, fmt.Errorf("depth-pruned model: %w", err)
	}
	changes := map[int]rewrite.WidthChange{}
	if len(best.width.MLP) > 0 || len(best.width.Heads) > 0 {
		wres, err := rewrite.Width(model, st, best.width, rewrite.Options{Meta: meta})
		if err != nil {
			return nil, fmt.Errorf("build the width-pruned model: %w", err)
		}
		model = wres.Model
		for _, c := range wres.Changes {
			changes[c.Layer] = c
		}
	}
	for i, from := range res.KeptFrom {
		w := rewrite.MLPWidth(&st.Layers[i])
		wl := WidthLayer{From: from, Before: w, After: w}
		if a := st.Layers[i].Attention; a != nil {
			wl.HeadsBefore, wl.HeadsAfter, wl.KVHeadsBefore, wl.KVHeadsAfter = a.Heads, a.Heads, a.KVHeads, a.KVHeads
		}
		if c, ok := changes[i]; ok {
			wl.After, wl.Compensated, wl.AddedBias = c.After, c.Compensated, c.AddedBias
			if c.Heads != nil {
				wl.HeadsAfter, wl.KVHeadsAfter = c.Heads.After, c.Heads.KVAfter
			}
		}
		rep.Width.Layers = append(rep.Width.Layers, wl)
	}
	rep.LayersAfter = res.LayersAfter
	rep.KeptFrom = res.KeptFrom
	rep.ReachedTarget = true
	for _, w := range best.depth.Windows {
		if w.High > w.Low {
			rep.Windows = append(rep.Windows, [2]int{w.Low, w.High})
		}
	}
	sort.Slice(rep.Windows, func(i, j int) bool { return rep.Windows[i][0] < rep.Windows[j][0] })
	if rep.Windows == nil {
		rep.Windows = [][2]int{}
	}
	if rep.Trace == nil {
		rep.Trace = []TraceStep{}
	}
	rep.RemovedLayers = removedLayers(L, res.KeptFrom)
	rep.ParametersAfter, _ = onnx.Parameters(model)
	rep.Similarity = best.cos
	rep.Candidates = sc.evaluations
	rep.CandidateSeconds = sc.elapsed.Seconds()
	rep.WallSeconds = time.Since(t0).Seconds()
	return &Outcome{Model: model, Report: rep}, nil
}
