"""Whether sageattention really runs on this machine's GPU, as one JSON line on stdout.

swarm-worker runs it (with the image's venv python) before SwarmUI starts and caches the answer on the volume per GPU,
driver and image, then enables or drops ComfyUI's --use-sage-attention accordingly. ComfyUI itself would fall back to
PyTorch attention per call, but only after an exception in every attention call (and, when triton cannot find
libcuda.so, a fresh `ldconfig -p` each time: triton caches only a successful lookup).

Checks, in order:
- libcuda.so.1: triton looks in `ldconfig -p`, then LD_LIBRARY_PATH. On some hosts the driver's library is mounted
  but not in the ldconfig cache; the directory found here is passed to ComfyUI as TRITON_LIBCUDA_PATH.
- a CUDA device and its compute capability (sm_80 Ampere ... sm_120 RTX 50);
- sageattn on small fp16 tensors against torch's scaled_dot_product_attention: it must run (triton compiles its
  kernels for this GPU) and agree.

Output: {"sage_attention": bool, "detail": str, "gpu": str|null, "capability": str|null, "libcuda_dir": str|null}
"""

import glob
import json
import os
import subprocess
import sys

LIBCUDA_DIRS = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    "/usr/lib/wsl/lib",
    "/usr/local/cuda/compat",
]


def find_libcuda():
    """The directory holding libcuda.so.1, and whether triton's own lookup (ldconfig) would find it."""
    try:
        listing = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
        for line in listing.splitlines():
            if "libcuda.so.1" in line:
                path = line.split()[-1]
                if os.path.exists(path):
                    return os.path.dirname(path), True
    except (OSError, subprocess.SubprocessError):
        pass
    candidates = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d] + LIBCUDA_DIRS
    for directory in candidates:
        if os.path.exists(os.path.join(directory, "libcuda.so.1")):
            return directory, False
    for path in glob.glob("/usr/lib*/**/libcuda.so.1", recursive=True):
        return os.path.dirname(path), False
    return None, False


def check():
    result = {"sage_attention": False, "detail": "", "gpu": None, "capability": None, "libcuda_dir": None}
    libcuda_dir, in_cache = find_libcuda()
    result["libcuda_dir"] = libcuda_dir
    if libcuda_dir is None:
        result["detail"] = "libcuda.so.1 not found (ldconfig cache, LD_LIBRARY_PATH, usual driver folders): triton cannot launch kernels"
        return result
    if not in_cache:
        # What ComfyUI will get: triton then skips its ldconfig lookup.
        os.environ["TRITON_LIBCUDA_PATH"] = libcuda_dir
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - any import failure means no check
        result["detail"] = f"torch cannot be imported: {error}"
        return result
    if not torch.cuda.is_available():
        result["detail"] = "no CUDA device visible to torch"
        return result
    major, minor = torch.cuda.get_device_capability(0)
    result["gpu"] = torch.cuda.get_device_name(0)
    result["capability"] = f"{major}.{minor}"
    try:
        from sageattention import sageattn
    except Exception as error:  # noqa: BLE001
        result["detail"] = f"sageattention cannot be imported: {error}"
        return result
    try:
        generator = torch.Generator(device="cuda").manual_seed(0)
        # (batch, heads, tokens, head dim) as ComfyUI passes with tensor_layout="HND"; Wan uses head dim 128.
        q, k, v = (torch.randn(1, 4, 256, 128, device="cuda", dtype=torch.float16, generator=generator) for _ in range(3))
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        actual = sageattn(q, k, v, tensor_layout="HND", is_causal=False)
        torch.cuda.synchronize()
        error = (actual.float() - expected.float()).abs().max().item()
    except Exception as error:  # noqa: BLE001 - triton compile or launch errors of any kind
        result["detail"] = f"sageattn failed on {result['gpu']} (sm_{major}{minor}): {type(error).__name__}: {error}"
        return result
    # sageattention quantises Q and K to int8: small differences are expected, a wrong kernel is far off.
    if not error < 0.05:
        result["detail"] = f"sageattn disagrees with PyTorch attention on {result['gpu']} (max error {error:.4f})"
        return result
    result["sage_attention"] = True
    result["detail"] = f"sageattn runs on {result['gpu']} (sm_{major}{minor}), max error {error:.4f} against PyTorch"
    return result


if __name__ == "__main__":
    print(json.dumps(check()))
    sys.stdout.flush()
