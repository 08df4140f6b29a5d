package harness

import (
	"strings"
	"testing"
)

func TestParseFormats(t *testing.T) {
	for _, tc := range []struct {
		name, line, format string
		want               Example
	}{
		{"context", `{"context": "2+2 =", "choices": ["4", "5"], "gold": 0}`, "context",
			Example{Context: "2+2 =", Choices: []string{"4", "5"}, Gold: 0}},
		{"query/label", `{"query": "Q", "choices": ["a", "b", "c"], "label": "2"}`, "query",
			Example{Context: "Q", Choices: []string{"a", "b", "c"}, Gold: 2}},
		{"query/gold", `{"query": "Q", "choices": ["a", "b"], "gold": 1}`, "query",
			Example{Context: "Q", Choices: []string{"a", "b"}, Gold: 1}},
		{"hellaswag raw", `{"activity_label": "Baking", "ctx_a": "She mixes flour.", "ctx_b": "she THEN", "ctx": "x", "endings": ["adds  eggs [title] more.", "sings."], "label": "0"}`, "hellaswag",
			Example{Context: "Baking: She mixes flour. She then", Choices: []string{"adds eggs. more.", "sings."}, Gold: 0}},
		{"hellaswag ctx only", `{"ctx": " A man ", "endings": ["runs", "sits"], "label": 1}`, "hellaswag",
			Example{Context: "A man", Choices: []string{"runs", "sits"}, Gold: 1}},
		{"piqa", `{"goal": "Open a jar", "sol1": "twist", "sol2": "bite", "label": 0}`, "piqa",
			Example{Context: "Question: Open a jar\nAnswer:", Choices: []string{"twist", "bite"}, Gold: 0}},
		{"arc", `{"question": "Sky?", "choices": {"text": ["red", "blue"], "label": ["A", "B"]}, "answerKey": "B"}`, "arc",
			Example{Context: "Question: Sky?\nAnswer:", Choices: []string{"red", "blue"}, Gold: 1}},
		{"openbookqa", `{"question_stem": "Sun is a", "choices": {"text": ["star", "moon"], "label": ["A", "B"]}, "answerKey": "A"}`, "openbookqa",
			Example{Context: "Sun is a", Choices: []string{"star", "moon"}, Gold: 0}},
		{"boolq", `{"passage": "P.", "question": "is it", "answer": true}`, "boolq",
			Example{Context: "P.\nQuestion: is it?\nAnswer:", Choices: []string{"no", "yes"}, Gold: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := Parse(strings.NewReader(tc.line+"\n"), "f.jsonl", "f", nil)
			if err != nil {
				t.Fatal(err)
			}
			if task.Format != tc.format {
				t.Errorf("format %q, want %q", task.Format, tc.format)
			}
			got := task.Examples[0]
			if got.Context != tc.want.Context || strings.Join(got.Choices, "|") != strings.Join(tc.want.Choices, "|") || got.Gold != tc.want.Gold || got.Line != 1 {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseMapping(t *testing.T) {
	f, err := ParseFormat("context=q, choices=opts, gold=ans")
	if err != nil {
		t.Fatal(err)
	}
	task, err := Parse(strings.NewReader(`{"q": "x", "opts": ["a", "b"], "ans": 1}`), "m.jsonl", "m", f)
	if err != nil {
		t.Fatal(err)
	}
	if ex := task.Examples[0]; ex.Context != "x" || ex.Gold != 1 || len(ex.Choices) != 2 {
		t.Errorf("got %+v", ex)
	}
	for _, bad := range []string{"nope", "context=q,choices=o", "context=q,choices=o,gold=", "ctx=q,choices=o,gold=g"} {
		if _, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) accepted", bad)
		}
	}
}

// TestParseBad: every bad task file is refused with one line naming the file
// and the line.
func TestParseBad(t *testing.T) {
	good := `{"context": "c", "choices": ["a", "b"], "gold": 0}`
	for _, tc := range []struct {
		name, text, want string
	}{
		{"not JSON", good + "\n{oops\n", "t.jsonl:2: not a JSON object"},
		{"not an object", "[1, 2]\n", "t.jsonl:1: not a JSON object"},
		{"missing choices", `{"context": "c", "gold": 0}`, `t.jsonl:1: context format: missing field "choices"`},
		{"missing gold", "\n" + `{"context": "c", "choices": ["a"]}`, `t.jsonl:2: context format: missing field "gold"`},
		{"gold out of range", `{"context": "c", "choices": ["a", "b"], "gold": 2}`, "t.jsonl:1: gold 2 is out of range for 2 choices"},
		{"negative gold", `{"context": "c", "choices": ["a", "b"], "gold": -1}`, "t.jsonl:1: gold -1 is out of range"},
		{"fractional gold", `{"context": "c", "choices": ["a", "b"], "gold": 0.5}`, "not an integer"},
		{"empty choices", `{"context": "c", "choices": [], "gold": 0}`, "t.jsonl:1: no choices"},
		{"empty choice", `{"context": "c", "choices": ["a", ""], "gold": 0}`, "t.jsonl:1: choice 1 is empty"},
		{"empty context", `{"context": " ", "choices": ["a"], "gold": 0}`, "t.jsonl:1: the context is empty"},
		{"choices not strings", `{"context": "c", "choices": [1], "gold": 0}`, `t.jsonl:1: context format: field "choices"`},
		{"other format later", good + "\n" + `{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}`, `t.jsonl:2: context format: missing field "context"`},
		{"unknown format", `{"foo": 1}`, "t.jsonl:1: unknown task format"},
		{"arc bad key", `{"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "C"}`, `t.jsonl:1: arc format: answerKey "C" is none`},
		{"empty file", "\n\n", "t.jsonl: no examples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.text), "t.jsonl", "t", nil)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line containing %q", msg, tc.want)
			}
		})
	}
}

func TestParseLongLine(t *testing.T) {
	long := `{"context": "` + strings.Repeat("x", MaxLineBytes) + `", "choices": ["a"], "gold": 0}`
	_, err := Parse(strings.NewReader(long), "t.jsonl", "t", nil)
	if err == nil || !strings.Contains(err.Error(), "t.jsonl:1: line longer than") {
		t.Errorf("error %v, want a line-too-long error at line 1", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"context": "c", "choices": ["a", "b"], "gold": 0}`,
		`{"ctx": "c", "endings": ["a"], "label": "0"}`,
		`{"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "A"}`,
		`{"passage": "p", "question": "q", "label": 1}`,
		"{oops",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		task, err := Parse(strings.NewReader(string(b)), "f.jsonl", "f", nil)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
			return
		}
		for _, ex := range task.Examples {
			if len(ex.Choices) == 0 || ex.Gold < 0 || ex.Gold >= len(ex.Choices) || ex.Line < 1 {
				t.Errorf("accepted a bad example %+v", ex)
			}
		}
	})
}
