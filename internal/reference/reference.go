// Package reference reads the truth files made in PyTorch for the shared test
// models (../shared/testmodels/NAME.truth.json and NAME.slm.json), so tests can
// compare onnxslm's results with them.
package reference

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Perplexity of one evaluation set.
type Perplexity struct {
	NLLPerByte float64 `json:"nll_per_byte"`
	PPL        float64 `json:"ppl"`
}

// Truth is the subset of NAME.truth.json the tests use.
type Truth struct {
	Model  string `json:"model"`
	Params int64  `json:"params"`
	Config struct {
		Arch     string `json:"arch"`
		Vocab    int    `json:"vocab_size"`
		Layers   int    `json:"n_layers"`
		DModel   int    `json:"d_model"`
		Heads    int    `json:"n_heads"`
		KVHeads  int    `json:"n_kv_heads"`
		FFN      int    `json:"d_ff"`
		Tied     bool   `json:"tie_embeddings"`
		QKVBias  bool   `json:"qkv_bias"`
		RopeMode string `json:"rope_mode"`
	} `json:"config"`
	BoundaryValues []struct {
		Kind    string `json:"kind"`
		Index   int    `json:"index"`
		Matches []struct {
			Value    string `json:"value"`
			Producer string `json:"producer"`
			Op       string `json:"op"`
		} `json:"matches"`
	} `json:"onnx_boundary_values"`
	Perplexity struct {
		EvalGo    Perplexity `json:"eval_go"`
		EvalProse Perplexity `json:"eval_prose"`
	} `json:"perplexity"`
	CKA struct {
		Matrix [][]float64 `json:"matrix"`
	} `json:"cka"`
}

// Boundaries returns, for each residual-stream index 0..L, the ONNX value
// names that carry it (the first match is the canonical one).
func (t *Truth) Boundaries() [][]string {
	var out [][]string
	for _, b := range t.BoundaryValues {
		if b.Kind != "hidden" {
			continue
		}
		for len(out) <= b.Index {
			out = append(out, nil)
		}
		for _, m := range b.Matches {
			out[b.Index] = append(out[b.Index], m.Value)
		}
	}
	return out
}

// Streams returns the canonical value names of the residual stream, [0]
// entering layer 0 ... [L] leaving the last layer, and of the final-normed
// hidden state; an error if a stream index has no value.
func (t *Truth) Streams() (hidden []string, finalNorm string, err error) {
	for i, names := range t.Boundaries() {
		if len(names) == 0 {
			return nil, "", fmt.Errorf("truth of %s: no value for stream index %d", t.Model, i)
		}
		hidden = append(hidden, names[0])
	}
	if len(hidden) < 2 {
		return nil, "", fmt.Errorf("truth of %s: %d stream values, want one per layer boundary", t.Model, len(hidden))
	}
	for _, b := range t.BoundaryValues {
		if b.Kind == "final_norm" && len(b.Matches) > 0 {
			finalNorm = b.Matches[0].Value
		}
	}
	return hidden, finalNorm, nil
}

// Step is one scored candidate of a recorded SLM trace.
type Step struct {
	Low    int     `json:"low"`
	High   int     `json:"high"`
	Sim    float64 `json:"sim"`
	Action string  `json:"action"`
}

// Run is one method's result at one threshold.
type Run struct {
	Layers        int      `json:"layers"`
	CalibSim      float64  `json:"calib_sim"`
	Windows       [][2]int `json:"windows"`
	RemovedLayers []int    `json:"removed_layers"`
	Trace         []Step   `json:"trace"`
	PPL           struct {
		EvalGo    Perplexity `json:"eval_go"`
		EvalProse Perplexity `json:"eval_prose"`
	} `json:"ppl"`
}

// SLM is NAME.slm.json: the decision loop run in PyTorch at several thresholds.
type SLM struct {
	Model                string                    `json:"model"`
	Layers               int                       `json:"layers"`
	Original             Run                       `json:"original"`
	BlockInfluence       []float64                 `json:"block_influence"`
	ShortGPTRemovalOrder []int                     `json:"shortgpt_removal_order"`
	Runs                 map[string]map[string]Run `json:"runs"` // threshold → method → run
}

// Thresholds returns the recorded thresholds, descending, as numbers and as
// the keys of Runs.
func (s *SLM) Thresholds() ([]float64, []string) {
	keys := make([]string, 0, len(s.Runs))
	for k := range s.Runs {
		keys = append(keys, k)
	}
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i], _ = strconv.ParseFloat(k, 64)
	}
	sort.Sort(sort.Reverse(byVal{vals, keys}))
	return vals, keys
}

type byVal struct {
	v []float64
	k []string
}

func (b byVal) Len() int           { return len(b.v) }
func (b byVal) Less(i, j int) bool { return b.v[i] < b.v[j] }
func (b byVal) Swap(i, j int) {
	b.v[i], b.v[j] = b.v[j], b.v[i]
	b.k[i], b.k[j] = b.k[j], b.k[i]
}

// Models are the names of the shared reference models.
var Models = []string{"llama8", "gpt2_6"}

// LoadTruth reads dir/NAME.truth.json.
func LoadTruth(dir, name string) (*Truth, error) {
	var t Truth
	if err := readJSON(filepath.Join(dir, name+".truth.json"), &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// LoadSLM reads dir/NAME.slm.json.
func LoadSLM(dir, name string) (*SLM, error) {
	var s SLM
	if err := readJSON(filepath.Join(dir, name+".slm.json"), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
