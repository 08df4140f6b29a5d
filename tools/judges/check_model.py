#!/usr/bin/python3
"""check_model.py PATH: run the ONNX checker on a model, for onnxslm's tests.

Loads PATH (with its external data, found next to it) and runs
onnx.checker.check_model on the loaded ModelProto with full_check=True
(strict shape inference). The model OBJECT is checked, never the path:
check_model(path, full_check=True) overwrites the file with the
shape-inferred model (ONNX 1.12). A model whose external data would take the
in-memory message past protobuf's 2 GiB limit is checked without loading that
data: the checker then verifies that each external-data file exists, relative
to the model's folder (the working directory is set to it).

Exit status: 0 valid; 1 invalid or unreadable (the checker's or the
loader's message on stderr); 2 usage or environment error (onnx missing); 3 the model needs a newer ONNX than the
installed one (IR version or opset too new), so it cannot be judged here.
"""
import sys


LIMIT = 2**31 - 2**26  # protobuf's 2 GiB message limit, with a margin


def _tensors(graph):
    """Every TensorProto of graph and its subgraphs (initializers, Constant
    values, tensor attributes)."""
    for t in graph.initializer:
        yield t
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            for t in a.tensors:
                yield t
            if a.HasField("g"):
                yield from _tensors(a.g)
            for g in a.graphs:
                yield from _tensors(g)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: check_model.py MODEL.onnx\n")
        return 2
    path = sys.argv[1]
    try:
        import onnx
        import onnx.checker
        import onnx.defs
    except ImportError as e:
        sys.stderr.write("check_model: cannot import onnx (run .ci/install-judges.sh): %s\n" % e)
        return 2
    import os

    try:
        model = onnx.load(path, load_external_data=False)
        external = 0
        for t in _tensors(model.graph):
            if t.data_location == onnx.TensorProto.EXTERNAL:
                for e in t.external_data:
                    if e.key == "length":
                        external += int(e.value)
        if external and model.ByteSize() + external < LIMIT:
            model = onnx.load(path, load_external_data=True)
    except Exception as e:  # noqa: BLE001 - report whatever the loader says
        sys.stderr.write("check_model: load %s: %s\n" % (path, e))
        return 1
    os.chdir(os.path.dirname(os.path.abspath(path)))
    max_ir = onnx.IR_VERSION
    max_opset = onnx.defs.onnx_opset_version()
    too_new = []
    if model.ir_version > max_ir:
        too_new.append("IR version %d > %d" % (model.ir_version, max_ir))
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > max_opset:
            too_new.append("opset %d > %d" % (imp.version, max_opset))
    if too_new:
        sys.stderr.write(
            "check_model: %s: cannot be checked by onnx %s (%s)\n"
            % (path, onnx.__version__, ", ".join(too_new))
        )
        return 3
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, InferenceError, ...
        msg = str(e).strip().replace("\n", " ")
        sys.stderr.write("check_model: %s: %s: %s\n" % (path, type(e).__name__, msg))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
