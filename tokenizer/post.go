package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor is what the post-processor does to a single sequence: fixed
// ids before and after it.
type postProcessor struct {
	prefix, suffix []int32
}

func parsePostProcessor(raw json.RawMessage) (*postProcessor, error) {
	pp := &postProcessor{}
	if err := pp.add(raw); err != nil {
		return nil, err
	}
	return pp, nil
}

// add applies one post-processor's effect to pp.
func (pp *postProcessor) add(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	typ, err := typeOf(raw)
	if err != nil {
		return err
	}
	switch typ {
	case "ByteLevel":
		// Only adjusts offsets.
		return nil
	case "Sequence":
		var s struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("Sequence: %w", err)
		}
		for i, r := range s.Processors {
			if err := pp.add(r); err != nil {
				return fmt.Errorf("Sequence[%d]: %w", i, err)
			}
		}
		return nil
	case "TemplateProcessing":
		return pp.template(raw)
	case "RobertaProcessing", "BertProcessing":
		var s struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%s: %w", typ, err)
		}
		cls, err := tokenID(s.Cls)
		if err != nil {
			return fmt.Errorf("%s: cls: %w", typ, err)
		}
		sep, err := tokenID(s.Sep)
		if err != nil {
			return fmt.Errorf("%s: sep: %w", typ, err)
		}
		pp.prefix = append([]int32{cls}, pp.prefix...)
		pp.suffix = append(pp.suffix, sep)
		return nil
	default:
		return fmt.Errorf("post_processor type %q is not supported", typ)
	}
}

// tokenID reads a ["token", id] pair.
func tokenID(pair []json.RawMessage) (int32, error) {
	var id int64
	if len(pair) != 2 || json.Unmarshal(pair[1], &id) != nil || id < 0 || id > 1<<31-1 {
		return 0, fmt.Errorf("want [\"token\", id]")
	}
	return int32(id), nil
}

// template reads TemplateProcessing's "single" template: special tokens
// around the sequence $A.
func (pp *postProcessor) template(raw json.RawMessage) error {
	var s struct {
		Single []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int64 `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("TemplateProcessing: %w", err)
	}
	var prefix, suffix []int32
	seen := false
	for i, item := range s.Single {
		switch {
		case item.Sequence != nil:
			if seen {
				return fmt.Errorf("TemplateProcessing: single[%d]: the sequence appears twice", i)
			}
			seen = true
		case item.SpecialToken != nil:
			st, ok := s.SpecialTokens[item.SpecialToken.ID]
			if !ok {
				return fmt.Errorf("TemplateProcessing: single[%d]: special token %q is not in special_tokens", i, item.SpecialToken.ID)
			}
			for _, id := range st.IDs {
				if id < 0 || id > 1<<31-1 {
					return fmt.Errorf("TemplateProcessing: special token %q: id %d out of range", item.SpecialToken.ID, id)
				}
				if seen {
					suffix = append(suffix, int32(id))
				} else {
					prefix = append(prefix, int32(id))
				}
			}
		default:
			return fmt.Errorf("TemplateProcessing: single[%d] is neither SpecialToken nor Sequence", i)
		}
	}
	if !seen {
		return fmt.Errorf("TemplateProcessing: the single template has no sequence")
	}
	pp.prefix = append(prefix, pp.prefix...)
	pp.suffix = append(pp.suffix, suffix...)
	return nil
}
