// npy.js reads and writes .npy files (format 1.0-3.0, little-endian, C order)
// as onnxruntime-node tensors, for the judge scripts ort_run.js and ort_bench.js.
'use strict';

const fs = require('fs');

const DTYPES = {
  '<f4': { ort: 'float32', array: Float32Array, size: 4 },
  '<f8': { ort: 'float64', array: Float64Array, size: 8 },
  '<i8': { ort: 'int64', array: BigInt64Array, size: 8 },
  '<i4': { ort: 'int32', array: Int32Array, size: 4 },
  '|u1': { ort: 'uint8', array: Uint8Array, size: 1 },
  '|b1': { ort: 'bool', array: Uint8Array, size: 1 },
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  let hlen, start;
  if (major === 1) {
    hlen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    hlen = buf.readUInt32LE(8);
    start = 12;
  } else {
    throw new Error(`${file}: unsupported .npy version ${major}`);
  }
  const header = buf.toString('utf8', start, start + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) {
    throw new Error(`${file}: bad .npy header ${JSON.stringify(header)}`);
  }
  const dt = DTYPES[descr[1]];
  if (!dt) throw new Error(`${file}: unsupported dtype ${descr[1]}`);
  if (fortran[1] === 'True') throw new Error(`${file}: Fortran order is not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const off = start + hlen;
  if (buf.length - off !== count * dt.size) {
    throw new Error(`${file}: ${buf.length - off} data bytes, shape (${dims}) of ${descr[1]} needs ${count * dt.size}`);
  }
  // Copy into an aligned buffer: typed arrays need offsets aligned to their size.
  const data = new dt.array(count);
  Buffer.from(data.buffer).set(buf.subarray(off, off + count * dt.size));
  return { type: dt.ort, dims, data };
}

const ORT_TO_NPY = {
  float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', uint8: '|u1', bool: '|b1',
};

function writeNpy(file, tensor) {
  const descr = ORT_TO_NPY[tensor.type];
  if (!descr) throw new Error(`output of type ${tensor.type} cannot be written as .npy by this script`);
  const dims = tensor.dims.map(Number);
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  const d = tensor.data;
  const body = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'), body]));
}

// readFeeds reads a request's inputs ([{name, file}]) as onnxruntime tensors.
function readFeeds(ort, inputs) {
  const feeds = {};
  for (const inp of inputs || []) {
    const a = readNpy(inp.file);
    feeds[inp.name] = new ort.Tensor(a.type, a.data, a.dims);
  }
  return feeds;
}

module.exports = { readNpy, writeNpy, readFeeds };
