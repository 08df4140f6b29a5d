package builtin

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/onnxslm/onnxslm/internal/testenv"
)

// TestTaskGoNextLine: the built-in task parses, every example has four
// distinct choices with the gold spread over the positions, and the embedded
// file is what gentask writes from the shared held-out windows.
func TestTaskGoNextLine(t *testing.T) {
	task, err := Task("builtin:go-next-line")
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Examples) != 116 || task.Delimiter != "" {
		t.Fatalf("%d examples, delimiter %q; want 116 and none", len(task.Examples), task.Delimiter)
	}
	var golds [4]int
	for _, ex := range task.Examples {
		if len(ex.Choices) != 4 {
			t.Fatalf("line %d: %d choices", ex.Line, len(ex.Choices))
		}
		seen := map[string]bool{}
		for _, c := range ex.Choices {
			if seen[c] {
				t.Errorf("line %d: choice %q twice", ex.Line, c)
			}
			seen[c] = true
		}
		golds[ex.Gold]++
	}
	for i, n := range golds {
		if n < 116/8 {
			t.Errorf("gold %d in %d examples of 116: %v", i, n, golds)
		}
	}
	if _, err := Task("builtin:nope"); err == nil {
		t.Error("builtin:nope accepted")
	}
	shared := testenv.SharedDir(t)
	testenv.Long(t, "go run ./gentask")
	out, err := exec.Command("go", "run", "./gentask", "-shared", shared).Output()
	if err != nil {
		t.Fatalf("go run ./gentask: %v", err)
	}
	if !bytes.Equal(out, goNextLine) {
		t.Error("go_next_line.jsonl is not what gentask writes: run go run ./internal/builtin/gentask > internal/builtin/go_next_line.jsonl")
	}
}
