// Command genhostile writes the catalogue of internal/hostile's cases
// (-readme FILE, run by `go generate ./internal/hostile`) or every case's
// files into a folder (-all DIR), for trying onnxslm on them by hand.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/onnxslm/onnxslm/internal/hostile"
)

func main() {
	readme := flag.String("readme", "", "write the catalogue of cases (Markdown) to this file")
	all := flag.String("all", "", "write every case into a subfolder of this folder")
	flag.Parse()
	if *readme == "" && *all == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: genhostile [-readme FILE] [-all DIR]")
		os.Exit(2)
	}
	if err := run(*readme, *all); err != nil {
		fmt.Fprintln(os.Stderr, "genhostile:", err)
		os.Exit(1)
	}
}

func run(readme, all string) error {
	cases, err := hostile.All()
	if err != nil {
		return err
	}
	if readme != "" {
		if err := os.WriteFile(readme, hostile.Catalogue(cases), 0o644); err != nil {
			return err
		}
	}
	if all != "" {
		if err := os.MkdirAll(all, 0o755); err != nil {
			return err
		}
		paths, err := hostile.Write(all, cases)
		if err != nil {
			return err
		}
		for _, c := range cases {
			fmt.Printf("%-22s %s\n", c.Name, paths[c.Name])
		}
	}
	return nil
}
