package judge

import "errors"

// TooNew reports whether err (from Check) says that the model needs a newer
// ONNX than the installed checker, so that it was not judged: opset 18+
// exports (torch dynamo) against the Debian/CI onnx 1.12, which knows
// opsets up to 17. Any other error is a verdict.
func TooNew(err error) bool { return errors.Is(err, errTooNew) }
