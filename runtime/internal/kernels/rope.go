package kernels

// RopeRow, where the CPU allows, rotates one row for rotary position
// embedding, for h a multiple of 8: for j < h,
//
//	o[j]   = x[j]·c[j]     + (−x[j+h])·s[j]
//	o[j+h] = x[j+h]·c[j+h] + x[j]·s[j+h]
//
// with each product rounded to float32 before the sum (as the ONNX graph's
// Mul, Neg, Mul, Add would).
var RopeRow func(o, x, c, s []float32, h int)
