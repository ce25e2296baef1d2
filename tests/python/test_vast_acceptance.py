"""The PRD's acceptance path on vast.ai, end to end, with the unmodified runpod SDK as the client:

bulk jobs → one persistent instance that really boots the worker (the emulated vast runs what the create request
asks for: the image's on-start script, the built swarm-worker, its SwarmUI) → serve killed with -9 mid-batch and
restarted (nothing lost, the instance adopted) → every video downloads with its sha256 → the instance's machine dies
→ the next job gets a new instance on another machine and completes → `instance down` leaves nothing running.

Needs SWARMCTL_BIN (scripts/test-python.sh); the other binaries are taken from its directory.
"""

import base64
import hashlib
import os
import struct
import subprocess
import time
import urllib.request
import zlib

import runpod
from conftest import swarmctl_binary, wait_until
from vast_fleet import VAST_KEY, Fleet, worker_processes

JOBS = 20


def start_frame():
    width = height = 32
    raw = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 8 % 256, y * 8 % 256, 128)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode()


def wan_job(number):
    return {"preset": "wan22-i2v-lightx2v", "prompt": f"shot {number}: the camera slowly pans", "init_image": start_frame(),
            "video": {"frames": 17}}


def endpoint(serve):
    runpod.api_key = "no-client-keys-on-loopback"
    runpod.endpoint_url_base = f"{serve.base}/v2"
    return runpod.Endpoint("swarmui")


def timed(marks, name, since):
    marks[name] = round(time.monotonic() - since, 1)
    print(f"acceptance: {name} after {marks[name]} s", flush=True)


def test_bulk_jobs_on_one_instance_survive_a_serve_kill_and_a_dead_machine(tmp_path):
    with Fleet(tmp_path, seconds_per_file=1.2) as fleet:
        vast, serve = fleet.vast, fleet.serve
        marks, start = {}, time.monotonic()
        # 20 image-to-video jobs in bulk, before any instance is up: they wait in the queue.
        jobs = [endpoint(serve).run(wan_job(n)) for n in range(JOBS)]
        timed(marks, "20 jobs submitted", start)

        # One instance; its boot shows in `instance status` stage by stage.
        stages = []
        def ready():
            instances = serve.status()["instances"]
            stage = instances[0].get("stage") if instances else None
            if stage and (not stages or stages[-1] != stage):
                stages.append(stage)
            return stage == "READY"
        wait_until(ready, 120, "the instance's worker READY")
        timed(marks, "first READY", start)
        print(f"acceptance: boot stages seen in instance status: {stages}", flush=True)
        assert stages[-1] == "READY" and "DOWNLOADING" in stages, stages
        assert stages.index("DOWNLOADING") < stages.index("READY")
        assert len(vast.live()) == 1 and vast.creates() == 1
        first = vast.live()[0]
        assert first["container_running"]

        # serve dies with -9 mid-batch; the worker keeps its results until the restarted serve takes them.
        wait_until(lambda: sum(job.status() == "COMPLETED" for job in jobs) >= 3, 120, "the first jobs done")
        done_at_kill = sum(job.status() == "COMPLETED" for job in jobs)
        serve.kill()
        assert done_at_kill < JOBS, "the batch ended before serve was killed: nothing was tested mid-batch"
        timed(marks, "serve killed -9", start)
        time.sleep(2)
        fleet.restart_serve()
        serve = fleet.serve
        timed(marks, "serve restarted", start)

        def all_done():
            statuses = [job.status() for job in jobs]
            assert "FAILED" not in statuses and "CANCELLED" not in statuses, statuses
            return all(status == "COMPLETED" for status in statuses)
        wait_until(all_done, 300, "all 20 jobs COMPLETED")
        timed(marks, "batch of 20 done", start)
        # Adopted, not rented again.
        assert vast.creates() == 1 and [i["id"] for i in vast.live()] == [first["id"]]

        for job in jobs:
            output = job.output()
            files = output["files"]
            assert len(files) == 1 and files[0]["content_type"].startswith("video/"), output
            with urllib.request.urlopen(files[0]["url"], timeout=30) as response:
                data = response.read()
            assert hashlib.sha256(data).hexdigest() == files[0]["sha256"] and len(data) == files[0]["bytes"]

        # The machine dies: its processes with it. The next job gets a new instance on another machine.
        vast.control("fault", {"instance": first["id"], "fault": "offline"})
        died = time.monotonic()
        wait_until(lambda: not worker_processes(vast.instances_dir / str(first["id"])), 10, "the dead machine's processes to end")
        job = endpoint(serve).run(wan_job(JOBS))
        wait_until(lambda: job.status() in ("COMPLETED", "FAILED"), 300, "the job after the machine died")
        assert job.status() == "COMPLETED", job.output()
        marks["replacement to completion"] = round(time.monotonic() - died, 1)
        print(f"acceptance: replacement to completion {marks['replacement to completion']} s", flush=True)
        live = vast.live()
        assert [i["id"] for i in live if i["id"] == first["id"]] == [], f"the dead instance is still rented: {live}"
        assert len(live) == 1 and live[0]["machine_id"] != first["machine_id"], f"expected one new instance on another machine: {live}"
        assert vast.creates() == 2, vast.control("state")

        # Down: no instance left, and no worker or SwarmUI process of any instance.
        serve.swarmctl("instance", "down", "--yes", "--settle", "0.5", "--confirm-timeout", "30")
        assert vast.live() == []
        wait_until(lambda: not worker_processes(vast.instances_dir), 20, "every instance's processes to end")
        print(f"acceptance timings (s): {marks}", flush=True)


def test_instance_up_wait_follows_the_boot_to_ready_and_logs_follow(tmp_path):
    with Fleet(tmp_path, serve_args=["--fleet-size", "0"]) as fleet:
        vast, serve = fleet.vast, fleet.serve
        assert vast.live() == []
        up = serve.swarmctl("instance", "up", "1", "--wait", "--interval", "1", "--timeout", "3", timeout=240)
        assert "READY: 1 instance(s) take jobs" in up.stdout, up.stdout
        # A status line while it booted, with the stage and the price, and the SSH tunnel to SwarmUI once READY.
        assert "$0." in up.stdout and "/h" in up.stdout, up.stdout
        assert "SwarmUI over SSH: ssh -N -p" in up.stdout and "-L 7801:127.0.0.1:7801" in up.stdout, up.stdout
        assert len(vast.live()) == 1

        # The container's log through vast, as an operator follows it.
        follower = subprocess.Popen(
            [swarmctl_binary(), "instance", "logs", "--follow", "--every", "0.5", "--data-dir", str(tmp_path)],
            env=dict(os.environ, VAST_API_KEY=VAST_KEY, VAST_API_URL=vast.base), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            lines = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any("SwarmUI is ready" in line for line in lines):
                lines.append(follower.stdout.readline())
            assert any("onstart: starting swarm-worker" in line for line in lines), lines
            assert any("SwarmUI is ready" in line for line in lines), lines
        finally:
            follower.kill()
            follower.wait(timeout=10)


def test_a_missing_model_token_holds_the_fleet_with_the_reason_and_leaves_nothing_running(tmp_path):
    # serve has no Civitai token to pass on: the instance's worker cannot download the Civitai model.
    with Fleet(tmp_path, serve_args=["--fleet-size", "0"], serve_env={"CIVITAI_API_TOKEN": ""}) as fleet:
        vast, serve = fleet.vast, fleet.serve
        up = serve.swarmctl("instance", "up", "1", "--wait", "--interval", "1", "--timeout", "3", check=False, timeout=240)
        assert up.returncode == 1, up.stdout + up.stderr
        assert "CIVITAI_API_TOKEN" in up.stderr, up.stderr
        # Destroyed once, not rented again: no create/destroy loop, no instance left billing.
        time.sleep(3)
        assert vast.live() == [] and vast.creates() == 1, vast.control("state")
        status = serve.status()
        assert "CIVITAI_API_TOKEN" in status.get("creation_hold", ""), status
        assert "civitai-token" not in serve.log_path.read_text()
