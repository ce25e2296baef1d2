"""A whole vast.ai fleet on this machine: the vast.ai emulator booting instances of the worker image (each runs the
repo's scripts/onstart.sh, the built swarm-worker and its own SwarmUI emulator, on a volume of its own), a model server
standing in for Hugging Face and Civitai, and `swarmctl serve` keeping the fleet.

The emulated image maps the image's paths onto the repo and the build: /opt/swarm/onstart.sh is scripts/onstart.sh,
/usr/local/bin/swarm-worker the built binary, /opt/swarmui-seed the fake SwarmUI whose launch-linux.sh starts the
SwarmUI emulator, /opt/swarm/models.json a manifest of the image's models served from this machine.
"""

import hashlib
import http.server
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from conftest import free_port, swarmctl_binary, terminate, wait_until

REPO = Path(__file__).resolve().parents[2]
VAST_KEY = "emulated-vast-key"
CIVITAI_TOKEN = "civitai-token-for-the-fleet-test"
HF_TOKEN = "hf-token-for-the-fleet-test"
IMAGE = "ghcr.io/example/swarm-worker:acceptance"


def binary(name):
    return str(Path(swarmctl_binary()).resolve().parent / name)


def fake_model(file, size=4096):
    """Bytes standing in for a model: a GGUF header naming Wan's architecture for .gguf files (ComfyUI-GGUF reads it),
    else a safetensors-like blob."""
    body = (file.encode() * (size // max(1, len(file)) + 1))[:size]
    if not file.endswith(".gguf"):
        return body
    key, value = b"general.architecture", b"wan"
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)
    return header + struct.pack("<Q", len(value)) + value + body


class ModelServer:
    """Serves each model of builder/models.json at /models/<file>; a model whose manifest entry needs a token is refused
    with 401 without the right one, as Civitai refuses it."""

    def __init__(self, directory, seconds_per_file=0.0):
        source = json.loads((REPO / "builder/models.json").read_text())
        self.files, self.tokens, self.requests = {}, {}, []
        self.seconds_per_file = seconds_per_file
        self.port = free_port()
        entries = []
        for entry in source["models"]:
            data = fake_model(entry["file"])
            self.files[entry["file"]] = data
            if entry.get("token_required"):
                self.tokens[entry["file"]] = {"CIVITAI_API_TOKEN": CIVITAI_TOKEN, "HUGGINGFACE_API_TOKEN": HF_TOKEN}[entry["token_env"]]
            entries.append(dict(
                entry, url=f"http://127.0.0.1:{self.port}/models/{urllib.parse.quote(entry['file'])}", size_bytes=len(data), size_exact=True,
                sha256=hashlib.sha256(data).hexdigest()))
        self.manifest = directory / "models.json"
        self.manifest.write_text(json.dumps(dict(source, models=entries)))
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = urllib.parse.unquote(self.path.split("?")[0].removeprefix("/models/"))
                server.requests.append((name, self.headers.get("Authorization")))
                data = server.files.get(name)
                if data is None:
                    return self.send_error(404)
                wanted = server.tokens.get(name)
                if wanted and self.headers.get("Authorization") != f"Bearer {wanted}":
                    return self.send_error(401, "The creator of this asset requires you to be logged in to download it")
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # Trickled in four pieces when asked, so that a boot's DOWNLOADING stage lasts long enough to be seen.
                piece = len(data) // 4 + 1
                for start in range(0, len(data), piece):
                    self.wfile.write(data[start:start + piece])
                    self.wfile.flush()
                    time.sleep(server.seconds_per_file / 4)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def emulated_image(manifest, step_ms=40):
    env = {
        "VOLUME_PATH": "/workspace", "SWARMUI_HOST": "127.0.0.1", "WORKER_HEALTH_HOST": "127.0.0.1",
        "SWARM_MODELS_FILE": str(manifest), "SWARM_PRESETS_FILE": str(REPO / "builder/presets.json"),
        "SWARMUI_SEED": str(REPO / "tests/Fixtures/fake-swarmui"),
        "SWARMUI_EMULATOR_BIN": binary("swarmui-emulator"), "SWARMUI_EMULATOR_ARGS": f"--step-ms {step_ms}",
        # The worker starts SwarmUI with an allow-listed environment: the fake launch-linux.sh needs these two.
        "SWARMUI_PASS_ENV": "SWARMUI_EMULATOR_BIN,SWARMUI_EMULATOR_ARGS",
        "RUNPOD_PING_INTERVAL": "1000", "LOG_LEVEL": "info",
    }
    return {
        "entrypoint": [], "cmd": ["/usr/local/bin/swarm-worker"], "env": env,
        "paths": {"/opt/swarm/onstart.sh": str(REPO / "scripts/onstart.sh"), "/usr/local/bin/swarm-worker": binary("swarm-worker")},
        "port_variables": {"WORKER_HEALTH_PORT": 18080, "SWARMUI_PORT": 7801},
        "env_file": {"file_variable": "SWARM_IMAGE_ENV", "names": sorted(env) + ["WORKER_HEALTH_PORT", "SWARMUI_PORT"]},
    }


class VastEmulator:
    """The vastai-emulator process with the worker image; `api(...)` calls vast's REST API, `control(...)` steers."""

    def __init__(self, directory, manifest, loading_ms=1500, extra_args=()):
        images = directory / "images.json"
        images.write_text(json.dumps({IMAGE: emulated_image(manifest)}))
        self.instances_dir = directory / "instances"
        self.log_path = directory / "vast.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [binary("vastai-emulator"), "--port", "0", "--api-key", VAST_KEY, "--null-ms", "300", "--created-ms", "300",
             "--loading-ms", str(loading_ms), "--reboot-ms", "500", "--log-delay-ms", "100",
             "--images", str(images), "--instances-dir", str(self.instances_dir), *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: "listening on" in self.log_path.read_text(), 60, "the vast.ai emulator")
        self.base = re.search(r"listening on (\S+)", self.log_path.read_text()).group(1)

    def api(self, method, path, body=None):
        request = urllib.request.Request(
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {VAST_KEY}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def control(self, route, body=None):
        request = urllib.request.Request(self.base + "/emulator/" + route, method="POST" if body is not None else "GET",
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def live(self):
        return [i for i in self.control("state")["instances"] if (i.get("label") or "").startswith("swarm-")]

    def creates(self):
        return self.control("state").get("creates", 0)

    def stop(self):
        # Its instances' processes end with it; a hung emulator is killed with its whole group.
        terminate(self.process, timeout=20, kill=lambda: os.killpg(self.process.pid, signal.SIGKILL))
        self._log.close()


def worker_processes(instances_dir):
    """PIDs of swarm-worker or SwarmUI emulator processes whose volume is under `instances_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(instances_dir).encode() in environ + cmdline and (b"swarm-worker" in cmdline or b"swarmui-emulator" in cmdline):
            found.append(int(entry.name))
    return found


class FleetServe:
    """`swarmctl serve` with the fleet on, reachable by its instances at --public-url (this machine's loopback)."""

    def __init__(self, data_dir, vast, port=None, extra_args=(), env=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.vast = vast
        self.log_path = data_dir / f"serve-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        environment = dict(
            os.environ, VAST_API_KEY=VAST_KEY, VAST_API_URL=vast.base, SWARM_API_KEYS="", SWARM_WORKER_KEYS="",
            SWARM_FLEET_SIZE="1", CIVITAI_API_TOKEN=CIVITAI_TOKEN, HUGGINGFACE_API_TOKEN=HF_TOKEN)
        environment.update(env or {})
        self.process = subprocess.Popen(
            [swarmctl_binary(), "serve", "--port", str(self.port), "--data-dir", str(data_dir), "--image", IMAGE,
             "--public-url", self.base, "--fleet-interval", "0.5", "--reboot-grace", "5",
             "--heartbeat-timeout", "20", "--lease-timeout", "10", *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=environment)
        wait_until(self._answers, 60, "swarmctl serve to answer")

    def _answers(self):
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=1):
                return True
        except OSError:
            assert self.process.poll() is None, self.log_path.read_text()
            return False

    def swarmctl(self, *args, check=True, timeout=120):
        env = dict(os.environ, VAST_API_KEY=VAST_KEY, VAST_API_URL=self.vast.base)
        done = subprocess.run([swarmctl_binary(), *args, "--data-dir", str(self.data_dir)], env=env, capture_output=True,
                              text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"swarmctl {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    def status(self):
        return json.loads(self.swarmctl("instance", "status", "--json").stdout)

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=20)
        self._log.close()

    def stop(self):
        terminate(self.process, timeout=30)
        self._log.close()


class Fleet:
    """Model server, vast emulator and serve together, stopped together: `with Fleet(tmp_path) as fleet: ...`."""

    def __init__(self, directory, seconds_per_file=0.0, serve_args=(), serve_env=None):
        self.directory = directory
        self.models = ModelServer(directory, seconds_per_file=seconds_per_file)
        self.vast = VastEmulator(directory, self.models.manifest)
        self.serve = FleetServe(directory, self.vast, extra_args=serve_args, env=serve_env)

    def restart_serve(self):
        """A new serve on the same port, data directory and flags (the instances reach it at the same URL)."""
        self.serve = FleetServe(self.directory, self.vast, port=self.serve.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.serve.stop()
        self.vast.stop()
        self.models.stop()
