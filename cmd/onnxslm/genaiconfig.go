package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/onnxslm/onnxslm/rewrite"
)

// writeGenAIConfig writes the input's genai_config.json (onnxruntime-genai's,
// beside the model), updated for the pruned model, beside the output. It
// returns the path written, "" when the input has none, or an error. It does
// not overwrite the input's own config (output in the input's folder).
func writeGenAIConfig(in, out string, layersBefore int, keptFrom []int, keepKV bool) (string, error) {
	src := filepath.Join(filepath.Dir(in), rewrite.GenAIConfigName)
	raw, err := os.ReadFile(src)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	dst := filepath.Join(filepath.Dir(out), rewrite.GenAIConfigName)
	if same, err := samePath(src, dst); err != nil {
		return "", err
	} else if same {
		return "", fmt.Errorf("%s not updated: the output is in the input's folder, whose config describes the input; write the output to another folder", src)
	}
	if keepKV {
		return "", fmt.Errorf("%s not written: --keep-kv-numbers leaves gaps in past_key_values.%%d, which onnxruntime-genai's name patterns cannot follow", dst)
	}
	upd, err := rewrite.UpdateGenAIConfig(raw, rewrite.GenAIConfigEdit{LayersBefore: layersBefore, KeptFrom: keptFrom, Filename: filepath.Base(out)})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(dst, upd, 0o644); err != nil {
		return "", err
	}
	return dst, nil
}
