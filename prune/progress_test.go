package prune

import (
	"fmt"
	"testing"

	"github.com/onnxslm/onnxslm/internal/modelgen"
	"github.com/onnxslm/onnxslm/rewrite"
)

// notes records what a run tells its Progress: the notes, and the ticks of
// the step running now.
type notes struct {
	nopProgress
	heard []string
	ticks int
}

func (n *notes) Start(string, int) { n.ticks = 0 }
func (n *notes) Tick()             { n.ticks++ }
func (n *notes) Note(s string)     { n.heard = append(n.heard, s) }

// TestDepthSearchNotesEachThreshold: the SLM depth search tells the progress
// report every threshold it runs the loop at and the depth that gave, the same
// list as the report's thresholds_tried (a deep model's search runs the loop
// hundreds of times; the count of candidates alone does not say how far it is).
func TestDepthSearchNotesEachThreshold(t *testing.T) {
	prog := &notes{}
	out := runGenerated(t, modelgen.Config{Arch: modelgen.Llama, Layers: 8, Hidden: 16, Heads: 2, FFN: 24, Seed: 11},
		Options{Method: SLM, Merge: rewrite.Paper, Layers: 6, Calibration: randomRows(8, 16, 7), Batch: 4, Version: "test", Progress: prog})
	tried := out.Report.ThresholdsTried
	if len(tried) < 2 {
		t.Fatalf("the search tried %v; want a model that needs more than one run of the loop", tried)
	}
	if len(prog.heard) != len(tried) {
		t.Fatalf("heard %d notes %q for %d runs of the loop", len(prog.heard), prog.heard, len(tried))
	}
	for i, tr := range tried {
		if want := fmt.Sprintf("threshold %.6f: %d layers, target 6", tr.Threshold, tr.Layers); prog.heard[i] != want {
			t.Errorf("note %d = %q, want %q", i, prog.heard[i], want)
		}
	}
	// The last step, the candidates, ticks once a candidate.
	if prog.ticks != out.Report.Candidates {
		t.Errorf("%d ticks for %d candidates", prog.ticks, out.Report.Candidates)
	}
}
