package lm_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/internal/testsession"
	"github.com/onnxslm/onnxslm/lm"
	"github.com/onnxslm/onnxslm/onnx"
	"github.com/onnxslm/onnxslm/onnx/pb"
	"github.com/onnxslm/onnxslm/runtime"
	"github.com/onnxslm/onnxslm/tokens"
	"google.golang.org/protobuf/proto"
)

// TestPerplexity checks lm.Perplexity against the perplexities recorded in
// NAME.truth.json (torch, float32) within 0.05 %.
func TestPerplexity(t *testing.T) {
	testenv.Long(t, "runs 2×2×64×256 tokens")
	for _, name := range []string{"llama8", "gpt2_6"} {
		b, err := os.ReadFile(testenv.TestFile(t, name+".truth.json"))
		if err != nil {
			t.Fatal(err)
		}
		var truth struct {
			Perplexity map[string]json.RawMessage `json:"perplexity"`
		}
		if err := json.Unmarshal(b, &truth); err != nil {
			t.Fatal(err)
		}
		s := testsession.Shared(t, name)
		for _, set := range []string{"eval_go", "eval_prose"} {
			var want struct {
				PPL float64 `json:"ppl"`
				NLL float64 `json:"nll_per_byte"`
			}
			if err := json.Unmarshal(truth.Perplexity[set], &want); err != nil {
				t.Fatalf("%s.truth.json perplexity.%s: %v", name, set, err)
			}
			t.Run(name+"/"+set, func(t *testing.T) {
				toks, err := tokens.Read(testenv.TestFile(t, "tokens/"+set+"_64x256.npy"))
				if err != nil {
					t.Fatal(err)
				}
				res, err := lm.Perplexity(context.Background(), s, toks.Rows, lm.Options{Batch: 16})
				if err != nil {
					t.Fatal(err)
				}
				if got, want := res.Tokens, 64*255; got != want {
					t.Errorf("Tokens = %d, want %d", got, want)
				}
				if rel := math.Abs(res.Perplexity-want.PPL) / want.PPL; rel > 5e-4 {
					t.Errorf("perplexity = %.6f, want %.6f (relative difference %.2g > 0.05%%)", res.Perplexity, want.PPL, rel)
				}
				t.Logf("perplexity %.6f (torch %.6f), mean NLL %.6f (torch %.6f), %.0f tokens/s", res.Perplexity, want.PPL, res.MeanNLL, want.NLL, res.TokensPerSecond)
			})
		}
	}
}

func TestPerplexityBadTokens(t *testing.T) {
	s := testsession.Shared(t, "llama8")
	for _, c := range []struct {
		name string
		rows [][]int64
		want string
	}{
		{"too large", [][]int64{{1, 2, 3}, {4, 256, 6}}, "row 1, column 1: token id 256 is out of range for a vocabulary of 256"},
		{"negative", [][]int64{{1, -2, 3}}, "row 0, column 1: token id -2"},
		{"ragged", [][]int64{{1, 2, 3}, {4, 5}}, "row 1 has 2 tokens, row 0 has 3"},
		{"empty", nil, "no token rows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := lm.Perplexity(context.Background(), s, c.rows, lm.Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Perplexity error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestVocab(t *testing.T) {
	for _, name := range []string{"llama8", "gpt2_6"} {
		v, err := lm.Vocab(testsession.Shared(t, name))
		if err != nil || v != 256 {
			t.Errorf("Vocab(%s) = %d, %v; want 256", name, v, err)
		}
	}
}

// kvModel declares the inputs of a KV-cache export: input_ids, attention_mask,
// position_ids and past_key_values.0.key [batch, 2, past_sequence_length, 4].
// Its outputs echo what it was fed: logits = Cast(ids)+Cast(mask)+Cast(pos)
// unsqueezed to [B, T, 1], and present = Concat(past, zeros [B, 2, T, 4]) on
// axis 2.
func kvModel() *pb.ModelProto {
	dim := func(p string) *pb.TensorShapeProto_Dimension {
		return &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: p}}
	}
	fixed := func(v int64) *pb.TensorShapeProto_Dimension {
		return &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	vi := func(name string, et pb.TensorProto_DataType, dims ...*pb.TensorShapeProto_Dimension) *pb.ValueInfoProto {
		return &pb.ValueInfoProto{Name: proto.String(name), Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: &pb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(et)), Shape: &pb.TensorShapeProto{Dim: dims}}}}}
	}
	node := func(op string, in, out []string, attrs ...*pb.AttributeProto) *pb.NodeProto {
		return &pb.NodeProto{OpType: proto.String(op), Name: proto.String(out[0]), Input: in, Output: out, Attribute: attrs}
	}
	cast := func(in, out string) *pb.NodeProto {
		return node("Cast", []string{in}, []string{out}, onnx.AttrInt("to", int64(pb.TensorProto_FLOAT)))
	}
	g := &pb.GraphProto{
		Name: proto.String("kv"),
		Input: []*pb.ValueInfoProto{
			vi("input_ids", pb.TensorProto_INT64, dim("batch_size"), dim("sequence_length")),
			vi("attention_mask", pb.TensorProto_INT64, dim("batch_size"), dim("past_sequence_length + 1")),
			vi("position_ids", pb.TensorProto_INT64, dim("batch_size"), dim("sequence_length")),
			vi("past_key_values.0.key", pb.TensorProto_FLOAT, dim("batch_size"), fixed(2), dim("past_sequence_length"), dim("head_size")),
		},
		Output: []*pb.ValueInfoProto{
			vi("logits", pb.TensorProto_FLOAT, dim("batch_size"), dim("sequence_length"), fixed(1)),
			vi("present.0.key", pb.TensorProto_FLOAT),
		},
		Initializer: []*pb.TensorProto{
			onnx.NewInt64("axes", []int64{1}, []int64{2}),
			onnx.NewInt64("two", []int64{1}, []int64{2}),
			onnx.NewInt64("four", []int64{1}, []int64{4}),
		},
		Node: []*pb.NodeProto{
			cast("input_ids", "f_ids"), cast("attention_mask", "f_mask"), cast("position_ids", "f_pos"),
			node("Add", []string{"f_ids", "f_mask"}, []string{"s1"}),
			node("Add", []string{"s1", "f_pos"}, []string{"s2"}),
			node("Unsqueeze", []string{"s2", "axes"}, []string{"logits"}),
			node("Shape", []string{"input_ids"}, []string{"bt"}),
			node("Concat", []string{"bt", "four"}, []string{"bt4"}, onnx.AttrInt("axis", 0)),
			node("ConstantOfShape", []string{"bt4"}, []string{"z"}),
			node("Unsqueeze", []string{"z", "axes1"}, []string{"z1"}),
			node("Expand", []string{"z1", "shape"}, []string{"new"}),
			node("Concat", []string{"past_key_values.0.key", "new"}, []string{"present.0.key"}, onnx.AttrInt("axis", 2)),
		},
	}
	// z is [B, T, 4]; z1 = [B, 1, T, 4]; new = [B, 2, T, 4].
	g.Initializer = append(g.Initializer, onnx.NewInt64("axes1", []int64{1}, []int64{1}), onnx.NewInt64("shape", []int64{4}, []int64{1, 2, 1, 1}))
	return &pb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: []*pb.OperatorSetIdProto{{Version: proto.Int64(17)}}, Graph: g}
}

func TestFeedsKVModel(t *testing.T) {
	s, err := runtime.New(kvModel(), runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]int64{{5, 6, 7}, {8, 9, 10}}
	feeds, err := lm.Feeds(s, rows)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]int{"input_ids": {2, 3}, "attention_mask": {2, 3}, "position_ids": {2, 3}, "past_key_values.0.key": {2, 2, 0, 1}} {
		f := feeds[name]
		if f == nil {
			t.Errorf("no feed %q", name)
			continue
		}
		if got := f.Shape(); !slices.Equal(got, want) {
			t.Errorf("feed %q has shape %v, want %v", name, got, want)
		}
	}
	out, err := s.Run(feeds, []string{"logits", "present.0.key"})
	if err != nil {
		t.Fatal(err)
	}
	// logits = id + 1 + position.
	want := []float32{6, 8, 10, 9, 11, 13}
	for i, v := range out["logits"].Float32Data() {
		if v != want[i] {
			t.Fatalf("logits = %v, want %v", out["logits"].Float32Data(), want)
		}
	}
	if got := out["present.0.key"].Shape(); !slices.Equal(got, []int{2, 2, 3, 4}) {
		t.Errorf("present shape %v, want [2 2 3 4]", got)
	}
}

func TestNLL(t *testing.T) {
	// One row, T=3, V=2: uniform logits at t=0 (NLL ln 2), a sure prediction
	// at t=1 (NLL ~0); t=2 predicts nothing.
	logits, _ := runtime.NewFloat32([]int{1, 3, 2}, []float32{0, 0, 100, -100, 7, 7})
	sum, n, err := lm.NLL(logits, [][]int64{{1, 1, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || math.Abs(sum-math.Ln2) > 1e-9 {
		t.Errorf("NLL = %v over %d, want %v over 2", sum, n, math.Ln2)
	}
}
