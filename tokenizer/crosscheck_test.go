package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
)

// TestHuggingFaceReference compares Encode with ids computed by the Hugging
// Face tokenizers library on real tokenizer.json files. The files are too big
// to keep in the repository; testdata/crosscheck/README.md says how to make
// them. Set ONNXSLM_TOKENIZER_REF to the folder that holds NAME.json and
// NAME.ref pairs to run it.
func TestHuggingFaceReference(t *testing.T) {
	dir := testenv.Getenv(t, "ONNXSLM_TOKENIZER_REF", "ONNXSLM_TOKENIZER_REF not set (see testdata/crosscheck/README.md)")
	refs, err := filepath.Glob(filepath.Join(dir, "*.ref"))
	if err != nil || len(refs) == 0 {
		t.Fatalf("no .ref files in %s (err %v)", dir, err)
	}
	for _, ref := range refs {
		name := strings.TrimSuffix(filepath.Base(ref), ".ref")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(ref)
			if err != nil {
				t.Fatal(err)
			}
			var cases []struct {
				Text         string  `json:"text"`
				IDs          []int64 `json:"ids"`
				IDsNoSpecial []int64 `json:"ids_nospecial"`
			}
			if err := json.Unmarshal(data, &cases); err != nil {
				t.Fatalf("%s: %v", ref, err)
			}
			path := filepath.Join(dir, name+".json")
			with, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			without, err := Load(path, WithSpecialTokens(false))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				for _, v := range []struct {
					tk   Tokenizer
					want []int64
				}{{with, c.IDs}, {without, c.IDsNoSpecial}} {
					got, err := v.tk.Encode(c.Text)
					if err != nil {
						t.Errorf("Encode(%q): %v", c.Text, err)
						continue
					}
					if !slices.Equal(got, v.want) && !(len(got) == 0 && len(v.want) == 0) {
						t.Errorf("Encode(%q):\n got %v\nwant %v", c.Text, got, v.want)
					}
				}
			}
		})
	}
}
