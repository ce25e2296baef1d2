#!/usr/bin/env bash
# Creates the Python venv ComfyUI runs in and installs the pinned packages into it.
# Usage: install-python.sh <venv dir> <requirements.txt>
set -euo pipefail

venv=${1:?venv directory}
requirements=${2:?requirements file}

python3.12 -m venv "$venv"
"$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check -r "$requirements"

# Fail the build, not the first job on a GPU: the wheels must be the CUDA 12.8 builds.
"$venv/bin/python" - <<'PY'
import importlib.util
import torch, triton
assert torch.version.cuda is not None and torch.version.cuda.startswith("12.8"), f"torch built for CUDA {torch.version.cuda}, want 12.8"
# The compiled arch list is readable without a GPU (torch.cuda.get_arch_list() needs one).
arch = torch._C._cuda_getArchFlags()
assert "sm_120" in arch, f"no Blackwell (sm_120) kernels in {arch}"
assert importlib.util.find_spec("sageattention") is not None, "sageattention missing"
# The image's base is CUDA without cuDNN or cuBLAS: the wheels must bring them (torch's nvidia-* requirements).
for library in ("nvidia.cudnn", "nvidia.cublas", "nvidia.cuda_runtime", "nvidia.cuda_nvrtc"):
    assert importlib.util.find_spec(library) is not None, f"{library} missing: torch's CUDA libraries did not come with the wheels"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), triton {triton.__version__}")
PY
