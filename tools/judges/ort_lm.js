#!/usr/bin/env node
// ort_lm.js computes, with onnxruntime-node, what onnxslm's language-model
// commands compute in Go, for their tests: the log-likelihood of a
// continuation given a context (eval --task) and greedy decoding (generate).
// It runs the whole sequence at every step (no KV cache), in float64 for the
// log-softmax, so it shares nothing with the Go code it judges.
//
// Usage: node ort_lm.js REQUEST.json      (the answer is JSON on stdout)
//
// REQUEST.json:
//   {"model": "/path/model.onnx",
//    "past": {"past_key_values.0.key": [1, 4, 0, 32], ...},  // empty past inputs, if any
//    "loglik": [{"context": [ids], "continuation": [ids]}, ...],   // optional
//    "greedy": {"prompt": [ids], "max_new_tokens": 8},              // optional
//    "intra_op_threads": 2}
// Answer: {"ort_version": "1.30.0", "loglik": [sum, ...], "greedy": [ids]}
// Inputs the script feeds: input_ids, attention_mask (ones), position_ids
// (0..T-1), past_* (empty, shapes from the request). Errors go to stderr
// with exit status 1.
'use strict';

const { failer, start, sessionOptions } = require('./request');

const fail = failer('ort_lm');

function int64(ort, values, dims) {
  return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), dims);
}

// logits runs ids (one row) and returns the logits [T, V] as rows.
async function logits(ort, session, req, ids) {
  const T = ids.length;
  const feeds = {};
  for (const name of session.inputNames) {
    if (name === 'input_ids') feeds[name] = int64(ort, ids, [1, T]);
    else if (name === 'attention_mask') feeds[name] = int64(ort, ids.map(() => 1), [1, T]);
    else if (name === 'position_ids') feeds[name] = int64(ort, ids.map((_, i) => i), [1, T]);
    else if (req.past && req.past[name]) {
      feeds[name] = new ort.Tensor('float32', new Float32Array(0), req.past[name]);
    } else fail(`model input ${name}: no value for it`);
  }
  const out = await session.run(feeds, ['logits']);
  const l = out.logits;
  const V = Number(l.dims[2]);
  if (Number(l.dims[1]) !== T) fail(`logits of shape ${l.dims} for ${T} tokens`);
  const rows = [];
  for (let t = 0; t < T; t++) rows.push(l.data.subarray(t * V, (t + 1) * V));
  return rows;
}

function logSoftmaxAt(row, id) {
  let mx = -Infinity;
  for (const x of row) mx = Math.max(mx, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - mx);
  return row[id] - mx - Math.log(s);
}

function argmax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

async function main() {
  const { ort, req } = start('ort_lm');
  let session;
  try {
    session = await ort.InferenceSession.create(req.model, sessionOptions(req));
  } catch (e) {
    fail(`load ${req.model}: ${e.message}`);
  }
  const answer = { ort_version: ort.env.versions ? ort.env.versions.common : '' };
  if (req.loglik) {
    answer.loglik = [];
    for (const p of req.loglik) {
      const ids = p.context.concat(p.continuation);
      const rows = await logits(ort, session, req, ids.slice(0, -1));
      let sum = 0;
      p.continuation.forEach((id, j) => {
        sum += logSoftmaxAt(rows[p.context.length - 1 + j], id);
      });
      answer.loglik.push(sum);
    }
  }
  if (req.greedy) {
    const ids = req.greedy.prompt.slice();
    const out = [];
    for (let n = 0; n < req.greedy.max_new_tokens; n++) {
      const rows = await logits(ort, session, req, ids);
      const next = argmax(rows[rows.length - 1]);
      out.push(next);
      ids.push(next);
    }
    answer.greedy = out;
  }
  process.stdout.write(JSON.stringify(answer));
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
