package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tokenizerJSON builds a tokenizer.json document. vocab lists the tokens in id
// order; merges are "a b" strings or [a, b] pairs.
func tokenizerJSON(t testing.TB, model map[string]any, vocab []string, rest map[string]any) []byte {
	t.Helper()
	v := map[string]int{}
	for i, tok := range vocab {
		v[tok] = i
	}
	m := map[string]any{"type": "BPE", "vocab": v}
	for k, x := range model {
		m[k] = x
	}
	doc := map[string]any{"version": "1.0", "model": m}
	for k, x := range rest {
		doc[k] = x
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A GPT-2-style tokenizer small enough to run by hand. "Ġ" (U+0120) is the
// byte-level character of the space byte.
var (
	byteLevelVocab = []string{
		"l", "o", "w", "e", "r", "s", "t", "Ġ", // 0-7: single characters
		"lo", "low", "er", "Ġlow", "Ġlower", "es", "est", // 8-14: merge results
		"<unk>", "<|eot|>", "<|bos|>", "we", // 15-18
	}
	byteLevelMerges = []string{
		"l o",     // rank 0 -> lo (8)
		"lo w",    // rank 1 -> low (9)
		"e r",     // rank 2 -> er (10)
		"Ġ low",   // rank 3 -> Ġlow (11)
		"Ġlow er", // rank 4 -> Ġlower (12)
		"e s",     // rank 5 -> es (13)
		"es t",    // rank 6 -> est (14)
		"w e",     // rank 7 -> we (18): loses to "lo w" wherever both apply
	}
)

func byteLevelFile(t testing.TB, pairs bool) []byte {
	var merges any = byteLevelMerges
	if pairs {
		var ps [][]string
		for _, m := range byteLevelMerges {
			ps = append(ps, strings.Split(m, " "))
		}
		merges = ps
	}
	return tokenizerJSON(t, map[string]any{"merges": merges, "unk_token": "<unk>"}, byteLevelVocab, map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 16, "content": "<|eot|>", "special": true, "normalized": false},
			map[string]any{"id": 17, "content": "<|bos|>", "special": true, "normalized": false},
		},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<|bos|>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"special_tokens": map[string]any{"<|bos|>": map[string]any{"id": "<|bos|>", "ids": []int{17}, "tokens": []string{"<|bos|>"}}},
		},
	})
}

// byteLevelEdited is byteLevelFile(t, false) with edit applied to its
// decoded document.
func byteLevelEdited(t *testing.T, edit func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(byteLevelFile(t, false), &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkEncode checks that tk encodes text as want.
func checkEncode(t *testing.T, tk Tokenizer, text string, want []int64) {
	t.Helper()
	got, err := tk.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Encode(%q): got %v, want %v", text, got, want)
	}
}

func TestByteLevelBPEByHand(t *testing.T) {
	tests := []struct {
		name, text string
		want       []int64 // without special tokens; with them, 17 (<|bos|>) comes first
	}{
		// The GPT-2 pattern splits "low lower  lowest" into "low", " lower",
		// " ", " lowest": at the double space, \s+(?!\S) takes one space and
		// leaves the other to the word after it. Bytes map to characters
		// (space -> Ġ), then:
		//   "low":     l o w -> (l,o) r0 -> lo w -> (lo,w) r1 -> low          = [9]
		//   "Ġlower":  Ġ l o w e r; queue (l,o) r0, (e,r) r2, (w,e) r7
		//              r0 -> Ġ lo w e r, queues (lo,w) r1
		//              r1 -> Ġ low e r, queues (Ġ,low) r3; (w,e) is now stale
		//              r2 -> Ġ low er;  r3 -> Ġlow er, queues (Ġlow,er) r4
		//              r4 -> Ġlower                                            = [12]
		//   "Ġ":       no merge                                               = [7]
		//   "Ġlowest": Ġ l o w e s t; r0, r1, r3 as above -> Ġlow e s t
		//              r5 (e,s) -> Ġlow es t, queues (es,t) r6 -> Ġlow est   = [11 14]
		{"words", "low lower  lowest", []int64{9, 12, 7, 11, 14}},
		// "x" is not in the vocabulary: <unk> (15). l o x -> r0 -> lo <unk>.
		{"unknown", "lox", []int64{8, 15}},
		// The added token is cut out before the pre-tokenizer; "lower" without
		// a space: l o w e r -> lo w e r -> low e r -> low er (no merge joins
		// low and er without Ġ).
		{"added token", "low<|eot|>lower", []int64{9, 16, 9, 10}},
		// Ties between equal ranks go leftmost first: "lolo" -> lo lo.
		{"repeat", "lolo", []int64{8, 8}},
		// Trailing white space at the end of the text stays one piece.
		{"trailing", "low  ", []int64{9, 7, 7}},
		{"empty", "", nil},
	}
	for _, pairs := range []bool{false, true} {
		data := byteLevelFile(t, pairs)
		with, err := Parse(data)
		if err != nil {
			t.Fatalf("pairs=%v: %v", pairs, err)
		}
		without, err := Parse(data, WithSpecialTokens(false))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := with.VocabSize(), len(byteLevelVocab); got != want {
			t.Errorf("VocabSize: got %d, want %d", got, want)
		}
		for _, tt := range tests {
			got, err := without.Encode(tt.text)
			if err != nil {
				t.Fatalf("pairs=%v %s: %v", pairs, tt.name, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("pairs=%v %s: Encode(%q): got %v, want %v", pairs, tt.name, tt.text, got, tt.want)
			}
			got, _ = with.Encode(tt.text)
			if want := append([]int64{17}, tt.want...); !slices.Equal(got, want) {
				t.Errorf("pairs=%v %s with special tokens: got %v, want %v", pairs, tt.name, got, want)
			}
		}
		prefix, suffix := with.Specials()
		if !slices.Equal(prefix, []int64{17}) || len(suffix) != 0 {
			t.Errorf("Specials: got %v, %v, want [17], []", prefix, suffix)
		}
	}
}

func TestLoad(t *testing.T) {
	p := writeFile(t, byteLevelFile(t, false))
	tk, err := Load(p, WithSpecialTokens(false))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tk.Encode("low")
	if err != nil || !slices.Equal(got, []int64{9}) {
		t.Errorf("Encode(low): got %v, %v, want [9]", got, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Errorf("Load of a missing file: got no error")
	}
}

// A SentencePiece-style vocabulary, as Llama and Mistral use.
var (
	metaVocab = []string{
		"<unk>", "<s>", "▁", "h", "i", "▁h", "▁hi", "hi", // 0-7
		"<0x21>", // 8: byte fallback for "!"
	}
	metaMerges = []string{
		"▁ h",  // rank 0 -> ▁h (5)
		"▁h i", // rank 1 -> ▁hi (6)
		"h i",  // rank 2 -> hi (7)
	}
)

func metaFile(t *testing.T, pre, norm any, fuse bool) []byte {
	return tokenizerJSON(t, map[string]any{"merges": metaMerges, "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": fuse}, metaVocab, map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<unk>", "special": true, "normalized": false},
			map[string]any{"id": 1, "content": "<s>", "special": true, "normalized": false},
		},
		"normalizer":    norm,
		"pre_tokenizer": pre,
	})
}

func TestMetaspace(t *testing.T) {
	meta := func(scheme string, split bool) map[string]any {
		return map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}
	}
	llama := map[string]any{"type": "Sequence", "normalizers": []any{
		map[string]any{"type": "Prepend", "prepend": "▁"},
		map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
	}}
	tests := []struct {
		name string
		pre  any
		norm any
		fuse bool
		text string
		want []int64
	}{
		// "▁hi▁hi" split before each ▁: ▁ h i -> r0 ▁h i -> r1 ▁hi, twice.
		{"always split", meta("always", true), nil, false, "hi hi", []int64{6, 6}},
		// Legacy form: add_prefix_space true is prepend_scheme always.
		{"legacy", map[string]any{"type": "Metaspace", "replacement": "▁", "add_prefix_space": true}, nil, false, "hi hi", []int64{6, 6}},
		// "first": the piece after <s> does not start the text, so no ▁ in
		// front: "hi▁hi" -> "hi" (h i -> r2 hi), "▁hi".
		{"first after token", meta("first", true), nil, false, "<s>hi hi", []int64{1, 7, 6}},
		{"first", meta("first", true), nil, false, "hi hi", []int64{6, 6}},
		// No split: one word h i ▁ h i. Queue: (h,i)@0 r2, (▁,h)@2 r0,
		// (h,i)@3 r2. r0 -> h i ▁h i, queues (▁h,i)@2 r1; r1 -> h i ▁hi;
		// r2@0 -> hi ▁hi; r2@3 is stale.
		{"never no split", meta("never", false), nil, false, "hi hi", []int64{7, 6}},
		// Byte fallback: "!" is not in the vocabulary but <0x21> is.
		{"byte fallback", meta("always", true), nil, false, "hi!", []int64{6, 8}},
		// "é" is two bytes without byte tokens: <unk>, fused or not.
		{"unk", meta("always", true), nil, false, "éé", []int64{2, 0, 0}},
		{"unk fused", meta("always", true), nil, true, "éé", []int64{2, 0}},
		// Llama 2: no pre-tokenizer, normalizers put ▁ in front and for
		// spaces; the whole text is one word: ▁ h i ▁ h i -> [▁hi ▁hi].
		{"llama normalizers", nil, llama, false, "hi hi", []int64{6, 6}},
		// Prepend works per piece: after <s> the piece " hi" becomes "▁▁hi".
		{"llama after token", nil, llama, false, "<s> hi", []int64{1, 2, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := Parse(metaFile(t, tt.pre, tt.norm, tt.fuse))
			if err != nil {
				t.Fatal(err)
			}
			checkEncode(t, tk, tt.text, tt.want)
		})
	}
}

func TestErrors(t *testing.T) {
	good := func(edit func(doc map[string]any)) []byte { return byteLevelEdited(t, edit) }
	model := func(doc map[string]any) map[string]any { return doc["model"].(map[string]any) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("{"), "not a tokenizer.json"},
		{"no model", []byte(`{"version":"1.0"}`), `no "model" section`},
		{"WordPiece", []byte(`{"model":{"type":"WordPiece","vocab":{"a":0}}}`), `model type "WordPiece" is not supported (only BPE)`},
		{"Unigram", []byte(`{"model":{"type":"Unigram","vocab":[["a",0]]}}`), `model type "Unigram" is not supported`},
		{"empty vocab", []byte(`{"model":{"type":"BPE","vocab":{},"merges":[]}}`), "empty vocab"},
		{"negative id", []byte(`{"model":{"type":"BPE","vocab":{"a":-1},"merges":[]}}`), "out of range"},
		{"merge without space", good(func(d map[string]any) { model(d)["merges"] = []any{"lo"} }), "not two tokens"},
		{"merge of three", good(func(d map[string]any) { model(d)["merges"] = []any{[]string{"l", "o", "w"}} }), `neither "a b"`},
		{"merge out of vocab", good(func(d map[string]any) { model(d)["merges"] = []any{"l x"} }), `token "x" is not in the vocab`},
		{"merged out of vocab", good(func(d map[string]any) { model(d)["merges"] = []any{"o l"} }), `merged token "ol" is not in the vocab`},
		{"pre_tokenizer", good(func(d map[string]any) { d["pre_tokenizer"] = map[string]any{"type": "BertPreTokenizer"} }), `pre_tokenizer type "BertPreTokenizer" is not supported`},
		{"normalizer", good(func(d map[string]any) { d["normalizer"] = map[string]any{"type": "Precompiled"} }), `normalizer type "Precompiled" is not supported`},
		{"no type", good(func(d map[string]any) { d["normalizer"] = map[string]any{"prepend": "x"} }), `no "type" field`},
		{"look-behind", good(func(d map[string]any) {
			d["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `(?<=a)b`}, "behavior": "Isolated"}
		}), "not supported"},
		{"bad behavior", good(func(d map[string]any) {
			d["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"String": "x"}, "behavior": "Sideways"}
		}), `behavior "Sideways"`},
		{"template token", good(func(d map[string]any) {
			d["post_processor"].(map[string]any)["special_tokens"] = map[string]any{}
		}), `special token "<|bos|>" is not in special_tokens`},
		{"post_processor", good(func(d map[string]any) { d["post_processor"] = map[string]any{"type": "Fancy"} }), `post_processor type "Fancy" is not supported`},
		{"added token", good(func(d map[string]any) { d["added_tokens"] = []any{map[string]any{"id": 3}} }), `missing "id" or "content"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	// Load names the file.
	p := writeFile(t, []byte(`{"model":{"type":"WordPiece","vocab":{}}}`))
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "WordPiece") {
		t.Errorf("Load: got error %v, want one naming %s and WordPiece", err, p)
	}
}

func TestBytes(t *testing.T) {
	tk := Bytes()
	got, err := tk.Encode("Go é\n")
	want := []int64{'G', 'o', ' ', 0xC3, 0xA9, '\n'}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Encode: got %v, %v, want %v", got, err, want)
	}
	if tk.VocabSize() != 256 {
		t.Errorf("VocabSize: got %d, want 256", tk.VocabSize())
	}
}

func TestChunk(t *testing.T) {
	ids := make([]int64, 10)
	for i := range ids {
		ids[i] = int64(i)
	}
	tests := []struct {
		name            string
		seqLen, maxRows int
		want            [][]int64
	}{
		{"all rows, tail dropped", 3, 0, [][]int64{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}}},
		{"exact", 5, 0, [][]int64{{0, 1, 2, 3, 4}, {5, 6, 7, 8, 9}}},
		{"spread", 2, 2, [][]int64{{0, 1}, {4, 5}}},                // windows 0 and 5/2=2 of 5
		{"spread 3 of 5", 2, 3, [][]int64{{0, 1}, {2, 3}, {6, 7}}}, // windows 0, 5/3=1, 10/3=3
		{"more rows allowed than exist", 4, 9, [][]int64{{0, 1, 2, 3}, {4, 5, 6, 7}}},
		{"too short", 11, 0, nil},
		{"zero length", 0, 3, nil},
	}
	for _, tt := range tests {
		got := Chunk(ids, tt.seqLen, tt.maxRows)
		if !slices.EqualFunc(got, tt.want, func(a, b []int64) bool { return slices.Equal(a, b) }) {
			t.Errorf("%s: Chunk(seqLen %d, maxRows %d): got %v, want %v", tt.name, tt.seqLen, tt.maxRows, got, tt.want)
		}
	}
	// Appending to a row must not overwrite the next one.
	rows := Chunk(ids, 3, 0)
	_ = append(rows[0], 99)
	if rows[1][0] != 3 {
		t.Errorf("append to row 0 changed row 1: got %v", rows[1])
	}
}

func TestSplitPattern(t *testing.T) {
	tests := []struct {
		pattern, text string
		want          []string
	}{
		// \s+(?!\S) leaves the last space of a run to the next word...
		{gpt2Pattern, "a  b", []string{"a", " ", " b"}},
		{gpt2Pattern, "a \n b", []string{"a", " \n", " b"}},
		// ...and takes the whole run at the end of the text.
		{gpt2Pattern, "a   ", []string{"a", "   "}},
		{gpt2Pattern, "it's 42!", []string{"it", "'s", " 42", "!"}},
		{gpt2Pattern, "'S", []string{"'", "S"}},
		// \s is Unicode white space, as in Oniguruma: U+00A0 is not part of
		// [^\s\p{L}\p{N}]+ (Go's ASCII \s would join the two into one piece).
		{gpt2Pattern, "x\u00a0\u00a0y", []string{"x", "\u00a0", "\u00a0", "y"}},
		// Llama 3's pattern: case-insensitive contractions, digits in threes.
		{`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
			"IT'S 12345\n\n  x", []string{"IT", "'S", " ", "123", "45", "\n\n", " ", " x"}},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pattern)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tt.pattern, err)
		}
		var got []string
		for _, m := range p.matches(tt.text) {
			got = append(got, tt.text[m[0]:m[1]])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("pattern %.20q on %q: got %q, want %q", tt.pattern, tt.text, got, tt.want)
		}
	}
	for _, bad := range []string{`a(?=b)`, `(?<!a)b`, `(?>ab)`, `x\s+(?!\S)`, `[\S]`, `a++`} {
		if _, err := compilePattern(bad); err == nil {
			t.Errorf("compilePattern(%q): got no error, want one", bad)
		}
	}
}

// The behaviours of the Split pre-tokenizer, on the Hugging Face
// documentation's example.
func TestSplitBehaviors(t *testing.T) {
	tests := []struct {
		behavior string
		want     []string
	}{
		{"Removed", []string{"the", "final", "countdown"}},
		{"Isolated", []string{"the", "-", "final", "-", "-", "countdown"}},
		{"MergedWithPrevious", []string{"the-", "final-", "-", "countdown"}},
		{"MergedWithNext", []string{"the", "-final", "-", "-countdown"}},
		{"Contiguous", []string{"the", "-", "final", "--", "countdown"}},
	}
	for _, tt := range tests {
		raw, _ := json.Marshal(map[string]any{"type": "Split", "pattern": map[string]any{"String": "-"}, "behavior": tt.behavior})
		pt, err := parsePreTokenizer(raw)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range pt.split(piece{s: "the-final--countdown", id: -1}, nil) {
			got = append(got, p.s)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.behavior, got, tt.want)
		}
	}
}

func TestAddedTokenOptions(t *testing.T) {
	// single_word, lstrip and rstrip, on the byte-level tokenizer with its
	// pre-tokenizer removed (so spaces reach the model as Ġ).
	data := byteLevelEdited(t, func(doc map[string]any) {
		doc["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}
		doc["added_tokens"] = []any{
			map[string]any{"id": 9, "content": "low", "single_word": true, "special": false, "normalized": false},
			map[string]any{"id": 16, "content": "<|eot|>", "lstrip": true, "rstrip": true, "special": true, "normalized": false},
		}
	})
	tk, err := Parse(data, WithSpecialTokens(false))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want []int64
	}{
		{"low", []int64{9}},
		// "lowe": not a single word, so the model sees l o w e -> lo w e -> low e.
		{"lowe", []int64{9, 3}},
		// The spaces around <|eot|> go with it.
		{"e  <|eot|>  e", []int64{3, 16, 3}},
	}
	for _, tt := range tests {
		checkEncode(t, tk, tt.text, tt.want)
	}
}

// A token with "normalized": true is matched on the normalized text, its
// content normalized the same way; a token missing from the vocabulary gets
// the next id after it, as the Hugging Face library numbers them.
func TestNormalizedAddedToken(t *testing.T) {
	data := byteLevelEdited(t, func(doc map[string]any) {
		doc["normalizer"] = map[string]any{"type": "Lowercase"}
		doc["added_tokens"] = []any{
			map[string]any{"id": 99, "content": "LOW", "special": false, "normalized": true},
		}
	})
	tk, err := Parse(data, WithSpecialTokens(false))
	if err != nil {
		t.Fatal(err)
	}
	// "eLoW" -> "elow" -> "e" + the token "low" (content "LOW" lowercased),
	// whose id is len(vocab) = 19, not the file's 99.
	got, err := tk.Encode("eLoW")
	if want := []int64{3, int64(len(byteLevelVocab))}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Encode(eLoW): got %v, %v, want %v", got, err, want)
	}
	if got, want := tk.VocabSize(), len(byteLevelVocab)+1; got != want {
		t.Errorf("VocabSize: got %d, want %d", got, want)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk, err := Parse(byteLevelFile(t, false), WithSpecialTokens(false))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tk.Encode("low lower  lowest")
	done := make(chan []int64)
	for range 8 {
		go func() {
			var got []int64
			for range 200 {
				got, _ = tk.Encode("low lower  lowest")
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; !slices.Equal(got, want) {
			t.Errorf("concurrent Encode: got %v, want %v", got, want)
		}
	}
}
