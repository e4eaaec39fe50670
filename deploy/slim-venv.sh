#!/bin/sh
# Cut a runtime virtualenv down to what CPU inference with this service needs (Dockerfile,
# builder stage; needs `strip` from binutils, which never reaches the runtime stage).
#
#   deploy/slim-venv.sh /opt/venv
#
# What goes, and why it is safe (deploy/docker-test.sh proves the answers do not change: it
# compares /predict and an explained /predict with local scoring):
#   - debug and local symbols of every shared library (`strip --strip-unneeded` keeps the
#     dynamic symbol table the loader uses); most of it is libtorch_cpu.so;
#   - sympy, mpmath, networkx: torch declares them for symbolic shapes and torch.compile,
#     and imports them only there;
#   - torch's compiler and exporters (_inductor, _dynamo, onnx), C++ headers, C++ test
#     binaries and test-only libraries: `import torch` and eager inference never load them;
#   - onnx's backend test data, ONNX Runtime's C-API library (the Python binding carries its
#     own copy of the runtime) and its model-conversion tools (transformers, quantization);
#   - test suites and static libraries of the other packages.
# The runtime check at the end imports what the service imports and scores with autograd
# (as explanations do), so a cut too deep fails the build here, not in production.
set -eu

venv=${1:?usage: slim-venv.sh VENV}
site=$(echo "$venv"/lib/python3*/site-packages)
[ -d "$site/torch" ] || { echo "slim-venv: no torch in $site" >&2; exit 1; }
before=$(du -sm "$venv" | cut -f1)

"$venv/bin/python" -m pip uninstall -q -y sympy mpmath networkx

cd "$site/torch"
# bin/ keeps torch_shm_manager: `import torch` checks that it exists.
rm -rf include test _inductor _dynamo onnx \
    bin/*Test bin/test_* bin/protoc* bin/*.pt bin/*.ptl bin/upgrader_models \
    lib/libjitbackend_test.so lib/libtorchbind_test.so lib/libbackend_with_compiler.so \
    lib/libaoti_custom_ops.so
cd "$site"
rm -rf onnx/backend/test onnxruntime/capi/libonnxruntime.so* \
    onnxruntime/transformers onnxruntime/quantization onnxruntime/tools
find . -type d -name tests -path './numpy/*' -prune -exec rm -rf {} +
find . -name '*.a' -type f -delete

# Not the libraries auditwheel vendored into *.libs/ (numpy's OpenBLAS): patchelf moved their
# segments, and strip's rewrite leaves them unloadable ("ELF load command address/offset not
# page-aligned").
find . -path './*.libs' -prune -o -type f \( -name '*.so' -o -name '*.so.*' \) -print |
while read -r lib; do
    strip --strip-unneeded "$lib"
done

"$venv/bin/python" - <<'EOF'
import importlib
import importlib.util

import torch

for name in ("numpy", "safetensors.torch", "fastapi", "uvicorn", "uvloop", "httptools",
             "pydantic_core", "orjson", "prometheus_client"):
    importlib.import_module(name)
gone = [m for m in ("sympy", "networkx", "torch._inductor", "torch._dynamo")
        if importlib.util.find_spec(m) is not None]
assert not gone, f"still installed: {gone}"
# A bidirectional GRU forward and a gradient w.r.t. the input: the two paths the service runs.
gru = torch.nn.GRU(8, 4, batch_first=True, bidirectional=True)
x = torch.randn(2, 5, 8, requires_grad=True)
out, _ = gru(x)
(grad,) = torch.autograd.grad(out.sum(), x)
assert grad.shape == x.shape
# The same GRU on ONNX Runtime (the service's scoring path, model/onnx_graph.py) agrees.
import numpy as np
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

def onnx_gates(w):  # torch r, z, n -> onnx z, r, h
    r, z, n = np.split(w.detach().numpy(), 3)
    return np.concatenate([z, r, n])

names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
per_direction = [[onnx_gates(getattr(gru, n + s)) for n in names] for s in ("", "_reverse")]
W, R = (np.stack([d[i] for d in per_direction]) for i in (0, 1))
B = np.stack([np.concatenate(d[2:]) for d in per_direction])
graph = helper.make_graph(
    [helper.make_node("GRU", ["X", "W", "R", "B"], ["Y"], hidden_size=4,
                      direction="bidirectional", linear_before_reset=1)],
    "check", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 2, 8])],
    [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
    [numpy_helper.from_array(a.astype(np.float32), n) for a, n in ((W, "W"), (R, "R"), (B, "B"))],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
(y,) = session.run(None, {"X": x.detach().transpose(0, 1).contiguous().numpy()})
ours = torch.from_numpy(y).permute(2, 0, 1, 3).reshape(2, 5, 8)
assert torch.allclose(ours, out.detach(), atol=1e-5), (ours - out).abs().max()
print("slim-venv: runtime check ok, torch", torch.__version__, "onnxruntime", onnxruntime.__version__)
EOF
echo "slim-venv: $venv ${before} MB -> $(du -sm "$venv" | cut -f1) MB" >&2
