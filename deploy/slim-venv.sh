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
print("slim-venv: runtime check ok, torch", torch.__version__)
EOF
echo "slim-venv: $venv ${before} MB -> $(du -sm "$venv" | cut -f1) MB" >&2
