package rewrite

import (
	"fmt"
	"slices"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// MergeBranches applies plan, made for br.NoPast (the no-past half's stack),
// to both halves of optimum's merged decoder m (pair = merged.Split(m), br =
// discover.FindMerged(pair)) and joins them again: one If on
// use_cache_branch, every weight once in the outer graph (a window's fused
// weights come out equal in both halves, so they are one tensor), names
// kept, the KV-cache inputs and outputs renumbered in both branches and in
// the graph's interface. A repair names a slot of the no-past stack; the
// with-past half gets the same tensor's slot (br.Slot). The result's fields
// are the no-past half's, its Model the joined model.
func MergeBranches(m *pb.ModelProto, pair *merged.Pair, br *discover.Branches, plan Plan, opt Options) (*Result, error) {
	noPast, err := Merge(pair.NoPast, br.NoPast, plan, opt)
	if err != nil {
		return nil, fmt.Errorf("rewrite: the no-past branch: %w", err)
	}
	wp := plan
	wp.Windows = slices.Clone(plan.Windows)
	for i, w := range wp.Windows {
		if w.Repair != nil {
			if w.Repair.Slot < 0 || w.Repair.Slot >= len(br.Slot) {
				return nil, fmt.Errorf("rewrite: repair of slot %d: the layers have %d", w.Repair.Slot, len(br.Slot))
			}
			r := *w.Repair
			r.Slot = br.Slot[r.Slot]
			wp.Windows[i].Repair = &r
		}
	}
	withPast, err := Merge(pair.WithPast, br.WithPast, wp, opt)
	if err != nil {
		return nil, fmt.Errorf("rewrite: the with-past branch: %w", err)
	}
	if !slices.Equal(noPast.KeptFrom, withPast.KeptFrom) {
		return nil, fmt.Errorf("rewrite: the branches keep layers %v and %v", noPast.KeptFrom, withPast.KeptFrom)
	}
	joined, err := merged.Join(noPast.Model, withPast.Model, merged.JoinOptions{GraphName: m.GetGraph().GetName(), Producer: m.GetProducerName(), KeepMeta: true})
	if err != nil {
		return nil, fmt.Errorf("rewrite: join the branches: %w", err)
	}
	joined.IrVersion, joined.ProducerVersion, joined.Domain, joined.ModelVersion, joined.DocString = m.IrVersion, m.ProducerVersion, m.Domain, m.ModelVersion, m.DocString
	res := *noPast
	res.Model = joined
	for k, v := range withPast.Renamed {
		if res.Renamed == nil {
			res.Renamed = map[string]string{}
		}
		res.Renamed[k] = v
	}
	return &res, nil
}
