package runtime

// opTable is every op type the runtime executes in the default (ai.onnx)
// domain, one row per op, sorted by name; msOpTable the same for
// onnxruntime's com.microsoft contrib ops, where since is the com.microsoft
// opset. A node is looked up by its (domain, op) pair. The columns:
//
//   - since: the oldest opset whose semantics the kernel implements (a model
//     with an older default opset is refused for that node);
//   - minIn, maxIn: the accepted number of inputs (anyIn: no upper bound);
//   - shapeArgs: the inputs whose values, not only shapes, decide the output
//     shape (folding needs them static to know the output's shape ahead);
//   - flags: shapeOnly (reads only its input's shape), inPlace (may write its
//     output into a dying input);
//   - compile: turns a node (its attributes) into the kernel that runs it; the
//     kernels live in the file of their family (elementwise.go, unary.go,
//     matmul.go, reduce.go, shape.go, misc.go, movement.go).
//
// Which ops a fusion may absorb is listed with the fusion (fusions in
// fuse.go), not here.
var opTable = []opDef{
	// name, since, minIn, maxIn, shapeArgs, flags, compile
	{"Abs", 6, 1, 1, nil, inPlace, compileUnary("Abs")},
	{"Add", 7, 2, 2, nil, inPlace, compileBinary(opAdd)},
	{"And", 7, 2, 2, nil, 0, compileLogic(logAnd)},
	{"Attention", 23, 3, 7, nil, 0, compileAttention23},
	{"Cast", 6, 1, 1, nil, 0, compileCast},
	{"CastLike", 15, 2, 2, nil, 0, compileCastLike},
	{"Ceil", 6, 1, 1, nil, inPlace, compileUnary("Ceil")},
	{"Clip", 6, 1, 3, nil, inPlace, compileClip},
	{"Concat", 4, 1, anyIn, nil, 0, compileConcat},
	{"Constant", 1, 0, 0, nil, 0, compileConstant},
	{"ConstantOfShape", 9, 1, 1, []int{0}, 0, compileConstantOfShape},
	{"Cos", 7, 1, 1, nil, inPlace, compileUnary("Cos")},
	{"CumSum", 11, 2, 2, nil, 0, compileCumSum},
	{"DequantizeLinear", 10, 2, 3, nil, 0, compileDequantizeLinear},
	{"Div", 7, 2, 2, nil, inPlace, compileBinary(opDiv)},
	{"Dropout", 7, 1, 3, nil, 0, compileDropout},
	{"DynamicQuantizeLinear", 11, 1, 1, nil, 0, compileDynamicQuantizeLinear},
	{"Equal", 7, 2, 2, nil, 0, compileCompare(cmpEq)},
	{"Erf", 9, 1, 1, nil, inPlace, compileUnary("Erf")},
	{"Exp", 6, 1, 1, nil, inPlace, compileUnary("Exp")},
	{"Expand", 8, 2, 2, []int{1}, 0, compileExpand},
	{"Flatten", 1, 1, 1, nil, 0, compileFlatten},
	{"Floor", 6, 1, 1, nil, inPlace, compileUnary("Floor")},
	{"Gather", 1, 2, 2, nil, 0, compileGather},
	{"Gelu", 20, 1, 1, nil, inPlace, compileGelu},
	{"Gemm", 7, 2, 3, nil, 0, compileGemm},
	{"Greater", 7, 2, 2, nil, 0, compileCompare(cmpGt)},
	{"GreaterOrEqual", 7, 2, 2, nil, 0, compileCompare(cmpGe)},
	{"Identity", 1, 1, 1, nil, 0, compileIdentity},
	{"If", 11, 1, anyIn, nil, 0, compileIfRow}, // inputs: cond, then the values its branches read (if.go)
	{"IsInf", 10, 1, 1, nil, 0, compileIsInf},
	{"IsNaN", 9, 1, 1, nil, 0, compileIsNaN},
	{"LayerNormalization", 1, 2, 3, nil, 0, compileLayerNorm}, // ONNX since 17; onnxruntime registers it in the default domain from opset 1 (the transformer optimizer writes it at any opset)
	{"LeakyRelu", 6, 1, 1, nil, inPlace, compileLeakyRelu},
	{"Less", 7, 2, 2, nil, 0, compileCompare(cmpLt)},
	{"LessOrEqual", 7, 2, 2, nil, 0, compileCompare(cmpLe)},
	{"Log", 6, 1, 1, nil, inPlace, compileUnary("Log")},
	{"LogSoftmax", 1, 1, 1, nil, inPlace, compileSoftmaxOp(true)},
	{"MatMul", 1, 2, 2, nil, 0, compileMatMul},
	{"MatMulInteger", 10, 2, 4, nil, 0, compileMatMulInteger},
	{"Max", 8, 1, anyIn, nil, inPlace, compileVariadic(opMax)},
	{"Min", 8, 1, anyIn, nil, inPlace, compileVariadic(opMin)},
	{"Mod", 10, 2, 2, nil, inPlace, compileMod},
	{"Mul", 7, 2, 2, nil, inPlace, compileBinary(opMul)},
	{"Neg", 6, 1, 1, nil, inPlace, compileUnary("Neg")},
	{"Not", 1, 1, 1, nil, 0, compileNot},
	{"Or", 7, 2, 2, nil, 0, compileLogic(logOr)},
	{"Pow", 7, 2, 2, nil, inPlace, compileBinary(opPow)},
	{"RMSNormalization", 23, 2, 2, nil, 0, compileSimplifiedLayerNorm},
	{"Range", 11, 3, 3, []int{0, 1, 2}, 0, compileRange},
	{"Reciprocal", 6, 1, 1, nil, inPlace, compileUnary("Reciprocal")},
	{"ReduceMax", 1, 1, 2, []int{1}, 0, compileReduceOp(redMax, 18)},
	{"ReduceMean", 1, 1, 2, []int{1}, 0, compileReduceOp(redMean, 18)},
	{"ReduceMin", 1, 1, 2, []int{1}, 0, compileReduceOp(redMin, 18)},
	{"ReduceProd", 1, 1, 2, []int{1}, 0, compileReduceOp(redProd, 18)},
	{"ReduceSum", 1, 1, 2, []int{1}, 0, compileReduceOp(redSum, 13)},
	{"ReduceSumSquare", 1, 1, 2, []int{1}, 0, compileReduceOp(redSumSquare, 18)},
	{"Relu", 6, 1, 1, nil, inPlace, compileUnary("Relu")},
	{"Reshape", 5, 2, 2, []int{1}, 0, compileReshape},
	{"Round", 11, 1, 1, nil, inPlace, compileUnary("Round")},
	{"ScatterND", 11, 3, 3, nil, 0, compileScatterND},
	{"Shape", 1, 1, 1, nil, shapeOnly, compileShape},
	{"Sigmoid", 6, 1, 1, nil, inPlace, compileUnary("Sigmoid")},
	{"Sign", 9, 1, 1, nil, inPlace, compileUnary("Sign")},
	{"SimplifiedLayerNormalization", 1, 2, 2, nil, 0, compileSimplifiedLayerNorm}, // onnxruntime registers it in the default domain (norms.go)
	{"Sin", 7, 1, 1, nil, inPlace, compileUnary("Sin")},
	{"Size", 1, 1, 1, nil, shapeOnly, compileSize},
	{"Slice", 10, 3, 5, []int{1, 2, 3, 4}, 0, compileSlice},
	{"Softmax", 1, 1, 1, nil, inPlace, compileSoftmaxOp(false)},
	{"Softplus", 1, 1, 1, nil, inPlace, compileUnary("Softplus")},
	{"Split", 2, 1, 2, []int{1}, 0, compileSplit},
	{"Sqrt", 6, 1, 1, nil, inPlace, compileUnary("Sqrt")},
	{"Squeeze", 1, 1, 2, []int{1}, 0, compileSqueeze},
	{"Sub", 7, 2, 2, nil, inPlace, compileBinary(opSub)},
	{"Sum", 8, 1, anyIn, nil, inPlace, compileVariadic(opAdd)},
	{"Tanh", 6, 1, 1, nil, inPlace, compileUnary("Tanh")},
	{"Tile", 6, 2, 2, []int{1}, 0, compileTile},
	{"Transpose", 1, 1, 1, nil, 0, compileTranspose},
	{"Trilu", 14, 1, 2, nil, 0, compileTrilu},
	{"Unsqueeze", 1, 1, 2, []int{1}, 0, compileUnsqueeze},
	{"Where", 9, 3, 3, nil, 0, compileWhere},
	{"Xor", 7, 2, 2, nil, 0, compileLogic(logXor)},
}

// newestOpset is the newest ai.onnx opset whose semantics the rows were
// checked against (opset 24 changed Attention, refused where it matters by
// its kernel, and added types to others); a node of a newer model is
// refused, op, node, domain and opset named.
const newestOpset = 24

// msDomain is onnxruntime's contrib op domain.
const msDomain = "com.microsoft"

// msOpTable is the com.microsoft contrib ops (onnxruntime's
// docs/ContribOperators.md), at the attribute combinations the producers
// write (docs/design/runtime.md lists them), sorted by name.
var msOpTable = []opDef{
	{"Attention", 1, 2, 7, nil, 0, compileMSAttention},
	{"BiasGelu", 1, 2, 2, nil, 0, compileBiasGelu},
	{"FastGelu", 1, 1, 2, nil, 0, compileFastGelu},
	{"GroupQueryAttention", 1, 1, 12, nil, 0, compileGQA},
	{"MatMulNBits", 1, 3, 6, nil, 0, compileMatMulNBits},
	{"MultiHeadAttention", 1, 1, 10, nil, 0, compileMHA},
	{"RotaryEmbedding", 1, 4, 4, nil, 0, compileRotaryEmbedding},
	{"SimplifiedLayerNormalization", 1, 2, 2, nil, 0, compileSimplifiedLayerNorm},
	{"SkipLayerNormalization", 1, 3, 5, nil, 0, compileSkipLayerNorm(false)},
	{"SkipSimplifiedLayerNormalization", 1, 3, 4, nil, 0, compileSkipLayerNorm(true)},
}

// opKey names an op: its domain ("" for ai.onnx) and type.
type opKey struct{ domain, name string }

// ops indexes the tables by (domain, op).
var ops = indexOps(map[string][]opDef{"": opTable, msDomain: msOpTable})

func indexOps(tables map[string][]opDef) map[opKey]*opDef {
	m := map[opKey]*opDef{}
	for domain, table := range tables {
		for i := range table {
			m[opKey{domain, table[i].name}] = &table[i]
		}
	}
	return m
}

// opDomain maps a node's domain to the key's ("ai.onnx" is "").
func opDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}
