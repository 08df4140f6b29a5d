package onnx

import "google.golang.org/protobuf/proto"

// EqualMessages reports whether a and b hold equal messages in the same order
// (proto.Equal, unknown fields included).
func EqualMessages[T proto.Message](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
