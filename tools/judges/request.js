// request.js is what every onnxruntime judge (ort_run.js, ort_bench.js,
// ort_lm.js) does first: check its one argument, load onnxruntime-node and
// read the JSON request; and the session options they share.
'use strict';

const fs = require('fs');

// failer returns fail(msg): msg to stderr, prefixed with the judge's name, and exit status 1.
function failer(name) {
  return (msg) => {
    process.stderr.write(`${name}: ${msg}\n`);
    process.exit(1);
  };
}

// start checks the command line of judge name, loads onnxruntime-node and
// reads REQUEST.json.
function start(name) {
  const fail = failer(name);
  if (process.argv.length !== 3) fail(`usage: node ${name}.js REQUEST.json`);
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node (run .ci/install-judges.sh): ${e.message}`);
  }
  const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  return { ort, req };
}

// sessionOptions are the judges' onnxruntime session options: intra-op
// threads from the request (default 2), one inter-op thread, sequential.
function sessionOptions(req) {
  return { intraOpNumThreads: req.intra_op_threads || 2, interOpNumThreads: 1, executionMode: 'sequential' };
}

module.exports = { failer, start, sessionOptions };
