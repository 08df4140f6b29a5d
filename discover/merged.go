package discover

import (
	"fmt"
	"slices"

	"github.com/onnxslm/onnxslm/merged"
)

// Branches are the decoder stacks of the two halves of optimum's merged
// decoder.
type Branches struct {
	NoPast, WithPast *Stack
	// Slot maps the no-past stack's parameter slots to the with-past
	// stack's: slot k of a no-past layer holds the tensor of slot Slot[k]
	// of the same with-past layer. Slots are numbered in structural order,
	// which the KV concat of the with-past graph changes.
	Slot []int
}

// FindMerged finds the decoder stack of both halves of optimum's merged
// decoder (merged.Split) and checks that they are one stack: as many
// layers, the same period, and in every layer the same parameters (the same
// tensors: the weights the two branches share in the outer graph), in the
// same slot order up to one permutation, and the same LM head. Pruning
// measures on the no-past half and edits both alike, which is right only
// then.
func FindMerged(p *merged.Pair) (*Branches, error) {
	a, err := Find(p.NoPast)
	if err != nil {
		return nil, fmt.Errorf("discover: the merged decoder's no-past branch: %w", err)
	}
	b, err := Find(p.WithPast)
	if err != nil {
		return nil, fmt.Errorf("discover: the merged decoder's with-past branch: %w", err)
	}
	slot, err := sameStack(a, b)
	if err != nil {
		return nil, fmt.Errorf("discover: the merged decoder's branches differ: %w", err)
	}
	return &Branches{NoPast: a, WithPast: b, Slot: slot}, nil
}

// sameStack reports how a and b differ as stacks of layers over the same
// weights (nil), and maps a's slots to b's. Slots may come in another order in each (their order is
// structural, and the KV concat of the with-past graph changes the
// structure); the permutation must be the same in every layer, so that a
// window fuses the same tensors in both.
func sameStack(a, b *Stack) ([]int, error) {
	if a.NumLayers() != b.NumLayers() || a.Period != b.Period {
		return nil, notDecoder(-1, "%d layers of %d residual branches without past, %d of %d with past", a.NumLayers(), a.Period, b.NumLayers(), b.Period)
	}
	if a.LMHeadWeight != b.LMHeadWeight {
		return nil, notDecoder(-1, "LM head weights %q and %q", a.LMHeadWeight, b.LMHeadWeight)
	}
	var perm []int // b's slot k is a's slot perm[k]
	for i := range a.Layers {
		pa, pb := a.Layers[i].Params, b.Layers[i].Params
		if len(pa) != len(pb) {
			return nil, notDecoder(i, "layer %d has %d parameters without past, %d with past", i, len(pa), len(pb))
		}
		for k := range pb {
			j := slices.IndexFunc(pa, func(p Param) bool { return p.Name == pb[k].Name && p.Kind == pb[k].Kind })
			if j < 0 {
				return nil, notDecoder(i, "layer %d: the with-past branch's %s %q is no parameter of the no-past branch's layer", i, pb[k].Role, pb[k].Name)
			}
			if i == 0 {
				perm = append(perm, j)
			} else if perm[k] != j {
				return nil, notDecoder(i, "layer %d, slot %d: %q takes the place of %s %q of layer 0", i, k, pb[k].Name, pa[perm[k]].Role, pa[perm[k]].Name)
			}
		}
	}
	slot := make([]int, len(perm))
	for k, j := range perm {
		slot[j] = k
	}
	return slot, nil
}
