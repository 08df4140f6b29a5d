package rewrite

// onnxruntime-genai reads genai_config.json beside the model
// (model.decoder.filename, num_hidden_layers, the KV name patterns); a model
// with fewer layers needs a config that says so. UpdateGenAIConfig rewrites
// it, keeping every other key, value and the key order.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// GenAIConfigName is the file onnxruntime-genai reads beside the model.
const GenAIConfigName = "genai_config.json"

// GenAIConfigEdit says how the model changed.
type GenAIConfigEdit struct {
	// LayersBefore is the input's number of layers; KeptFrom the original index
	// of each kept layer (Result.KeptFrom).
	LayersBefore int
	KeptFrom     []int
	// Filename, when set, is the model file's new name (model.decoder.filename).
	Filename string
}

// EditFromResult is the edit a rewrite's result makes, for a model written as
// filename.
func EditFromResult(res *Result, filename string) GenAIConfigEdit {
	return GenAIConfigEdit{LayersBefore: res.LayersBefore, KeptFrom: res.KeptFrom, Filename: filename}
}

// UpdateGenAIConfig returns raw (a genai_config.json) with
// model.decoder.num_hidden_layers set to the kept layers' count, every array
// under model.decoder with one entry per layer cut to the kept layers'
// entries, and model.decoder.filename set when e.Filename is. It refuses a
// config whose num_hidden_layers is not e.LayersBefore: it describes another model.
func UpdateGenAIConfig(raw []byte, e GenAIConfigEdit) ([]byte, error) {
	root, err := parseOrdered(raw)
	if err != nil {
		return nil, fmt.Errorf("rewrite: %s: %w", GenAIConfigName, err)
	}
	model, _ := root.get("model").(*object)
	var dec *object
	if model != nil {
		dec, _ = model.get("decoder").(*object)
	}
	if dec == nil {
		return nil, fmt.Errorf("rewrite: %s: no model.decoder object", GenAIConfigName)
	}
	n, ok := dec.get("num_hidden_layers").(json.Number)
	if !ok {
		return nil, fmt.Errorf("rewrite: %s: model.decoder.num_hidden_layers is not a number", GenAIConfigName)
	}
	if before, err := n.Int64(); err != nil || before != int64(e.LayersBefore) {
		return nil, fmt.Errorf("rewrite: %s: num_hidden_layers is %s, the model had %d layers: the config belongs to another model", GenAIConfigName, n, e.LayersBefore)
	}
	for i, k := range dec.keys {
		switch v := dec.vals[i].(type) {
		case json.Number:
			if k == "num_hidden_layers" {
				dec.vals[i] = json.Number(fmt.Sprint(len(e.KeptFrom)))
			}
		case string:
			if k == "filename" && e.Filename != "" {
				dec.vals[i] = e.Filename
			}
		case []any:
			if len(v) == e.LayersBefore { // a per-layer list
				kept := make([]any, 0, len(e.KeptFrom))
				for _, j := range e.KeptFrom {
					kept = append(kept, v[j])
				}
				dec.vals[i] = kept
			}
		}
	}
	var buf bytes.Buffer
	if err := writeOrdered(&buf, root, ""); err != nil {
		return nil, fmt.Errorf("rewrite: %s: %w", GenAIConfigName, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// object is a JSON object that keeps its key order.
type object struct {
	keys []string
	vals []any
}

func (o *object) get(k string) any {
	if i := slices.Index(o.keys, k); i >= 0 {
		return o.vals[i]
	}
	return nil
}

// maxJSONDepth bounds the nesting of a config (a hostile file cannot exhaust the stack).
const maxJSONDepth = 64

func parseOrdered(raw []byte) (*object, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	v, err := parseValue(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the top-level object")
	}
	o, ok := v.(*object)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return o, nil
}

func parseValue(d *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v", kt)
				}
				v, err := parseValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				o.keys, o.vals = append(o.keys, k), append(o.vals, v)
			}
			_, err := d.Token()
			return o, err
		case '[':
			a := []any{}
			for d.More() {
				v, err := parseValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := d.Token()
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil // string, json.Number, bool, nil
	}
}

// writeOrdered writes v as json.dump(indent=4) does.
func writeOrdered(buf *bytes.Buffer, v any, indent string) error {
	in := indent + "    "
	switch t := v.(type) {
	case *object:
		if len(t.keys) == 0 {
			buf.WriteString("{}")
			return nil
		}
		buf.WriteString("{\n")
		for i, k := range t.keys {
			kb, err := json.Marshal(k)
			if err != nil {
				return err
			}
			buf.WriteString(in)
			buf.Write(kb)
			buf.WriteString(": ")
			if err := writeOrdered(buf, t.vals[i], in); err != nil {
				return err
			}
			if i+1 < len(t.keys) {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "}")
	case []any:
		if len(t) == 0 {
			buf.WriteString("[]")
			return nil
		}
		buf.WriteString("[\n")
		for i, e := range t {
			buf.WriteString(in)
			if err := writeOrdered(buf, e, in); err != nil {
				return err
			}
			if i+1 < len(t) {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "]")
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return nil
}
