"""Jobs forwarded to fal.ai (the fal emulator as a process) by `swarmctl serve` as a process: `provider: "fal"`
completes, its video is copied into our storage, and a restart mid-forward still completes the job once."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import Serve, free_port, swarmctl_binary, terminate, wait_until

FAL_KEY = "emulated-fal-key"
INPUT = {
    "provider": "fal", "preset": "wan22-i2v-lightx2v", "prompt": "a cat", "init_image": "https://example.com/cat.png",
    "width": 832, "height": 480, "video": {"frames": 81, "fps": 16},
}


class FalEmulator:
    """`fal-emulator` (built beside swarmctl) on a free port."""

    def __init__(self, workdir, run_ms=500, output_bytes=200_000):
        binary = os.environ.get("FAL_EMULATOR_BIN") or str(Path(swarmctl_binary()).parent / "fal-emulator")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(workdir / "fal-emulator.log", "w")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--key", FAL_KEY, "--queue-ms", "200", "--run-ms", str(run_ms),
             "--output-bytes", str(output_bytes), "--directory", str(workdir / "fal-cdn")],
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 30, "the fal emulator to answer")

    def _answers(self):
        try:
            return bool(self.charges() is not None)
        except OSError:
            assert self.process.poll() is None, "fal-emulator exited"
            return False

    def charges(self):
        with urllib.request.urlopen(f"{self.base}/emulator/charges", timeout=2) as response:
            return json.load(response)

    def video(self, request_id):
        with urllib.request.urlopen(f"{self.base}/cdn/{request_id}.mp4", timeout=10) as response:
            return response.read()

    def stop(self):
        terminate(self.process, timeout=10)
        self._log.close()


@pytest.fixture
def fal(tmp_path):
    emulator = FalEmulator(tmp_path, run_ms=3000)
    yield emulator
    emulator.stop()


def serve_with_fal(data_dir, fal):
    data_dir.mkdir(exist_ok=True)
    return Serve(data_dir, args=["--fal-key-env", "FAL_KEY", "--fal-url", fal.base], env={"FAL_KEY": FAL_KEY})


def call(serve, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{serve.base}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_final(serve, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = call(serve, "GET", f"/v2/swarmui/status/{job_id}")
        if status["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end: {status}")


def check_copied(serve, fal, status):
    assert status["status"] == "COMPLETED", status
    assert status["provider"] == "fal"
    video = status["output"]["files"][0]
    assert video["url"].startswith(serve.base), "the link must be ours, not fal's CDN"
    with urllib.request.urlopen(video["url"], timeout=10) as response:
        ours = response.read()
    assert ours == fal.video(status["falRequestId"])
    assert len(ours) == video["bytes"] == 200_000


def test_a_fal_job_completes_through_fal_and_its_video_is_ours(tmp_path, fal):
    serve = serve_with_fal(tmp_path / "serve", fal)
    try:
        job = call(serve, "POST", "/v2/swarmui/run", {"input": INPUT})
        status = wait_final(serve, job["id"])
        check_copied(serve, fal, status)
        charges = fal.charges()
        assert [c["request_id"] for c in charges["requests"]] == [status["falRequestId"]]
        assert abs(status["falCostUsd"] - charges["total_usd"]) < 1e-9
        # The cost report carries fal.ai's real charge for the job, under provider fal, beside its list price.
        today = time.strftime("%Y-%m-%d", time.gmtime())
        report = call(serve, "GET", f"/v2/swarmui/costs?group=job&from={today}&to={today}")
        [row] = [row for row in report["jobs"] if row["job_id"] == job["id"]]
        assert row["provider"] == "fal"
        assert abs(row["direct_cost_usd"] - charges["total_usd"]) < 1e-6
        assert row["fal_equivalent_usd"] > 0
        days = call(serve, "GET", f"/v2/swarmui/costs?group=day&from={today}&to={today}")
        assert abs(days["days"][0]["spend_by_provider"]["fal"] - charges["total_usd"]) < 1e-6
        assert FAL_KEY not in serve.log_path.read_text()
    finally:
        serve.stop()


def test_a_restart_mid_forward_still_completes_the_job_once(tmp_path, fal):
    data_dir = tmp_path / "serve"
    serve = serve_with_fal(data_dir, fal)
    try:
        job = call(serve, "POST", "/v2/swarmui/run", {"input": INPUT})
        wait_until(lambda: "falRequestId" in call(serve, "GET", f"/v2/swarmui/status/{job['id']}"), 20, "the job to reach fal.ai")
    finally:
        serve.stop()
    serve = serve_with_fal(data_dir, fal)
    try:
        status = wait_final(serve, job["id"])
        check_copied(serve, fal, status)
        assert fal.charges()["submitted"] == 1
    finally:
        serve.stop()


def test_fal_without_a_key_is_refused_listing_the_providers(tmp_path):
    serve = Serve(tmp_path)
    try:
        request = urllib.request.Request(
            f"{serve.base}/v2/swarmui/run", data=json.dumps({"input": INPUT}).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert "auto, vastai" in refused.value.read().decode()
    finally:
        serve.stop()


def test_auto_jobs_spill_over_until_the_budget_is_spent_then_wait_for_a_worker(tmp_path, fal):
    from conftest import SDKWorker

    data_dir = tmp_path / "serve"
    data_dir.mkdir()
    # 81 frames at 480p cost $0.2025: a $0.30 budget pays for one spill-over.
    serve = Serve(
        data_dir, args=["--fal-key-env", "FAL_KEY", "--fal-url", fal.base, "--spill-after", "1s", "--spill-budget-per-day", "0.30"],
        env={"FAL_KEY": FAL_KEY})
    auto = {k: v for k, v in INPUT.items() if k != "provider"}
    worker = None
    try:
        first = call(serve, "POST", "/v2/swarmui/run", {"input": auto})
        status = wait_final(serve, first["id"])
        check_copied(serve, fal, status)

        second = call(serve, "POST", "/v2/swarmui/run", {"input": auto})
        wait_until(lambda: "waits for the fleet" in serve.log_path.read_text(), 15, "the log to say the job waits for the fleet")
        assert call(serve, "GET", f"/v2/swarmui/status/{second['id']}")["status"] == "IN_QUEUE"
        assert fal.charges()["submitted"] == 1

        workdir = tmp_path / "worker"
        workdir.mkdir()
        worker = SDKWorker(serve.base, "swarmui", "w1", "any-worker-key", workdir)
        status = wait_final(serve, second["id"])
        assert status["status"] == "COMPLETED", status
        assert status["provider"] == "vastai"
        assert fal.charges()["submitted"] == 1
    finally:
        if worker:
            worker.stop()
        serve.stop()
