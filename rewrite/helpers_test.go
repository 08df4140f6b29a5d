package rewrite_test

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/onnxslm/onnxslm/onnx/pb"
	"google.golang.org/protobuf/proto"
)

// snapshot fingerprints a model's serialized form.
func snapshot(m *pb.ModelProto) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
