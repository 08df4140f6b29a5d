package prune

import (
	"context"
	"math"
	"testing"

	"github.com/onnxslm/onnxslm/discover"
	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/internal/testmodel"
)

// TestParamsRatioMeetsTarget: a parameter target removes at least the asked
// share of the decoder layers' parameters (at most a channel per layer and
// the compensation's biases more), measures one mix per depth from none to
// the most the target allows, keeps the one of least held-out KL, and
// reports each kept layer's MLP width; a fixed width share measures one mix.
func TestParamsRatioMeetsTarget(t *testing.T) {
	for _, arch := range []string{modelgen.Llama, modelgen.GPT2} {
		t.Run(arch, func(t *testing.T) {
			m, st := testmodel.Generated(t, modelgen.Config{Arch: arch, Layers: 4, Hidden: 16, Heads: 2, FFN: 32, Seed: 9})
			var dec int64
			for i := range st.Layers {
				dec += st.Layers[i].NumParams()
			}
			cal := randomRows(8, 16, 5)
			out, err := Run(context.Background(), m, Options{ParamsRatio: 0.5, Calibration: cal, Batch: 4, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			w := out.Report.Width
			if w == nil {
				t.Fatal("report has no width section")
			}
			if want := int64(math.Round(0.5 * float64(dec))); w.Target != want || w.DecoderParams != dec {
				t.Errorf("target %d of %d, want %d of %d", w.Target, w.DecoderParams, want, dec)
			}
			if len(w.Mixes) != 3 {
				t.Errorf("%d mixes measured, want 3 (0, 1 and 2 layers removed)", len(w.Mixes))
			}
			for i, mix := range w.Mixes {
				if mix.LayersRemoved != i {
					t.Errorf("mix %d removes %d layers", i, mix.LayersRemoved)
				}
				if mix.Skipped != "" {
					if i == w.Chosen {
						t.Errorf("chose the skipped mix %d", i)
					}
					continue
				}
				byHeads := map[int]int{}
				for _, v := range mix.Variants {
					byHeads[v.Heads]++
				}
				// 8 channel choices (2 scores × 2 allocations × refit or not)
				// without a head removed, unless the MLPs cannot give the
				// whole width share; some with one head.
				if mix.ChannelsRemoved+mix.HeadsRemoved > 0 && (byHeads[0]%8 != 0 || byHeads[1] == 0) {
					t.Errorf("mix %d: %v choices measured by heads removed", i, byHeads)
				}
				if mix.DepthParams+mix.WidthParams < w.Target {
					t.Errorf("mix %+v removes less than the target %d", mix, w.Target)
				}
				if mix.KL < w.Mixes[w.Chosen].KL {
					t.Errorf("chose mix %d (KL %g) over mix %d (KL %g)", w.Chosen, w.Mixes[w.Chosen].KL, i, mix.KL)
				}
			}
			removed := out.Report.ParametersBefore - out.Report.ParametersAfter
			if removed != w.Removed || removed < w.Target {
				t.Errorf("model lost %d parameters, report says %d, target %d", removed, w.Removed, w.Target)
			}
			if len(w.Layers) != out.Report.LayersAfter {
				t.Errorf("%d width entries for %d layers", len(w.Layers), out.Report.LayersAfter)
			}
			chosen := w.Mixes[w.Chosen]
			lost := 0
			for _, l := range w.Layers {
				if l.HeadsBefore != 2 || l.HeadsAfter != 2-chosen.HeadsRemoved || l.KVHeadsAfter != l.HeadsAfter {
					t.Errorf("layer from %d: heads %d → %d (KV %d), the chosen mix removes %d of 2", l.From, l.HeadsBefore, l.HeadsAfter, l.KVHeadsAfter, chosen.HeadsRemoved)
				}
				lost += l.Before - l.After
				if l.After < l.Before && !l.Compensated {
					t.Errorf("layer from %d: not compensated", l.From)
				}
			}
			if lost != chosen.ChannelsRemoved {
				t.Errorf("layers lost %d channels, the chosen mix %d", lost, chosen.ChannelsRemoved)
			}

			share := 0.5
			fixed, err := Run(context.Background(), m, Options{ParamsRatio: 0.5, WidthRatio: &share, Calibration: cal, Batch: 4, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if fw := fixed.Report.Width; len(fw.Mixes) != 1 || fw.Mixes[0].LayersRemoved != 1 || fixed.Report.LayersAfter != 3 {
				t.Errorf("width ratio 0.5: mixes %+v, %d layers; want one mix removing one layer", fw.Mixes, fixed.Report.LayersAfter)
			}

			// One head of two fixed, width only: every layer keeps one head,
			// and the result is a stack with those heads.
			one, all := 1, 1.0
			hd, err := Run(context.Background(), m, Options{ParamsRatio: 0.5, WidthRatio: &all, WidthHeads: &one, WidthAlloc: PerLayer, Calibration: cal, Batch: 4, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if hw := hd.Report.Width; len(hw.Mixes) != 1 || hw.Mixes[0].HeadsRemoved != 1 || len(hw.Mixes[0].Variants) != 4 {
				t.Errorf("one head fixed: mixes %+v", hw.Mixes)
			}
			hs, err := discover.Find(hd.Model)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range hs.Layers {
				if a := l.Attention; a == nil || a.Heads != 1 || a.KVHeads != 1 {
					t.Errorf("layer %d: attention %+v, want one head", l.Index, a)
				}
			}
			if removed := hd.Report.ParametersBefore - hd.Report.ParametersAfter; removed < w.Target {
				t.Errorf("one head fixed: %d parameters removed, target %d", removed, w.Target)
			}
		})
	}
}
