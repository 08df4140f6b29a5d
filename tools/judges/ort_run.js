#!/usr/bin/env node
// ort_run.js runs an ONNX model with onnxruntime-node for onnxslm's tests.
//
// Usage: node ort_run.js REQUEST.json
//
// REQUEST.json:
//   {"model": "/path/model.onnx",            // external data is found next to it
//    "inputs": [{"name": "input_ids", "file": "/tmp/x/in0.npy"}, ...],
//    "outputs": ["logits"],                  // [] or absent: every model output
//    "out_dir": "/tmp/x/out",                // must exist
//    "intra_op_threads": 2}                  // optional, default 2
//
// Every input is a .npy file (format 1.0-3.0, little-endian, C order; dtypes
// <f4 <f8 <i8 <i4 |u1 |b1). Every output is written to OUT_DIR/outN.npy, and
// OUT_DIR/result.json lists them:
//   {"ort_version": "1.30.0", "outputs": [{"name": "logits", "file": "out0.npy"}]}
// Errors go to stderr with exit status 1.
'use strict';

const fs = require('fs');
const path = require('path');
const { readFeeds, writeNpy } = require('./npy');

const { failer, start, sessionOptions } = require('./request');

const fail = failer('ort_run');

async function main() {
  const { ort, req } = start('ort_run');
  const feeds = readFeeds(ort, req.inputs);
  let session;
  try {
    session = await ort.InferenceSession.create(req.model, sessionOptions(req));
  } catch (e) {
    fail(`load ${req.model}: ${e.message}`);
  }
  const fetches = req.outputs && req.outputs.length ? req.outputs : session.outputNames;
  let results;
  try {
    results = await session.run(feeds, fetches);
  } catch (e) {
    fail(`run ${req.model}: ${e.message}`);
  }
  const listed = [];
  fetches.forEach((name, i) => {
    const file = `out${i}.npy`;
    writeNpy(path.join(req.out_dir, file), results[name]);
    listed.push({ name, file });
  });
  const result = { ort_version: ort.env.versions ? ort.env.versions.common : '', outputs: listed };
  fs.writeFileSync(path.join(req.out_dir, 'result.json'), JSON.stringify(result));
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
