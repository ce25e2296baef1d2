import datetime
import re

import pytest

import fds


@pytest.fixture(scope="module")
def settings(repo):
    return fds.parse((repo / "builder" / "Settings.fds").read_text())


@pytest.fixture(scope="module")
def backends(repo):
    return fds.parse((repo / "builder" / "Backends.fds").read_text())


def test_parser_follows_fds_rules():
    parsed = fds.parse("# c\na: 1\nb:\n    c: x y\n    d:\n\t\te: 2\nl:\n- one\n- two\nbin= aGk=\n")
    assert parsed == {"a": "1", "b": {"c": "x y", "d": {"e": "2"}}, "l": ["one", "two"], "bin": b"hi"}
    with pytest.raises(fds.FDSError, match="spacing grew"):
        fds.parse("a: 1\n    b: 2\n")
    with pytest.raises(fds.FDSError, match="list without a key"):
        fds.parse("- x\n")
    with pytest.raises(fds.FDSError, match="unknown purpose"):
        fds.parse("just words\n")
    with pytest.raises(fds.FDSError, match="spacing grew"):
        fds.parse("a:\n        b: 1\n    c: 2\n")


def test_settings_skip_the_install_wizard(settings, build_args):
    assert settings["IsInstalled"] == "true"
    # An unparseable InstallDate crashes SwarmUI's startup.
    datetime.date.fromisoformat(settings["InstallDate"])
    assert settings["InstallVersion"] == build_args["SWARMUI_VERSION"]
    assert settings["LaunchMode"] == "none"


def test_settings_for_a_headless_container(settings):
    assert settings["Network"]["PortCanChange"] == "false"
    assert settings["Network"]["Port"] == "7801"
    assert settings["Maintenance"] == {"CheckForUpdates": "false", "AutoPullDevUpdates": "false"}
    assert settings["Metadata"]["EditMetadataWriteJSON"] == "true"
    # Relative paths resolve inside the SwarmUI root, which the worker keeps on the volume.
    assert not settings["Paths"]["ModelRoot"].startswith("/")
    assert not settings["Paths"]["OutputPath"].startswith("/")


def test_backend_is_the_baked_comfyui(backends, repo):
    assert list(backends) == ["0"]
    backend = backends["0"]
    assert backend["type"] == "comfyui_selfstart"
    assert backend["enabled"] == "true"
    config = backend["settings"]
    assert config["StartScript"] == "dlbackend/ComfyUI/main.py"
    assert "dlbackend/ComfyUI" in (repo / "builder" / "install-comfyui.sh").read_text()
    # Nothing fetched at start: no frontend download, no git pulls.
    assert config["FrontendVersion"] == "None"
    assert config["AutoUpdate"] == "false"
    assert config["UpdateManagedNodes"] == "false"
    assert config["AutoRestart"] == "true"


def test_backend_carries_the_gpu_speedups(backends, repo, dockerfile):
    # sageattention is installed in the image (requirements.txt) and enabled here; swarm-worker drops the flag where
    # its GPU check (gpu-check.py, copied into the image) fails: docs/performance.md.
    args = backends["0"]["settings"]["ExtraArgs"].split()
    assert "--use-sage-attention" in args
    assert re.search(r"^sageattention==", (repo / "builder" / "requirements.txt").read_text(), re.M)
    copies = [rest.split() for keyword, rest in dockerfile if keyword == "COPY"]
    assert ["builder/gpu-check.py", "/opt/swarm/gpu-check.py"] in copies
    # SwarmUI adds these itself on RTX 30/40/50 unless told not to; nothing here may turn its internal args off.
    assert backends["0"]["settings"].get("DisableInternalArgs", "false") == "false"
    assert "--use-sage-attention" in (repo / "Sources" / "Worker" / "ComfyUISpeedups.swift").read_text()
    assert "/opt/swarm/gpu-check.py" in (repo / "Sources" / "Worker" / "WorkerConfiguration.swift").read_text()
