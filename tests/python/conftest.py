"""Helpers shared by the tests that drive a built swarmctl (SWARMCTL_BIN)."""

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

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

    def __init__(self, data_dir, args=(), env=None, key=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
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
            with urllib.request.urlopen(urllib.request.Request(f"{self.base}/v2/swarmui/health", headers=headers), timeout=1):
                return True
        except (urllib.error.URLError, ConnectionError):
            assert self.process.poll() is None, self.log_path.read_text()
            return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
