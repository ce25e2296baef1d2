"""builder/install-swarmui.sh and install-comfyui.sh against local git repositories and fake
dotnet/pip, so their logic runs here without the network, .NET or a GPU."""

import datetime
import os
import socket
import subprocess
import sys
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


def commit_at(path, when, message):
    """Commits the tree's current state with author and committer date `when` (ISO 8601)."""
    env = dict(os.environ, **GIT_ENV, GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    subprocess.run(["git", "add", "."], cwd=path, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", message, "--allow-empty"], cwd=path, env=env, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True).stdout.strip()


def swarm_seed_and_venv(tmp_path, repo, swarmui_repo, tool_env):
    url, head = swarmui_repo
    seed = tmp_path / "seed"
    assert run(repo / "builder" / "install-swarmui.sh", [seed, url, head, "0.9.8.2", repo / "builder"], tool_env).returncode == 0
    venv = tmp_path / "venv"
    fake_tool(venv / "bin", "pip", "true\n")
    gguf_url, gguf_head = make_repo(tmp_path / "ComfyUI-GGUF", {"nodes.py": "", "requirements.txt": "gguf\n"})
    return seed, venv, gguf_url, gguf_head


def swarm_time(seed):
    out = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=seed, capture_output=True, text=True, check=True).stdout
    return int(out)


def iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def test_install_comfyui_refuses_a_comfyui_from_another_month(tmp_path, repo, swarmui_repo, tool_env):
    seed, venv, gguf_url, gguf_head = swarm_seed_and_venv(tmp_path, repo, swarmui_repo, tool_env)
    comfy = tmp_path / "ComfyUI"
    comfy_url, _ = make_repo(comfy, {"main.py": "", "requirements.txt": "torch\n"})
    old = commit_at(comfy, iso(swarm_time(seed) - 30 * 86400), "a month before SwarmUI")
    result = run(repo / "builder" / "install-comfyui.sh",
                 [seed, venv, repo / "builder/requirements.txt", comfy_url, old, gguf_url, gguf_head, tmp_path / "freeze.txt"], tool_env)
    assert result.returncode != 0
    assert "more than 7 days from SwarmUI's" in result.stderr


def test_install_comfyui_resolves_swarmuis_week_and_records_the_dates(tmp_path, repo, swarmui_repo, tool_env):
    seed, venv, gguf_url, gguf_head = swarm_seed_and_venv(tmp_path, repo, swarmui_repo, tool_env)
    comfy = tmp_path / "ComfyUI"
    comfy_url, _ = make_repo(comfy, {"main.py": "", "requirements.txt": "torch\n"})
    subprocess.run(["git", "branch", "-M", "master"], cwd=comfy, check=True)
    at = swarm_time(seed)
    (comfy / "main.py").write_text("# two days before\n")
    before = commit_at(comfy, iso(at - 2 * 86400), "two days before SwarmUI")
    (comfy / "main.py").write_text("# three days after\n")
    commit_at(comfy, iso(at + 3 * 86400), "three days after SwarmUI")
    freeze = tmp_path / "out" / "pip-freeze.txt"
    freeze.parent.mkdir()
    result = run(repo / "builder" / "install-comfyui.sh",
                 [seed, venv, repo / "builder/requirements.txt", comfy_url, "swarmui-week", gguf_url, gguf_head, freeze], tool_env)
    assert result.returncode == 0, result.stderr
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=seed / "dlbackend/ComfyUI", capture_output=True, text=True).stdout.strip()
    assert head == before, "the last ComfyUI commit at or before SwarmUI's, not a later one"
    versions = dict(line.split(" ", 1) for line in (freeze.parent / "versions.txt").read_text().splitlines())
    assert versions["comfyui"].startswith(before + " ")
    assert set(versions) == {"swarmui", "comfyui", "comfyui-gguf"}


def test_install_swarmui_builds_for_linux_x64_only(tmp_path, repo, swarmui_repo, tool_env):
    url, head = swarmui_repo
    calls = tmp_path / "dotnet-calls"
    fake_tool(tmp_path / "bin", "dotnet", f"""\
        echo "$*" >> {calls}
        out=""
        while (( $# )); do if [[ "$1" == -o ]]; then out=$2; fi; shift; done
        mkdir -p "$out" && touch "$out/SwarmUI.dll"
    """)
    result = run(repo / "builder" / "install-swarmui.sh", [tmp_path / "seed", url, head, "0.9.8.2", repo / "builder"], tool_env)
    assert result.returncode == 0, result.stderr
    build = calls.read_text()
    assert "-r linux-x64" in build and "--self-contained false" in build


FAKE_COMFY = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
open(sys.argv[0] + ".args", "w").write(" ".join(args))
fast = args[args.index("--fast") + 1:] if "--fast" in args else []
if "cublas_ops" in fast and os_env_rejects:
    print("main.py: error: argument --fast: invalid choice: 'cublas_ops'", file=sys.stderr)
    sys.exit(2)
nodes = {name: {} for name in NODES}
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(nodes).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(args[args.index("--port") + 1])), Handler).serve_forever()
'''


def fake_comfy_seed(tmp_path, nodes, rejects_cublas_ops=False, requirements="comfyui-frontend-package==1.47.12\ntorch\npydantic~=2.0\n"):
    """A seed whose ComfyUI main.py serves /object_info with `nodes`, run by a venv python that is the host's."""
    seed = tmp_path / "seed"
    comfy = seed / "dlbackend/ComfyUI"
    comfy.mkdir(parents=True)
    (comfy / "requirements.txt").write_text(requirements)
    (comfy / "main.py").write_text(f"os_env_rejects = {rejects_cublas_ops}\nNODES = {nodes!r}\n" + FAKE_COMFY)
    fake_tool(comfy / "venv/bin", "python", f'exec {sys.executable} "$@"\n')
    return seed, comfy / "main.py.args"


def test_check_comfyui_passes_when_the_nodes_register_with_swarmuis_arguments(tmp_path, repo):
    nodes = ["SwarmKSampler", "SwarmSaveAnimationWS", "SwarmLoadImageB64", "SwarmSaveImageWS", "UnetLoaderGGUF", "WanImageToVideo", "KSampler"]
    seed, args_file = fake_comfy_seed(tmp_path, nodes)
    result = run(repo / "builder/check-comfyui.sh", [seed, 30, free_port()], os.environ)
    assert result.returncode == 0, result.stderr
    args = args_file.read_text()
    assert "--fast fp16_accumulation cublas_ops" in args and "--extra-model-paths-config" in args and "--cpu" in args


def test_check_comfyui_fails_naming_a_missing_node(tmp_path, repo):
    seed, _ = fake_comfy_seed(tmp_path, ["SwarmKSampler", "SwarmSaveAnimationWS", "SwarmLoadImageB64", "SwarmSaveImageWS", "WanImageToVideo"])
    result = run(repo / "builder/check-comfyui.sh", [seed, 30, free_port()], os.environ)
    assert result.returncode != 0
    assert "node types not registered: UnetLoaderGGUF" in result.stderr


def test_check_comfyui_fails_when_comfyui_rejects_swarmuis_arguments(tmp_path, repo):
    seed, _ = fake_comfy_seed(tmp_path, [], rejects_cublas_ops=True)
    result = run(repo / "builder/check-comfyui.sh", [seed, 30, free_port()], os.environ)
    assert result.returncode != 0
    assert "exited during start" in result.stderr and "invalid choice: 'cublas_ops'" in result.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_comfyui_fails_on_requirements_swarmui_cannot_parse(tmp_path, repo):
    seed, _ = fake_comfy_seed(tmp_path, [], requirements="torch\nav>=17\n")
    result = run(repo / "builder/check-comfyui.sh", [seed, 30, free_port()], os.environ)
    assert result.returncode != 0
    assert "cannot read '17'" in result.stderr
