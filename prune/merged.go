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
// past), and has rewrite.MergeBranches make the same edit to both halves and
// join them again.
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
	res, err := rewrite.MergeBranches(m, pair, br, out.plan, out.rewriteOpts)
	if err != nil {
		return nil, fmt.Errorf("build the pruned model: %w", err)
	}
	out.Model = res.Model
	out.Report.ParametersBefore, _ = onnx.Parameters(m)
	out.Report.ParametersAfter, _ = onnx.Parameters(res.Model)
	return out, nil
}
