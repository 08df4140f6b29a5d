// Command genfixtures writes the models of modelgen.Fixtures and their README
// into a folder (go generate ./internal/modelgen writes testdata/models).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/onnxslm/onnxslm/internal/modelgen"
)

func main() {
	out := flag.String("out", "testdata/models", "folder to write the fixtures into")
	flag.Parse()
	if err := modelgen.WriteFixtures(*out); err != nil {
		fmt.Fprintln(os.Stderr, "genfixtures:", err)
		os.Exit(1)
	}
}
