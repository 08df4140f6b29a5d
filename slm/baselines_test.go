package slm

import (
	"reflect"
	"testing"

	"github.com/onnxslm/onnxslm/internal/reference"
	"github.com/onnxslm/onnxslm/internal/testenv"
)

func TestShortGPTMatchesReference(t *testing.T) {
	for _, model := range reference.Models {
		ref := testenv.SLM(t, model)
		if got := RemovalOrder(ref.BlockInfluence); !reflect.DeepEqual(got, ref.ShortGPTRemovalOrder) {
			t.Errorf("%s removal order: got %v, want %v", model, got, ref.ShortGPTRemovalOrder)
		}
		_, keys := ref.Thresholds()
		for _, k := range keys {
			run := ref.Runs[k]["shortgpt"]
			got, err := ShortGPT(ref.BlockInfluence, run.Layers)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, run.RemovedLayers) {
				t.Errorf("%s at %s: removed %v, want %v", model, k, got, run.RemovedLayers)
			}
		}
	}
}

func TestDropMatchesReference(t *testing.T) {
	for _, model := range reference.Models {
		ref := testenv.SLM(t, model)
		_, keys := ref.Thresholds()
		for _, k := range keys {
			var ws []Window
			for _, w := range ref.Runs[k]["slm"].Windows {
				ws = append(ws, Window{w[0], w[1]})
			}
			if got, want := RemovedLayers(ws), ref.Runs[k]["drop"].RemovedLayers; !reflect.DeepEqual(got, want) {
				t.Errorf("%s at %s: drop removes %v, want %v", model, k, got, want)
			}
		}
	}
}

func TestShortGPTRange(t *testing.T) {
	for _, target := range []int{0, 4} {
		if _, err := ShortGPT([]float64{0.1, 0.2, 0.3}, target); err == nil {
			t.Errorf("target %d of 3: want an error", target)
		}
	}
}
