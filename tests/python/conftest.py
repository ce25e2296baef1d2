"""Helpers shared by the tests that drive a built swarmctl (SWARMCTL_BIN)."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def swarmctl_binary():
    binary = os.environ.get("SWARMCTL_BIN")
    if not binary:
        pytest.fail("SWARMCTL_BIN is not set; run scripts/test-python.sh")
    return binary


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Serve:
    """`swarmctl serve` on a free loopback port, its output in <data_dir>/serve.log."""

    def __init__(self, data_dir, args=(), env=None, key=None, port=None, ca=None):
        """`ca`: the serve runs TLS (its args carry --tls-cert/--tls-key) with a certificate this CA file signed."""
        self.port = port or free_port()
        self.base = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self._ssl = ssl.create_default_context(cafile=str(ca)) if ca else None
        self.log_path = data_dir / "serve.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [swarmctl_binary(), "serve", "--port", str(self.port), "--data-dir", str(data_dir), *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})),
        )
        wait_until(lambda: self._answers(key), 60, "swarmctl serve to answer")

    def _answers(self, key):
        headers = {"Authorization": key} if key else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{self.base}/v2/swarmui/health", headers=headers), timeout=1, context=self._ssl):
                return True
        except (urllib.error.URLError, ConnectionError):
            assert self.process.poll() is None, self.log_path.read_text()
            return False

    def stop(self):
        terminate(self.process, timeout=20)
        self._log.close()


def terminate(process, timeout, kill=None):
    """SIGTERM, then `kill` (default: SIGKILL to the process) if it has not ended within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        (kill or process.kill)()
        process.wait(timeout=10)


def worker_env(server_base, endpoint, worker_id, worker_key, workdir, **extra):
    """The environment RunPod injects into a serverless worker, pointed at swarmctl (runpod.md §1.2)."""
    base = f"{server_base}/v2/{endpoint}"
    # The query string already holds `?`: the SDK appends its own parameters with `&`.
    return dict(
        os.environ,
        RUNPOD_WEBHOOK_GET_JOB=f"{base}/job-take/$ID?gpu=SIM",
        RUNPOD_WEBHOOK_POST_OUTPUT=f"{base}/job-done/$RUNPOD_POD_ID/$ID?gpu=SIM",
        RUNPOD_WEBHOOK_POST_STREAM=f"{base}/job-stream/$RUNPOD_POD_ID/$ID?gpu=SIM",
        RUNPOD_WEBHOOK_PING=f"{base}/ping/$RUNPOD_POD_ID?gpu=SIM",
        RUNPOD_POD_ID=worker_id,
        RUNPOD_AI_API_KEY=worker_key,
        RUNPOD_PING_INTERVAL="1000",
        RUNPOD_SKIP_AUTO_SYSTEM_CHECKS="true",
        HOME=str(workdir),
        **extra,
    )


class SDKWorker:
    """The runpod SDK's serverless loop running tests/python/worker_handler.py, in a process group of its own (the SDK
    pings from a child process, so killing the worker means killing the group)."""

    def __init__(self, server_base, endpoint, worker_id, worker_key, workdir, args=(), **env):
        self._log = open(workdir / "worker.log", "w")
        self.log_path = workdir / "worker.log"
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parent / "worker_handler.py"), *args],
            cwd=workdir, env=worker_env(server_base, endpoint, worker_id, worker_key, workdir, **env),
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self):
        """SIGKILL to the whole group: the machine died."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
