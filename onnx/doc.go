// Package onnx reads and writes ONNX models faithfully, with external data, and
// encodes and decodes tensors.
//
// Load resolves every external-data reference into memory (a read-only memory
// mapping of the data file on Unix: raw_data of such tensors must never be
// written to; Model.Close releases it), so the rest of onnxslm works on
// self-contained [pb.ModelProto] messages; Save writes them back
// inline or with the weights in one external-data file, atomically and without
// modifying the caller's message. Fields this package does not know (newer than
// onnx.proto's IR 8) survive a round trip as protobuf unknown fields.
package onnx
