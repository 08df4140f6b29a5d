// Command onnxslm depth-prunes decoder-only LLMs exported to ONNX with Sliding
// Layer Merging (Ding et al., 2025). Run `onnxslm --help` for the commands.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], newStdio()))
}
