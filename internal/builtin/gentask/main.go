// Command gentask writes the built-in task go-next-line
// (internal/builtin/go_next_line.jsonl) from the held-out Go source windows of
// the shared test data (tokens/eval_go_64x256.txt: 64 windows of 256 bytes of
// Go packages the built-in model was not trained on):
//
//	go run ./internal/builtin/gentask -shared ../shared > internal/builtin/go_next_line.jsonl
//
// Each example's context is the complete lines of a window up to a chosen
// line; the choices are that real next line and three lines drawn from other
// windows, in an order drawn from a fixed seed. The output depends only on the
// input file.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	perWindow  = 2 // examples drawn from one window
	choices    = 4
	minContext = 2 // complete lines before the real next line
	minLineLen = 6 // bytes of a usable line, spaces trimmed
)

func main() {
	shared := flag.String("shared", "../shared", "folder holding testmodels/")
	flag.Parse()
	if err := run(filepath.Join(*shared, "testmodels", "tokens", "eval_go_64x256.txt")); err != nil {
		fmt.Fprintln(os.Stderr, "gentask:", err)
		os.Exit(1)
	}
}

func usable(line string) bool { return len(strings.TrimSpace(line)) >= minLineLen }

func run(path string) error {
	windows, err := readWindows(path)
	if err != nil {
		return err
	}
	// Complete lines of each window: the text before the first newline and
	// after the last one is cut.
	lines := make([][]string, len(windows))
	for w, text := range windows {
		parts := strings.Split(text, "\n")
		if len(parts) > 2 {
			lines[w] = parts[1 : len(parts)-1]
		}
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for w := range lines {
		rng := rand.New(rand.NewPCG(17, uint64(w)))
		var cands []int
		for k := minContext; k < len(lines[w]); k++ {
			if usable(lines[w][k]) {
				cands = append(cands, k)
			}
		}
		rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		for _, k := range cands[:min(perWindow, len(cands))] {
			real := lines[w][k]
			picked := []string{real}
			for len(picked) < choices {
				o := rng.IntN(len(lines))
				if o == w || len(lines[o]) == 0 {
					continue
				}
				l := lines[o][rng.IntN(len(lines[o]))]
				if !usable(l) || dup(picked, l) {
					continue
				}
				picked = append(picked, l)
			}
			gold := rng.IntN(choices)
			picked[0], picked[gold] = picked[gold], picked[0]
			ex := struct {
				Context string   `json:"context"`
				Choices []string `json:"choices"`
				Gold    int      `json:"gold"`
			}{strings.Join(lines[w][:k], "\n") + "\n", picked, gold}
			if err := enc.Encode(ex); err != nil {
				return err
			}
		}
	}
	return out.Flush()
}

func dup(have []string, l string) bool {
	for _, h := range have {
		if strings.TrimSpace(h) == strings.TrimSpace(l) {
			return true
		}
	}
	return false
}

// readWindows reads one byte sequence per line of space-separated ids.
func readWindows(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var sb strings.Builder
		for _, f := range strings.Fields(line) {
			v, err := strconv.Atoi(f)
			if err != nil || v < 0 || v > 255 {
				return nil, fmt.Errorf("%s:%d: %q is not a byte", path, i+1, f)
			}
			sb.WriteByte(byte(v))
		}
		out = append(out, sb.String())
	}
	return out, nil
}
