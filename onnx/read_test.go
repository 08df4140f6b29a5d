package onnx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/onnxslm/onnxslm/internal/testenv"
	"github.com/onnxslm/onnxslm/onnx/pb"
)

// checkStreamMatches checks that readModelStream decodes b as proto.Unmarshal
// does: the same message, or both an error.
func checkStreamMatches(t *testing.T, name string, b []byte) {
	t.Helper()
	want := &pb.ModelProto{}
	wantErr := proto.Unmarshal(b, want)
	got, err := readModelStream(bufio.NewReader(bytes.NewReader(b)), int64(len(b)))
	if errors.Is(err, errGroup) {
		return // Load falls back to proto.Unmarshal
	}
	switch {
	case wantErr != nil && err == nil:
		t.Errorf("%s: proto.Unmarshal fails (%v), readModelStream does not", name, wantErr)
	case wantErr == nil && err != nil:
		t.Errorf("%s: readModelStream: %v; proto.Unmarshal succeeds", name, err)
	case wantErr == nil && !proto.Equal(got, want):
		t.Errorf("%s: readModelStream and proto.Unmarshal decode different messages", name)
	}
}

func TestReadModelStream(t *testing.T) {
	inputs := map[string][]byte{}
	for name, m := range map[string]*pb.ModelProto{"tiny": tinyModel(), "rich": richModel(), "empty": {}} {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		inputs[name] = b
	}
	m, err := Load(testenv.TestModel(t, "llama8"))
	if err != nil {
		t.Fatal(err)
	}
	llama, _ := proto.Marshal(m.Proto)
	inputs["llama8"] = llama
	rich := inputs["rich"]
	// The graph split in two occurrences (protobuf merges them), and an
	// unknown field between.
	tiny := tinyModel()
	g1, _ := proto.Marshal(&pb.GraphProto{Name: ptr("a"), Initializer: tiny.Graph.Initializer[:1]})
	g2, _ := proto.Marshal(&pb.GraphProto{Node: tiny.Graph.Node, Initializer: tiny.Graph.Initializer[1:]})
	var split []byte
	split = protowire.AppendTag(split, fieldModelGraph, protowire.BytesType)
	split = protowire.AppendBytes(split, g1)
	split = protowire.AppendVarint(protowire.AppendTag(split, 77, protowire.VarintType), 5)
	split = protowire.AppendTag(split, fieldModelGraph, protowire.BytesType)
	split = protowire.AppendBytes(split, g2)
	inputs["graph in two parts"] = split
	inputs["graph field as varint"] = protowire.AppendVarint(protowire.AppendTag(nil, fieldModelGraph, protowire.VarintType), 1)
	for i := 1; i < len(rich); i += len(rich)/40 + 1 {
		inputs[fmt.Sprintf("rich truncated at %d", i)] = rich[:i]
	}
	for name, b := range inputs {
		checkStreamMatches(t, name, b)
	}
	// Truncated files give the usual message.
	_, err = readModelStream(bufio.NewReader(bytes.NewReader(llama[:len(llama)/2])), int64(len(llama)/2))
	if err == nil || err.Error() != "not an ONNX model, or truncated: unexpected end of file" {
		t.Errorf("truncated: got %v, want 'not an ONNX model, or truncated: unexpected end of file'", err)
	}
}
