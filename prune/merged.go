package prune

import (
	"context"
	"fmt"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/rewrite"
)

// runMerged prunes optimum's merged decoder (package merged): it takes the
// model apart, measures and decides on the no-past half (what the model
// computes with use_cache_branch false: every calibration row from an empty
// past), makes the same edit to the with-past half (its own stack, the same
// windows, removed layers and merge rules, a repair on the same tensor) and
// joins the halves again: one If, the weights shared in the outer graph
// once, the KV names renumbered in both branches and in the graph's inputs
// and outputs.
func runMerged(ctx context.Context, m *pb.ModelProto, opts Options) (*Outcome, error) {
	if opts.Recover {
		return nil, optionErr("is not applied to optimum's merged decoder yet", OptionValue{"Recover", true})
	}
	if opts.ParamsRatio > 0 {
		return nil, optionErr("is not applied to optimum's merged decoder yet", OptionValue{"ParamsRatio", opts.ParamsRatio})
	}
	pair, err := merged.Split(m)
	if err != nil {
		return nil, err
	}
	br, err := discover.FindMerged(pair)
	if err != nil {
		return nil, fmt.Errorf("find decoder layers: %w", err)
	}
	out, err := Run(ctx, pair.NoPast, opts)
	if err != nil {
		return nil, err
	}
	plan := withPastPlan(out.plan, br.Slot)
	res, err := rewrite.Merge(pair.WithPast, br.WithPast, plan, out.rewriteOpts)
	if err != nil {
		return nil, fmt.Errorf("build the pruned model's with-past branch: %w", err)
	}
	if fmt.Sprint(res.KeptFrom) != fmt.Sprint(out.Report.KeptFrom) {
		return nil, fmt.Errorf("build the pruned model: the branches keep layers %v and %v", out.Report.KeptFrom, res.KeptFrom)
	}
	joined, err := merged.Join(out.Model, res.Model, merged.JoinOptions{GraphName: m.GetGraph().GetName(), Producer: m.GetProducerName(), KeepMeta: true})
	if err != nil {
		return nil, fmt.Errorf("build the pruned model: %w", err)
	}
	joined.IrVersion, joined.ProducerVersion, joined.Domain, joined.ModelVersion, joined.DocString = m.IrVersion, m.ProducerVersion, m.Domain, m.ModelVersion, m.DocString
	out.Model = joined
	out.Report.ParametersBefore, _ = onnx.Parameters(m)
	out.Report.ParametersAfter, _ = onnx.Parameters(joined)
	return out, nil
}

// withPastPlan is plan with each repair's slot in the with-past stack's
// numbering (slot maps no-past slots to with-past ones).
func withPastPlan(plan rewrite.Plan, slot []int) rewrite.Plan {
	p := plan
	p.Windows = append([]rewrite.Window(nil), plan.Windows...)
	for i, w := range p.Windows {
		if w.Repair != nil {
			r := *w.Repair
			r.Slot = slot[r.Slot]
			p.Windows[i].Repair = &r
		}
	}
	return p
}
