package slm

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testenv"
)

// replay is an Evaluator that answers from a trace recorded in PyTorch. It
// fails the test when the loop asks for a candidate the reference never scored,
// so the test checks the order of candidates as well as the decisions.
type replay struct {
	t     *testing.T
	sims  map[string]float64
	calls int
}

func key(committed []Window, c Window) string {
	return fmt.Sprint(SortWindows(committed), c)
}

func newReplay(t *testing.T, trace []reference.Step) *replay {
	r := &replay{t: t, sims: map[string]float64{}}
	var committed []Window
	for _, s := range trace {
		if s.Low != s.High {
			r.sims[key(committed, Window{s.Low, s.High})] = s.Sim
		}
		var lo, hi int
		if n, _ := fmt.Sscanf(s.Action, "commit %d..%d", &lo, &hi); n == 2 {
			committed = append(committed, Window{lo, hi})
		}
	}
	return r
}

func (r *replay) Similarity(_ context.Context, committed []Window, c Window) (float64, error) {
	r.calls++
	sim, ok := r.sims[key(committed, c)]
	if !ok {
		return 0, fmt.Errorf("the reference never scored candidate %v with %v committed", c, committed)
	}
	return sim, nil
}

func TestSlideReplaysReference(t *testing.T) {
	methods := []struct {
		name  string
		atEnd Pending
	}{
		{"slm", CommitPending},
		{"slm_authors_code", DropPending},
	}
	for _, model := range reference.Models {
		ref := testenv.SLM(t, model)
		ths, keys := ref.Thresholds()
		for i, th := range ths {
			for _, m := range methods {
				t.Run(fmt.Sprintf("%s/%s/%s", model, m.name, keys[i]), func(t *testing.T) {
					run := ref.Runs[keys[i]][m.name]
					ev := newReplay(t, run.Trace)
					res, err := Slide(context.Background(), ref.Layers, ev, Options{Threshold: th, AtEnd: m.atEnd})
					if err != nil {
						t.Fatal(err)
					}
					var want []Window
					for _, w := range run.Windows {
						want = append(want, Window{w[0], w[1]})
					}
					if !reflect.DeepEqual(res.Windows, want) {
						t.Errorf("windows: got %v, want %v", res.Windows, want)
					}
					if got := LayersAfter(ref.Layers, res.Windows); got != run.Layers {
						t.Errorf("layers after: got %d, want %d", got, run.Layers)
					}
					if len(res.Trace) != len(run.Trace) {
						t.Fatalf("trace length: got %d, want %d", len(res.Trace), len(run.Trace))
					}
					for j, s := range res.Trace {
						r := run.Trace[j]
						if s.Low != r.Low || s.High != r.High || s.ActionText() != r.Action || abs(s.Sim-r.Sim) > 1e-9 {
							t.Errorf("step %d: got (%d,%d) %.6f %s, want (%d,%d) %.6f %s",
								j, s.Low, s.High, s.Sim, s.ActionText(), r.Low, r.High, r.Sim, r.Action)
						}
					}
					if ev.calls != res.Evaluations {
						t.Errorf("evaluations: counted %d, evaluator saw %d", res.Evaluations, ev.calls)
					}
				})
			}
		}
	}
}

// scripted answers each candidate with a fixed score per window size.
type scripted func(committed []Window, c Window) float64

func (f scripted) Similarity(_ context.Context, committed []Window, c Window) (float64, error) {
	return f(committed, c), nil
}

func TestSlidePendingAtEnd(t *testing.T) {
	always := scripted(func([]Window, Window) float64 { return 0.99 })
	tests := []struct {
		atEnd Pending
		want  []Window
	}{
		{CommitPending, []Window{{0, 4}}},
		{DropPending, nil},
	}
	for _, tt := range tests {
		res, err := Slide(context.Background(), 6, always, Options{Threshold: 0.9, AtEnd: tt.atEnd})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res.Windows, tt.want) {
			t.Errorf("AtEnd %v: got windows %v, want %v", tt.atEnd, res.Windows, tt.want)
		}
		if res.PendingAtEnd == nil || *res.PendingAtEnd != (Window{0, 4}) {
			t.Errorf("AtEnd %v: pending %v, want 0..4", tt.atEnd, res.PendingAtEnd)
		}
	}
}

func TestSlideTooFewLayers(t *testing.T) {
	for n := 0; n < 3; n++ {
		res, err := Slide(context.Background(), n, scripted(func([]Window, Window) float64 { return 1 }), Options{})
		if err != nil || len(res.Windows) != 0 || res.Evaluations != 0 {
			t.Errorf("%d layers: got %+v, %v; want no windows, no evaluations", n, res, err)
		}
	}
}

func TestLayersAfterAndRemoved(t *testing.T) {
	ws := []Window{{5, 6}, {1, 3}}
	if got := LayersAfter(8, ws); got != 5 {
		t.Errorf("LayersAfter: got %d, want 5", got)
	}
	if got := RemovedLayers(ws); !reflect.DeepEqual(got, []int{2, 3, 6}) {
		t.Errorf("RemovedLayers: got %v, want [2 3 6]", got)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestSearchDepthUnreachable(t *testing.T) {
	// Only a window of three layers ever passes: 6 layers can become 4 but never 5.
	ev := scripted(func(committed []Window, c Window) float64 {
		if len(committed) == 0 && c.Size() <= 3 {
			return 0.95
		}
		return 0.1
	})
	ds, err := SearchDepth(context.Background(), 6, 5, &Memo{Inner: ev}, DepthOptions{AtEnd: CommitPending})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Exact || ds.Layers != 6 {
		t.Errorf("got %d layers (exact %v), want the nearest depth above the target, 6, not exact", ds.Layers, ds.Exact)
	}
	ds, err = SearchDepth(context.Background(), 6, 4, &Memo{Inner: ev}, DepthOptions{AtEnd: CommitPending})
	if err != nil || !ds.Exact || ds.Layers != 4 {
		t.Errorf("target 4: got %+v, %v; want exactly 4", ds, err)
	}
}

// fallingWithMerged is a score that depends only on how many layers are
// merged in all (committed windows and the candidate): 1 - step per layer.
func fallingWithMerged(step float64) func(committed []Window, c Window) float64 {
	return func(committed []Window, c Window) float64 {
		merged := c.Size() - 1
		for _, w := range committed {
			merged += w.Size() - 1
		}
		return 1 - step*float64(merged)
	}
}

func TestSearchDepthMonotoneScores(t *testing.T) {
	// Scores fall with the number of merged layers: any depth is reachable.
	ev := scripted(fallingWithMerged(0.05))
	for target := 2; target <= 8; target++ {
		var heard []ThresholdTrial
		opts := DepthOptions{AtEnd: CommitPending, Trial: func(tr ThresholdTrial) { heard = append(heard, tr) }}
		ds, err := SearchDepth(context.Background(), 8, target, &Memo{Inner: ev}, opts)
		if err != nil {
			t.Fatalf("target %d: %v", target, err)
		}
		if ds.Layers != target {
			t.Errorf("target %d: got %d layers at threshold %.4f (tried %v)", target, ds.Layers, ds.Threshold, ds.Tried)
		}
		if !reflect.DeepEqual(heard, ds.Tried) {
			t.Errorf("target %d: Trial heard %v, the search tried %v", target, heard, ds.Tried)
		}
	}
}

func TestSlideScoreUnchangedSameDecisions(t *testing.T) {
	// A score that depends only on how many layers are merged in all.
	ev := scripted(fallingWithMerged(0.04))
	a, err := Slide(context.Background(), 8, ev, Options{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Slide(context.Background(), 8, ev, Options{Threshold: 0.9, ScoreUnchanged: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Windows, b.Windows) || len(a.Trace) != len(b.Trace) {
		t.Fatalf("windows %v vs %v, %d vs %d steps", a.Windows, b.Windows, len(a.Trace), len(b.Trace))
	}
	if b.Evaluations <= a.Evaluations {
		t.Errorf("scoring unchanged candidates: %d evaluations, want more than %d", b.Evaluations, a.Evaluations)
	}
	for i := range a.Trace {
		if a.Trace[i].Sim != b.Trace[i].Sim || a.Trace[i].Action != b.Trace[i].Action {
			t.Errorf("step %d: %+v vs %+v", i, a.Trace[i], b.Trace[i])
		}
	}
}
