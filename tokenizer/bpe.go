package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// bpe is a byte-pair-encoding model: a word starts as one symbol per
// character and the ranked merges join adjacent symbols, lowest rank first
// (leftmost first among equal ranks), until no merge applies.
type bpe struct {
	vocab        map[string]int32
	merges       map[uint64]merge // key: pairKey(left id, right id)
	unk          string           // "" when the model has no unknown token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string     // continuing_subword_prefix
	suffix       string     // end_of_word_suffix
	byteIDs      [256]int32 // id of "<0xXX>", -1 when absent
	maxID        int32

	mu    sync.Mutex
	cache map[string][]int32
}

type merge struct {
	rank int32
	id   int32 // the merged token
}

const (
	cacheWordMax    = 64      // longest word (bytes) kept in the cache
	cacheEntriesMax = 1 << 16 // the cache is emptied when it grows past this
)

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

type bpeJSON struct {
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int64  `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

// parseModel reads the "model" section; only BPE is supported.
func parseModel(raw json.RawMessage) (*bpe, error) {
	var h struct {
		Type   string          `json:"type"`
		Merges json.RawMessage `json:"merges"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, err
	}
	switch h.Type {
	case "BPE":
	case "":
		// Files written before the "type" tag existed: BPE is the model with merges.
		if isNull(h.Merges) {
			return nil, fmt.Errorf("no \"type\" field and no merges: not a BPE model")
		}
	default:
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", h.Type)
	}
	var m bpeJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("BPE: %w", err)
	}
	if len(m.Vocab) == 0 {
		return nil, fmt.Errorf("BPE model has an empty vocab")
	}
	b := &bpe{
		vocab:        make(map[string]int32, len(m.Vocab)),
		merges:       make(map[uint64]merge, len(m.Merges)),
		fuseUnk:      m.FuseUnk,
		byteFallback: m.ByteFallback,
		ignoreMerges: m.IgnoreMerges,
		maxID:        -1,
	}
	for tok, id := range m.Vocab {
		if id < 0 || id > 1<<31-1 {
			return nil, fmt.Errorf("vocab: token %q has id %d out of range", tok, id)
		}
		b.vocab[tok] = int32(id)
		b.maxID = max(b.maxID, int32(id))
	}
	if m.UnkToken != nil {
		b.unk = *m.UnkToken
	}
	if m.ContinuingSubwordPrefix != nil {
		b.prefix = *m.ContinuingSubwordPrefix
	}
	if m.EndOfWordSuffix != nil {
		b.suffix = *m.EndOfWordSuffix
	}
	for i := range b.byteIDs {
		b.byteIDs[i] = -1
		if id, ok := b.vocab[fmt.Sprintf("<0x%02X>", i)]; ok {
			b.byteIDs[i] = id
		}
	}
	for rank, mr := range m.Merges {
		left, right, err := parseMerge(mr)
		if err != nil {
			return nil, fmt.Errorf("merges[%d]: %w", rank, err)
		}
		a, ok := b.vocab[left]
		if !ok {
			return nil, fmt.Errorf("merges[%d]: token %q is not in the vocab", rank, left)
		}
		c, ok := b.vocab[right]
		if !ok {
			return nil, fmt.Errorf("merges[%d]: token %q is not in the vocab", rank, right)
		}
		joined := left + strings.TrimPrefix(right, b.prefix)
		id, ok := b.vocab[joined]
		if !ok {
			return nil, fmt.Errorf("merges[%d]: merged token %q is not in the vocab", rank, joined)
		}
		// As in the Hugging Face library, a pair listed twice keeps its last rank.
		b.merges[pairKey(a, c)] = merge{rank: int32(rank), id: id}
	}
	b.cache = make(map[string][]int32)
	return b, nil
}

// parseMerge reads one merge, either "left right" or ["left", "right"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		left, right, ok := strings.Cut(s, " ")
		if !ok || left == "" || right == "" || strings.Contains(right, " ") {
			return "", "", fmt.Errorf("merge %q is not two tokens separated by one space", s)
		}
		return left, right, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("merge %s is neither \"a b\" nor [\"a\", \"b\"]", clip(raw))
	}
	return pair[0], pair[1], nil
}

// encode appends the ids of one word to ids.
func (b *bpe) encode(word string, ids []int32) ([]int32, error) {
	if b.ignoreMerges {
		if id, ok := b.vocab[word]; ok {
			return append(ids, id), nil
		}
	}
	cacheable := len(word) <= cacheWordMax
	if cacheable {
		b.mu.Lock()
		got, ok := b.cache[word]
		b.mu.Unlock()
		if ok {
			return append(ids, got...), nil
		}
	}
	syms, err := b.symbols(word)
	if err != nil {
		return nil, err
	}
	start := len(ids)
	ids = b.mergeAll(syms, ids)
	if cacheable {
		b.mu.Lock()
		if len(b.cache) >= cacheEntriesMax {
			clear(b.cache)
		}
		b.cache[word] = append([]int32(nil), ids[start:]...)
		b.mu.Unlock()
	}
	return ids, nil
}

// symbol is one node of the doubly linked list of a word's symbols.
type symbol struct {
	id         int32
	prev, next int32 // indices; -1 at the ends
	gone       bool  // merged into its left neighbour
}

// symbols splits word into its initial symbols: one per character (with the
// continuing-subword prefix on all but the first and the end-of-word suffix on
// the last), the byte tokens of a character missing from the vocabulary when
// byte_fallback is on, and the unknown token otherwise (consecutive unknowns
// fused when fuse_unk is on; characters dropped when there is no unknown
// token, as the Hugging Face library does).
func (b *bpe) symbols(word string) ([]symbol, error) {
	syms := make([]symbol, 0, len(word))
	add := func(id int32) {
		syms = append(syms, symbol{id: id, prev: int32(len(syms)) - 1, next: int32(len(syms)) + 1})
	}
	lastUnk := false
	for i := 0; i < len(word); {
		_, size := utf8.DecodeRuneInString(word[i:])
		ch := word[i : i+size]
		s := ch
		if i > 0 && b.prefix != "" {
			s = b.prefix + s
		}
		if i+size == len(word) && b.suffix != "" {
			s += b.suffix
		}
		i += size
		if id, ok := b.vocab[s]; ok {
			add(id)
			lastUnk = false
			continue
		}
		if b.byteFallback && b.hasBytes(ch) {
			for j := 0; j < len(ch); j++ {
				add(b.byteIDs[ch[j]])
			}
			lastUnk = false
			continue
		}
		if b.unk == "" {
			continue
		}
		id, ok := b.vocab[b.unk]
		if !ok {
			return nil, fmt.Errorf("tokenizer: unk_token %q is not in the vocab (needed for %q)", b.unk, ch)
		}
		if !(b.fuseUnk && lastUnk) {
			add(id)
		}
		lastUnk = true
	}
	if n := len(syms); n > 0 {
		syms[n-1].next = -1
	}
	return syms, nil
}

func (b *bpe) hasBytes(ch string) bool {
	for j := 0; j < len(ch); j++ {
		if b.byteIDs[ch[j]] < 0 {
			return false
		}
	}
	return true
}

// candidate is a possible merge of the symbol at pos with its right neighbour.
type candidate struct {
	rank, pos, id int32
}

func (c candidate) less(d candidate) bool {
	return c.rank < d.rank || (c.rank == d.rank && c.pos < d.pos)
}

// mergeAll applies the merges to syms and appends the resulting ids to ids.
// A candidate taken from the queue is stale when its symbol has gone or the
// pair at its position now merges into another token; it is then skipped.
func (b *bpe) mergeAll(syms []symbol, ids []int32) []int32 {
	var q queue
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := b.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			q.push(candidate{rank: m.rank, pos: int32(i), id: m.id})
		}
	}
	for len(q) > 0 {
		c := q.pop()
		s := &syms[c.pos]
		if s.gone || s.next < 0 {
			continue
		}
		r := &syms[s.next]
		if m, ok := b.merges[pairKey(s.id, r.id)]; !ok || m.id != c.id {
			continue
		}
		s.id = c.id
		r.gone = true
		s.next = r.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			if m, ok := b.merges[pairKey(syms[s.prev].id, s.id)]; ok {
				q.push(candidate{rank: m.rank, pos: s.prev, id: m.id})
			}
		}
		if s.next >= 0 {
			if m, ok := b.merges[pairKey(s.id, syms[s.next].id)]; ok {
				q.push(candidate{rank: m.rank, pos: c.pos, id: m.id})
			}
		}
	}
	for i := range syms {
		if !syms[i].gone {
			ids = append(ids, syms[i].id)
		}
	}
	return ids
}

// queue is a binary min-heap of candidates.
type queue []candidate

func (q *queue) push(c candidate) {
	*q = append(*q, c)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() candidate {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l].less(h[m]) {
			m = l
		}
		if r < n && h[r].less(h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
