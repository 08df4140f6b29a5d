package tokenizer

import (
	"testing"
)

// FuzzParse: no tokenizer.json, however malformed, makes Parse or Encode panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\s+(?!\\S)|\\s+|[\\p{L}]+"},"behavior":"Isolated"}}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"▁":0,"a":1},"merges":[],"byte_fallback":true},"pre_tokenizer":{"type":"Metaspace","prepend_scheme":"first"},"normalizer":{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Replace","pattern":{"Regex":"\\d"},"content":"0"}]}}`))
	f.Add([]byte(`{"model":{"merges":[["a","b"]],"vocab":{"a":0}},"added_tokens":[{"id":0,"content":"a","lstrip":true}]}`))
	f.Add([]byte(`{"model":{"type":"WordPiece"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := Parse(data)
		if err != nil {
			return
		}
		for _, text := range []string{"", "ab a  b", "\xff\xfe ▁a", "<s>a</s>\n\n"} {
			ids, err := tk.Encode(text)
			if err != nil {
				continue
			}
			for _, id := range ids {
				if id < 0 || id >= int64(tk.VocabSize()) {
					t.Fatalf("Encode(%q): id %d outside [0, %d)", text, id, tk.VocabSize())
				}
			}
		}
	})
}

// FuzzEncode: any text encodes on the hand-checked byte-level tokenizer; a
// non-empty text gives at least one id (every byte reaches the model, as a
// character or <unk>) and never more ids than bytes.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"low lower  lowest", "low<|eot|>lower", "\x00\xff  \t\n", "日本語 🙂"} {
		f.Add(s)
	}
	tk, err := Parse(byteLevelFile(f, false), WithSpecialTokens(false))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ids, err := tk.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		if text != "" && len(ids) == 0 {
			t.Fatalf("Encode(%q): no ids", text)
		}
		if len(ids) > len(text) {
			t.Fatalf("Encode(%q): %d ids for %d bytes", text, len(ids), len(text))
		}
	})
}
