package modelgen

import (
	"fmt"

	"github.com/onnxslm/onnxslm/merged"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// BuildOptimumMerged builds optimum's legacy decoder_model_merged.onnx
// from c (Llama with KVCache), as `optimum-cli export onnx --legacy` does:
// it exports decoder_model.onnx (no past inputs, present outputs: c with
// NoPastInputs) and decoder_with_past_model.onnx (c), then merges them with
// merge_decoders (package merged, docs/design/formats.md section 3): one If
// on use_cache_branch, with past in then_branch, without in else_branch, the
// weights shared in the outer graph under names NAME_merged_K, the mask's
// second axis renamed attention_mask_sequence_length (optimum before the
// move to optimum-onnx, which keeps it). Both halves
// have the weights of c, so the plain twin Build(c) gives the same logits on
// either branch.
func BuildOptimumMerged(c Config) (*pb.ModelProto, error) {
	if c.Arch != Llama || !c.KVCache || c.NoPastInputs {
		return nil, fmt.Errorf("%w: a merged decoder is built from a Llama with KVCache (not NoPastInputs)", ErrConfig)
	}
	noPast := c
	noPast.NoPastInputs = true
	decoder, err := Build(noPast)
	if err != nil {
		return nil, err
	}
	withPast, err := Build(c)
	if err != nil {
		return nil, err
	}
	m, err := merged.Join(decoder, withPast, merged.JoinOptions{Suffix: "merged", RenameMaskAxis: true})
	if err != nil {
		return nil, fmt.Errorf("modelgen: %w", err)
	}
	return m, nil
}
