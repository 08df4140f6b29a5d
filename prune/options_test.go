package prune

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/rewrite"
	"github.com/onnxslm/onnxslm/runtime"
)

// TestOptionsCheck: every method with every option that shapes the decision,
// and the values out of range. Errors name the fields at fault (no CLI flags).
func TestOptionsCheck(t *testing.T) {
	type opt = OptionValue
	methods := append([]Method{""}, Methods...)
	for _, m := range methods {
		method := m
		if method == "" {
			method = Auto
		}
		cases := []struct {
			name string
			o    Options
			want []OptionValue // nil: no error
		}{
			{"defaults", Options{}, nil},
			{"threshold", Options{Threshold: 0.9}, nil},
			{"layers", Options{Layers: 6}, nil},
			{"ratio", Options{PruneRatio: 0.25}, nil},
			{"batch", Options{Batch: 4, Runtime: runtime.Options{Threads: 2}, KeepKVNumbers: true}, nil},
			{"threshold and layers", Options{Threshold: 0.9, Layers: 6}, []opt{{"Threshold", 0.9}, {"Layers", 6}}},
			{"layers and ratio", Options{Layers: 6, PruneRatio: 0.5}, []opt{{"Layers", 6}, {"PruneRatio", 0.5}}},
			{"threshold above 1", Options{Threshold: 1.5}, []opt{{"Threshold", 1.5}}},
			{"negative threshold", Options{Threshold: -0.5}, []opt{{"Threshold", -0.5}}},
			{"ratio 1", Options{PruneRatio: 1}, []opt{{"PruneRatio", 1.0}}},
			{"negative layers", Options{Layers: -3}, []opt{{"Layers", -3}}},
			{"negative batch", Options{Batch: -1}, []opt{{"Batch", -1}}},
			{"negative threads", Options{Runtime: runtime.Options{Threads: -1}}, []opt{{"Runtime.Threads", -1}}},
			{"unknown rule", Options{Merge: "average"}, []opt{{"Merge", rewrite.Rule("average")}}},
		}
		for _, r := range rewrite.Rules {
			c := struct {
				name string
				o    Options
				want []OptionValue
			}{"merge " + string(r), Options{Merge: r}, nil}
			if method != SLM {
				c.want = []opt{{"Merge", r}, {"Method", method}}
			}
			cases = append(cases, c)
		}
		for _, c := range cases {
			t.Run(string(method)+"/"+c.name, func(t *testing.T) {
				c.o.Method = m
				checkOptionError(t, c.o.Check(), c.want)
			})
		}
	}
	for _, o := range []Options{{Threshold: math.NaN()}, {PruneRatio: math.NaN()}, {Method: "magic"}} {
		if err := o.Check(); err == nil {
			t.Errorf("Check(%+v) accepted", o)
		}
	}
}

// TestAnalyzeOptionsCheck: each kernel with and without an RBF factor, and
// the values out of range.
func TestAnalyzeOptionsCheck(t *testing.T) {
	type opt = OptionValue
	for _, c := range []struct {
		name string
		o    AnalyzeOptions
		want []OptionValue
	}{
		{"defaults", AnalyzeOptions{}, nil},
		{"rbf", AnalyzeOptions{Kernel: KernelRBF}, nil},
		{"rbf factor", AnalyzeOptions{Kernel: KernelRBF, RBFFactor: 2}, nil},
		{"thresholds", AnalyzeOptions{Thresholds: []float64{0.9, 1}, Batch: 4}, nil},
		{"unknown kernel", AnalyzeOptions{Kernel: "cosine"}, []opt{{"Kernel", Kernel("cosine")}}},
		{"factor without kernel", AnalyzeOptions{RBFFactor: 2}, []opt{{"RBFFactor", 2.0}, {"Kernel", KernelLinear}}},
		{"factor with linear", AnalyzeOptions{Kernel: KernelLinear, RBFFactor: 2}, []opt{{"RBFFactor", 2.0}, {"Kernel", KernelLinear}}},
		{"negative factor", AnalyzeOptions{Kernel: KernelRBF, RBFFactor: -1}, []opt{{"RBFFactor", -1.0}}},
		{"negative batch", AnalyzeOptions{Batch: -1}, []opt{{"Batch", -1}}},
		{"negative threads", AnalyzeOptions{Runtime: runtime.Options{Threads: -2}}, []opt{{"Runtime.Threads", -2}}},
		{"no thresholds", AnalyzeOptions{Thresholds: []float64{}}, []opt{{"Thresholds", "[]"}}},
		{"threshold 0", AnalyzeOptions{Thresholds: []float64{0.9, 0}}, []opt{{"Thresholds", 0.0}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkOptionError(t, c.o.Check(), c.want)
		})
	}
}

// checkOptionError checks Check's error: nil when want is nil, else an
// *OptionError naming want, in the library's words (no CLI flags).
func checkOptionError(t *testing.T, err error, want []OptionValue) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return
	}
	var oe *OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("Check: %v, want an *OptionError", err)
	}
	if !reflect.DeepEqual(oe.Options, want) {
		t.Errorf("error names %v, want %v", oe.Options, want)
	}
	if strings.Contains(err.Error(), "--") {
		t.Errorf("library error %q speaks in flags", err)
	}
}
