package distill

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// task is a synthetic window: the teacher is a random layer, the student
// the teacher with noise on every tensor; X is random, Y the teacher's.
func task(t *testing.T, kind Kind, fitRows, heldRows int) (student *Layer, fit, held Rows) {
	t.Helper()
	const tokens = 8
	teacher := randomLayer(kind, 16, 4, 2, 24, 11)
	if kind == GPT2 {
		teacher = randomLayer(kind, 16, 4, 4, 24, 11)
	}
	student = teacher.Clone()
	rng := rand.New(rand.NewPCG(5, 5))
	for _, p := range student.Params() {
		for i := range *p.Data {
			(*p.Data)[i] *= float32(1 + 0.3*rng.NormFloat64())
		}
	}
	mk := func(n int) Rows {
		r := Rows{T: tokens}
		for i := 0; i < n; i++ {
			x := convert[float32](randn(rng, tokens*teacher.Hidden, 0, 1))
			y, err := Forward(teacher, x, tokens)
			if err != nil {
				t.Fatal(err)
			}
			r.X, r.Y = append(r.X, x), append(r.Y, y)
		}
		return r
	}
	return student, mk(fitRows), mk(heldRows)
}

func TestTrainRecoversTeacher(t *testing.T) {
	for _, kind := range []Kind{Llama, GPT2} {
		t.Run(kind.String(), func(t *testing.T) {
			student, fit, held := task(t, kind, 16, 4)
			calls := 0
			opt := Options{Steps: 80, Batch: 4, LR: 3e-3, Patience: 100,
				Progress: func(p Progress) { calls++ }}
			got, rep, err := Train(context.Background(), student, fit, held, opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", rep)
			if !(rep.FitAfter < 0.3*rep.FitBefore) || !(rep.HeldAfter < 0.5*rep.HeldBefore) {
				t.Errorf("loss fit %.4g → %.4g, held-out %.4g → %.4g: want fit ÷3 and held-out ÷2",
					rep.FitBefore, rep.FitAfter, rep.HeldBefore, rep.HeldAfter)
			}
			if calls != rep.Steps || rep.Steps != 80 || rep.Stop != "steps" {
				t.Errorf("%d progress calls, %d steps, stop %q: want 80, 80, steps", calls, rep.Steps, rep.Stop)
			}
			if l, _ := Loss(got, held); l != rep.HeldAfter {
				t.Errorf("returned layer's held-out loss %v, report says %v", l, rep.HeldAfter)
			}
			if reflect.DeepEqual(got.Q, student.Q) {
				t.Errorf("q did not change")
			}
		})
	}
}

// TestEarlyStopping: held-out targets that the untrained layer already
// matches exactly, so every step makes them worse: training stops after
// Patience evaluations and hands back the original weights.
func TestEarlyStopping(t *testing.T) {
	student, fit, held := task(t, Llama, 4, 2)
	for i, x := range held.X {
		y, err := Forward(student, x, held.T)
		if err != nil {
			t.Fatal(err)
		}
		held.Y[i] = y
	}
	got, rep, err := Train(context.Background(), student, fit, held, Options{Steps: 100, Batch: 2, LR: 3e-3, EvalEvery: 2, Patience: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stop != "early" || rep.Steps != 6 || rep.BestStep != 0 || rep.HeldAfter != rep.HeldBefore {
		t.Errorf("stop %q after %d steps, best step %d, held-out %v → %v: want early after 6, best 0, unchanged",
			rep.Stop, rep.Steps, rep.BestStep, rep.HeldBefore, rep.HeldAfter)
	}
	if !sameWeights(got, student) {
		t.Errorf("early stop at step 0 did not return the original weights")
	}
}

func sameWeights(a, b *Layer) bool {
	pa, pb := a.Params(), b.Params()
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		x, y := *pa[i].Data, *pb[i].Data
		for j := range x {
			if math.Float32bits(x[j]) != math.Float32bits(y[j]) {
				return false
			}
		}
	}
	return true
}

// TestTrainDeterministic: two runs on the same inputs give bit-identical
// weights and losses.
func TestTrainDeterministic(t *testing.T) {
	student, fit, held := task(t, Llama, 4, 2)
	opt := Options{Steps: 12, Batch: 3, LR: 1e-3, EvalEvery: 4}
	a, ra, err := Train(context.Background(), student, fit, held, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, rb, err := Train(context.Background(), student, fit, held, opt)
	if err != nil {
		t.Fatal(err)
	}
	ra.Elapsed, rb.Elapsed = 0, 0
	if !sameWeights(a, b) || !reflect.DeepEqual(ra, rb) {
		t.Errorf("two runs differ:\n%+v\n%+v", ra, rb)
	}
	if sameWeights(a, student) {
		t.Errorf("training changed nothing")
	}
}

// TestTrainSubset: only the named parameters change.
func TestTrainSubset(t *testing.T) {
	student, fit, held := task(t, GPT2, 4, 2)
	got, rep, err := Train(context.Background(), student, fit, held, Options{Steps: 5, Batch: 2, LR: 1e-3, Train: []string{"down", "mlp_norm"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Trained, []string{"mlp_norm", "down"}) {
		t.Errorf("trained %v", rep.Trained)
	}
	for i, p := range got.Params() {
		changed := !reflect.DeepEqual(*p.Data, *student.Params()[i].Data)
		if want := p.Name == "down" || p.Name == "mlp_norm"; changed != want {
			t.Errorf("%s changed: %v, want %v", p.Name, changed, want)
		}
	}
	if _, _, err := Train(context.Background(), student, fit, held, Options{Train: []string{"gate"}}); err == nil || !strings.Contains(err.Error(), `"gate"`) {
		t.Errorf("training a gpt2 layer's gate: err %v, want one naming it", err)
	}
}

// TestBudgetAndCancel: a spent time budget stops before the first step and
// returns the original weights; a cancelled context is an error.
func TestBudgetAndCancel(t *testing.T) {
	student, fit, held := task(t, Llama, 2, 1)
	got, rep, err := Train(context.Background(), student, fit, held, Options{Steps: 10, Budget: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stop != "budget" || rep.Steps != 0 || !sameWeights(got, student) || rep.FitAfter != rep.FitBefore {
		t.Errorf("stop %q after %d steps, fit %v → %v: want budget, 0, unchanged", rep.Stop, rep.Steps, rep.FitBefore, rep.FitAfter)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Train(ctx, student, fit, held, Options{Steps: 10}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
}

func TestTrainRefusesBadRows(t *testing.T) {
	student, fit, held := task(t, Llama, 2, 1)
	short := Rows{X: [][]float32{fit.X[0][1:]}, Y: [][]float32{fit.Y[0]}, T: fit.T}
	// rows beyond the rotary tables' 64 positions
	long := Rows{X: [][]float32{make([]float32, 100*16)}, Y: [][]float32{make([]float32, 100*16)}, T: 100}
	for _, tc := range []struct {
		name string
		r    Rows
		want string
	}{
		{"none", Rows{}, "no fit rows"},
		{"short row", short, "row 0 has 127 inputs"},
		{"ragged", Rows{X: fit.X, Y: fit.Y[:1], T: fit.T}, "2 fit inputs but 1 outputs"},
		{"too long", long, "rotary tables' 64 positions"},
	} {
		h := held
		if tc.name == "too long" {
			h = Rows{}
		}
		if _, _, err := Train(context.Background(), student, tc.r, h, Options{Steps: 1}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
