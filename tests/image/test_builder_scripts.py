"""builder/install-swarmui.sh and install-comfyui.sh against local git repositories and fake
dotnet/pip, so their logic runs here without the network, .NET or a GPU."""

import os
import subprocess
import textwrap

import pytest

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def make_repo(path, files):
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    env = dict(os.environ, **GIT_ENV)
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "fixture"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True).stdout.strip()
    return f"file://{path}", head


def fake_tool(bin_dir, name, body):
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + textwrap.dedent(body))
    tool.chmod(0o755)


def run(script, args, env):
    return subprocess.run(["bash", str(script), *map(str, args)], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def swarmui_repo(tmp_path):
    return make_repo(tmp_path / "SwarmUI", {
        "src/SwarmUI.csproj": "<Project><PropertyGroup><Version>0.9.8.2</Version></PropertyGroup></Project>\n",
        "launch-linux.sh": "#!/usr/bin/env bash\n",
        "src/BuiltinExtensions/ComfyUIBackend/ExtraNodes/SwarmComfyExtra/requirements.txt": "rembg\n",
    })


@pytest.fixture
def tool_env(tmp_path):
    bin_dir = tmp_path / "bin"
    # Fake dotnet: `dotnet build ... -o DIR` leaves a SwarmUI.dll in DIR, as the real build does.
    fake_tool(bin_dir, "dotnet", """\
        out=""
        while (( $# )); do if [[ "$1" == -o ]]; then out=$2; fi; shift; done
        mkdir -p "$out" && touch "$out/SwarmUI.dll"
        mkdir -p "$HOME/.nuget/packages/some.package"
    """)
    home = tmp_path / "home"
    home.mkdir()
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", HOME=str(home))


def test_install_swarmui_builds_the_seed_and_skips_the_wizard(tmp_path, repo, swarmui_repo, tool_env):
    url, head = swarmui_repo
    seed = tmp_path / "seed"
    result = run(repo / "builder" / "install-swarmui.sh", [seed, url, head, "0.9.8.2", repo / "builder"], tool_env)
    assert result.returncode == 0, result.stderr
    assert (seed / "src/bin/live_release/SwarmUI.dll").is_file()
    # launch-linux.sh rebuilds unless last_build matches HEAD; .git must stay for that check.
    assert (seed / "src/bin/last_build").read_text().strip() == head
    assert (seed / ".git").is_dir()
    assert (seed / "Data/Settings.fds").read_text() == (repo / "builder/Settings.fds").read_text()
    assert (seed / "Data/Backends.fds").read_text() == (repo / "builder/Backends.fds").read_text()
    assert not (tmp_path / "home/.nuget/packages").exists()


def test_install_swarmui_refuses_another_version(tmp_path, repo, swarmui_repo, tool_env):
    url, head = swarmui_repo
    result = run(repo / "builder" / "install-swarmui.sh", [tmp_path / "seed", url, head, "0.9.9", repo / "builder"], tool_env)
    assert result.returncode != 0
    assert "expected '0.9.9'" in result.stderr


def test_install_comfyui_places_comfy_and_gguf_and_installs_in_one_resolution(tmp_path, repo, swarmui_repo, tool_env):
    url, head = swarmui_repo
    seed = tmp_path / "seed"
    assert run(repo / "builder" / "install-swarmui.sh", [seed, url, head, "0.9.8.2", repo / "builder"], tool_env).returncode == 0
    comfy_url, comfy_head = make_repo(tmp_path / "ComfyUI", {"main.py": "", "requirements.txt": "torch\n"})
    gguf_url, gguf_head = make_repo(tmp_path / "ComfyUI-GGUF", {"nodes.py": "", "requirements.txt": "gguf>=0.13.0\n"})
    venv = tmp_path / "venv"
    calls = tmp_path / "pip-calls"
    fake_tool(venv / "bin", "pip", f"""\
        echo "$*" >> {calls}
        if [[ "$1" == freeze ]]; then echo "torch==2.10.0+cu128"; fi
    """)
    freeze = tmp_path / "pip-freeze.txt"
    result = run(repo / "builder" / "install-comfyui.sh",
                 [seed, venv, repo / "builder/requirements.txt", comfy_url, comfy_head, gguf_url, gguf_head, freeze], tool_env)
    assert result.returncode == 0, result.stderr
    comfy = seed / "dlbackend/ComfyUI"
    # Where Backends.fds's StartScript and SwarmUI's DLNodes lookup expect them.
    assert (comfy / "main.py").is_file()
    assert (seed / "src/BuiltinExtensions/ComfyUIBackend/DLNodes/ComfyUI-GGUF/nodes.py").is_file()
    assert os.readlink(comfy / "venv") == str(venv)
    install, check, freeze_call = calls.read_text().splitlines()
    assert install.startswith("install ")
    for requirements in (repo / "builder/requirements.txt", comfy / "requirements.txt",
                         seed / "src/BuiltinExtensions/ComfyUIBackend/DLNodes/ComfyUI-GGUF/requirements.txt",
                         seed / "src/BuiltinExtensions/ComfyUIBackend/ExtraNodes/SwarmComfyExtra/requirements.txt"):
        assert f"-r {requirements}" in install
    assert check == "check"
    assert freeze_call == "freeze --all"
    assert freeze.read_text() == "torch==2.10.0+cu128\n"
