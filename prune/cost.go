package prune

// work counts what candidate runs computed: layers is the number of runs of
// the whole calibration set through one decoder layer, heads the number of
// runs of it through the LM head (and the KL that reads its logits). A run
// over some of the batches counts for their share of the rows.
type work struct{ layers, heads float64 }

func (w *work) add(bs []calibBatch, cal *calibration, layers int, head bool) {
	share := float64(countRows(bs)) / float64(max(1, countRows(cal.batches)))
	w.layers += share * float64(layers)
	if head {
		w.heads += share
	}
}

func (w work) minus(o work) work { return work{layers: w.layers - o.layers, heads: w.heads - o.heads} }

func countRows(bs []calibBatch) int {
	n := 0
	for _, b := range bs {
		n += len(b.rows)
	}
	return n
}

// passCost converts work into full calibration passes: one pass runs the
// calibration set through the L layers and the LM head once. Layers and the
// head are weighted by their multiply-adds per token, which their parameters
// count (layerParams per layer, d·vocab for the head); attention's
// tokens-squared term is left out (it is small at calibration lengths).
type passCost struct {
	L                       int
	layerParams, headParams float64
}

// passes is w in full calibration passes.
func (p passCost) passes(w work) float64 {
	full := float64(p.L)*p.layerParams + p.headParams
	if full == 0 {
		return 0
	}
	return (w.layers*p.layerParams + w.heads*p.headParams) / full
}

// headShare is the LM head's share of one full pass.
func (p passCost) headShare() float64 {
	return p.passes(work{heads: 1})
}
