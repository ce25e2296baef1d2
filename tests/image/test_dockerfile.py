import fnmatch
import json
import os
import re

from conftest import env_assignments


def stages(dockerfile):
    return [rest for keyword, rest in dockerfile if keyword == "FROM"]


def stage_instructions(dockerfile, name):
    result, inside = [], False
    for keyword, rest in dockerfile:
        if keyword == "FROM":
            inside = rest.lower().endswith(f" as {name}")
            continue
        if inside:
            result.append((keyword, rest))
    return result


def test_two_stages_swift_build_then_cuda_runtime(dockerfile, build_args):
    assert stages(dockerfile) == ["${SWIFT_IMAGE} AS build", "${CUDA_IMAGE} AS runtime"]
    assert re.fullmatch(r"swift:6\.\d+(\.\d+)?-noble", build_args["SWIFT_IMAGE"])
    assert build_args["CUDA_IMAGE"].startswith("nvidia/cuda:12.8.")


def test_build_glibc_not_newer_than_runtime(build_args):
    # noble is Ubuntu 24.04 on both sides: the binary's glibc symbols exist at run time.
    assert build_args["SWIFT_IMAGE"].endswith("-noble") and build_args["CUDA_IMAGE"].endswith("ubuntu24.04")


def test_static_release_build_of_the_worker(dockerfile, repo):
    runs = " ".join(rest for keyword, rest in stage_instructions(dockerfile, "build") if keyword == "RUN")
    assert "builder/build-worker.sh" in runs
    copies = [rest for keyword, rest in stage_instructions(dockerfile, "build") if keyword == "COPY"]
    assert "builder/build-worker.sh builder/swarm-worker.order ./builder/" in copies
    script = (repo / "builder/build-worker.sh").read_text()
    assert "-c release --static-swift-stdlib --product swarm-worker" in script
    # The layout flags and the order file they read: without them the idle worker's RSS is half again as large.
    for flag in ("-function-sections", "-use-ld=lld", "--symbol-ordering-file=", "pack-relative-relocs", "--no-export-dynamic"):
        assert flag in script, flag
    order = (repo / "builder/swarm-worker.order").read_text().split()
    assert len(order) > 1000 and any(name.startswith("$s6Worker") for name in order)
    copies = [rest for keyword, rest in stage_instructions(dockerfile, "runtime") if keyword == "COPY"]
    assert "--from=build /out/swarm-worker /usr/local/bin/swarm-worker" in copies


def test_tini_is_pid_1_and_worker_its_child(dockerfile):
    entry = [json.loads(rest) for keyword, rest in dockerfile if keyword == "ENTRYPOINT"]
    cmd = [json.loads(rest) for keyword, rest in dockerfile if keyword == "CMD"]
    assert entry == [["/usr/bin/tini", "--"]]
    assert cmd == [["/usr/local/bin/swarm-worker"]]


def test_healthcheck_on_worker_health(dockerfile):
    checks = [rest for keyword, rest in dockerfile if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "http://127.0.0.1:${WORKER_HEALTH_PORT:-18080}/health" in checks[0]
    assert "--start-period=" in checks[0]


def test_oci_labels(dockerfile):
    labels = {}
    for keyword, rest in dockerfile:
        if keyword == "LABEL":
            labels.update(env_assignments(rest))
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels, key


def test_versions_pinned_by_build_args(build_args):
    assert build_args["SWARMUI_VERSION"] == "0.9.8.2"
    for name in ("SWARMUI_REF", "COMFYUI_GGUF_REF"):
        assert re.fullmatch(r"[0-9a-f]{40}", build_args[name]), f"{name} must be a full commit id"
    # ComfyUI: a commit id, or the last one of SwarmUI's week, resolved and checked by install-comfyui.sh.
    assert re.fullmatch(r"[0-9a-f]{40}|swarmui-week", build_args["COMFYUI_REF"])


def test_cuda_base_without_cudnn(build_args, repo):
    # torch's cu128 wheels bring cuDNN and the CUDA libraries (install-python.sh checks); the base must not repeat them.
    assert re.fullmatch(r"nvidia/cuda:12\.8\.\d+-base-ubuntu24\.04", build_args["CUDA_IMAGE"])
    assert '"nvidia.cudnn"' in (repo / "builder/install-python.sh").read_text()


def test_comfyui_is_started_with_swarmuis_arguments_and_its_nodes_checked_at_build(dockerfile, repo):
    runs = [rest for keyword, rest in stage_instructions(dockerfile, "runtime") if keyword == "RUN"]
    install = next(i for i, run in enumerate(runs) if "install-comfyui.sh" in run)
    check = next(i for i, run in enumerate(runs) if "check-comfyui.sh /opt/swarmui-seed" in run)
    assert check > install, "the check runs on the installed ComfyUI"
    script = (repo / "builder/check-comfyui.sh").read_text()
    for argument in ("--cpu", "--extra-model-paths-config", "--fast fp16_accumulation cublas_ops", "--preview-method latent2rgb"):
        assert argument in script, argument
    for node in ("UnetLoaderGGUF", "SwarmKSampler", "SwarmSaveAnimationWS", "WanImageToVideo"):
        assert node in script, node


def test_no_secrets_in_any_layer(dockerfile, repo):
    secretish = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|AUTHORIZATION", re.IGNORECASE)
    for keyword, rest in dockerfile:
        if keyword == "ENV":
            for name, value in env_assignments(rest).items():
                assert not (secretish.search(name) and value.strip('"')), f"ENV {name} has a value"
        if keyword == "ARG":
            name, _, value = rest.partition("=")
            assert not (secretish.search(name) and value), f"ARG {name} has a default"
    assert not re.search(r"hf_[A-Za-z0-9]{20,}", (repo / "Dockerfile").read_text())


def test_scripts_the_dockerfile_runs_exist_and_are_executable(dockerfile, repo):
    text = " ".join(rest for keyword, rest in dockerfile if keyword in ("RUN", "COPY"))
    for script in set(re.findall(r"builder/[\w-]+\.sh", text)):
        path = repo / script
        assert path.is_file() and os.access(path, os.X_OK), script
    for keyword, rest in dockerfile:
        if keyword == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (repo / source).exists(), f"COPY source {source} is missing"


def test_seed_models_and_presets_paths(dockerfile):
    env = {}
    for keyword, rest in dockerfile:
        if keyword == "ENV":
            env.update(env_assignments(rest))
    assert env["SWARM_MODELS_FILE"] == "/opt/swarm/models.json"
    assert env["SWARM_PRESETS_FILE"] == "/opt/swarm/presets.json"
    # The worker picks the volume: /runpod-volume on RunPod serverless, /workspace elsewhere (and onstart.sh on vast).
    assert "VOLUME_PATH" not in env
    runs = " ".join(rest for keyword, rest in dockerfile if keyword == "RUN")
    assert "/opt/swarmui-seed" in runs


def test_dockerignore_keeps_the_context_small(repo):
    lines = (repo / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*", "the context is a whitelist"
    assert "!.git" not in lines and "!.venv" not in lines


def test_requirements_are_pinned(repo):
    for line in (repo / "builder" / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--"):
            assert line == "--extra-index-url https://download.pytorch.org/whl/cu128"
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line), f"not pinned: {line}"
    text = (repo / "builder" / "requirements.txt").read_text()
    for package in ("torch", "torchvision", "torchaudio"):
        assert re.search(rf"^{package}==[\d.]+\+cu128$", text, re.MULTILINE), f"{package} must be the cu128 build"
    assert re.search(r"^sageattention==", text, re.MULTILINE)


def test_image_defaults_saved_for_onstart(dockerfile):
    # vast may run onstart.sh without the image's ENV; it reads them back from this file.
    runs = [rest for keyword, rest in dockerfile if keyword == "RUN"]
    saver = [r for r in runs if "/opt/swarm/image.env" in r]
    assert saver, "the Dockerfile must save its ENV defaults to /opt/swarm/image.env"
    for name in ("SWARM_MODELS_FILE", "SWARM_PRESETS_FILE", "WORKER_HEALTH_PORT"):
        assert name in saver[0]


def test_build_fails_on_unexpected_shared_libraries(dockerfile):
    runs = " ".join(rest for keyword, rest in stage_instructions(dockerfile, "build") if keyword == "RUN")
    assert "ldd /out/swarm-worker" in runs
    assert "! grep -vE" in runs


def dockerignored(path, patterns):
    """Whether .dockerignore excludes `path` (last matching pattern wins, '!' re-includes)."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        candidates = prefixes if not pattern.lstrip("!").startswith("**/") else \
            ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(candidate, body) for candidate in candidates):
            excluded = not negate
    return excluded


def test_every_copied_file_is_in_the_build_context(dockerfile, repo):
    patterns = [line.strip() for line in (repo / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for keyword, rest in dockerfile:
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            files = [source] if (repo / source).is_file() else \
                [str(p.relative_to(repo)) for p in (repo / source).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            # A folder may leave out sub-folders on purpose (tests/ without tests/python): those are named in
            # .dockerignore below the copied folder; anything else left out is a mistake.
            carved_out = [p.rstrip("/") + "/" for p in patterns if p.startswith(source.rstrip("/") + "/")]
            for name in files:
                if any(name.startswith(prefix) for prefix in carved_out):
                    continue
                assert not dockerignored(name, patterns), f"{name} is copied but .dockerignore leaves it out"
    assert dockerignored(".git/config", patterns) and dockerignored(".build/release/x", patterns)
    assert dockerignored(".venv/bin/python", patterns)
