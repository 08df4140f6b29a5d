#!/usr/bin/env node
// ort_bench.js times onnxruntime-node on one model for onnxslm's speed
// benchmark (internal/cmd/benchort). It stays alive and runs the model when
// asked, so that the caller can interleave onnxruntime runs with its own and
// both see the same machine load.
//
// Usage: node ort_bench.js REQUEST.json
//
// REQUEST.json:
//   {"model": "/path/model.onnx",            // external data is found next to it
//    "inputs": [{"name": "input_ids", "file": "/tmp/x/in0.npy"}, ...],
//    "outputs": ["logits"],                  // [] or absent: every model output
//    "intra_op_threads": 2,                  // optional, default 2
//    "allow_spinning": true,                 // optional, default true (onnxruntime's
//                                            // default); false sets
//                                            // session.intra_op.allow_spinning=0
//    "out_file": "/tmp/x/logits.npy"}        // optional: first output of the first run
//
// Every input is a .npy file (as for ort_run.js: little-endian, C order; <f4 <i8
// <i4 |u1 |b1). Protocol, one JSON object per line on stdout:
//   after loading:   {"ready": true, "ort_version": "1.30.0", "load_ms": 812.5}
//   stdin "run N":   N runs, one after the other; then
//                    {"ms": [t1, ..., tN], "cpu_ms": [c1, ..., cN]}
//                    (wall and process CPU time, user + system, of each run)
//   stdin "rss":     {"rss_bytes": R, "peak_rss_bytes": P} (from /proc/self/status)
//   stdin "quit" or end of input: exit 0.
// Errors go to stderr with exit status 1.
'use strict';

const fs = require('fs');
const readline = require('readline');
const { readFeeds, writeNpy } = require('./npy');

const { failer, start, sessionOptions } = require('./request');

const fail = failer('ort_bench');

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function rss() {
  const st = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(st);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss_bytes: kb('VmRSS'), peak_rss_bytes: kb('VmHWM') };
}

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main() {
  const { ort, req } = start('ort_bench');
  const feeds = readFeeds(ort, req.inputs);
  const t0 = performance.now();
  const options = { ...sessionOptions(req), graphOptimizationLevel: 'all' };
  if (req.allow_spinning === false) {
    options.extra = { session: { intra_op: { allow_spinning: '0' } } };
  }
  let session;
  try {
    session = await ort.InferenceSession.create(req.model, options);
  } catch (e) {
    fail(`load ${req.model}: ${e.message}`);
  }
  const fetches = req.outputs && req.outputs.length ? req.outputs : session.outputNames;
  say({ ready: true, ort_version: ort.env.versions ? ort.env.versions.common : '', load_ms: performance.now() - t0 });

  let first = true;
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'quit') break;
    if (words[0] === 'rss') {
      say(rss());
      continue;
    }
    if (words[0] !== 'run') fail(`unknown command ${JSON.stringify(line)}`);
    const n = Number(words[1] || 1);
    if (!Number.isInteger(n) || n < 1) fail(`bad run count in ${JSON.stringify(line)}`);
    const ms = [];
    const cpu = [];
    for (let i = 0; i < n; i++) {
      const c0 = cpuMs();
      const w0 = performance.now();
      let results;
      try {
        results = await session.run(feeds, fetches);
      } catch (e) {
        fail(`run ${req.model}: ${e.message}`);
      }
      ms.push(performance.now() - w0);
      cpu.push(cpuMs() - c0);
      if (first && req.out_file) {
        writeNpy(req.out_file, results[fetches[0]]);
      }
      first = false;
    }
    say({ ms, cpu_ms: cpu });
  }
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
