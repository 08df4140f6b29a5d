// Package noconflict lets onnx-go's protobuf types load beside onnx/pb in one
// test binary. Both register messages named "onnx.*", which google.golang.org/protobuf
// treats as a fatal conflict at start-up; this package's init, which runs
// before onnx-go's (packages initialize in import-path order once their own
// imports are ready, and "github.com/onnxslm" sorts before "github.com/owulveryck"),
// sets GOLANG_PROTOBUF_REGISTRATION_CONFLICT=ignore so that onnx-go's
// duplicate registrations are skipped. Import it for side effects, in tests only.
package noconflict

import "os"

func init() {
	if os.Getenv("GOLANG_PROTOBUF_REGISTRATION_CONFLICT") == "" {
		os.Setenv("GOLANG_PROTOBUF_REGISTRATION_CONFLICT", "ignore")
	}
}
