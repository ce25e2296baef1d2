"""swarmctl's own commands against a running `swarmctl serve`: keys, submit (one, batch, --wait), status, jobs, cancel.

Needs SWARMCTL_BIN, the path of a built swarmctl (scripts/test-python.sh sets it up).
"""

import json
import os
import subprocess
import threading
import urllib.request

import pytest
from conftest import Serve, swarmctl_binary


def swarmctl(*args, env=None, check=True):
    result = subprocess.run(
        [swarmctl_binary(), *args], capture_output=True, text=True, timeout=120, env=dict(os.environ, **(env or {}))
    )
    if check:
        assert result.returncode == 0, f"swarmctl {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server whose keys were made with `swarmctl keys create` (none from the environment)."""
    data_dir = tmp_path_factory.mktemp("cli-data")
    client_key = swarmctl("keys", "create", "--scope", "client", "--label", "cli tests", "--data-dir", str(data_dir)).stdout.strip()
    worker_key = swarmctl("keys", "create", "--scope", "worker", "--data-dir", str(data_dir)).stdout.strip()
    serve = Serve(data_dir, ["--endpoint", "cli"], env={"SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": ""}, key=client_key)
    yield {"serve": serve, "data_dir": data_dir, "client": client_key, "worker": worker_key}
    serve.stop()


def client_env(served, key=None):
    return {"SWARM_URL": served["serve"].base, "SWARM_API_KEY": key or served["client"]}


def test_keys_are_listed_without_the_keys_themselves(served):
    listing = swarmctl("keys", "list", "--data-dir", str(served["data_dir"])).stdout
    assert "client" in listing and "worker" in listing and "cli tests" in listing
    assert served["client"] not in listing and served["worker"] not in listing


def test_submit_status_jobs_cancel(served):
    env = client_env(served)
    job_id = swarmctl("submit", "--endpoint", "cli", "--prompt", "a red fox", env=env).stdout.strip()
    status = json.loads(swarmctl("status", "--endpoint", "cli", job_id, env=env).stdout)
    assert status == {"id": job_id, "status": "IN_QUEUE"}
    assert job_id in swarmctl("jobs", "--endpoint", "cli", "--status", "IN_QUEUE", env=env).stdout
    cancelled = json.loads(swarmctl("cancel", "--endpoint", "cli", job_id, env=env).stdout)
    assert cancelled == {"id": job_id, "status": "CANCELLED"}


def test_batch_from_csv_in_chunks_with_progress(served, tmp_path):
    rows = ["prompt,steps,seed"] + [f"\"fox number {n}, running\",20,{n}" for n in range(2500)]
    batch = tmp_path / "jobs.csv"
    batch.write_text("\n".join(rows) + "\n")
    result = swarmctl("submit", "--endpoint", "cli", "--batch", str(batch), "--chunk-size", "1000", env=client_env(served))
    ids = result.stdout.split()
    assert len(ids) == 2500 and len(set(ids)) == 2500
    assert "2500/2500" in result.stderr
    # The first row became the first job, with typed values.
    request = urllib.request.Request(
        f"{served['serve'].base}/v2/cli/job-take/cli-worker?gpu=SIM", headers={"Authorization": served["worker"]}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        job = json.loads(response.read())
    assert job["id"] == ids[0]
    assert job["input"] == {"prompt": "fox number 0, running", "steps": 20, "seed": 0}
    purge = urllib.request.Request(
        f"{served['serve'].base}/v2/cli/purge-queue", headers={"Authorization": f"Bearer {served['client']}"}, method="POST"
    )
    urllib.request.urlopen(purge, timeout=10).close()


def test_submit_wait_prints_the_result(served):
    """A bare-HTTP worker completes the job while `submit --wait` follows it."""
    base = served["serve"].base

    def work():
        request = urllib.request.Request(f"{base}/v2/swarmui/job-take/http-worker?gpu=SIM", headers={"Authorization": served["worker"]})
        with urllib.request.urlopen(request, timeout=40) as response:
            job = json.loads(response.read())
        done = urllib.request.Request(
            f"{base}/v2/swarmui/job-done/http-worker/{job['id']}?gpu=SIM&isStream=false",
            data=json.dumps({"output": {"images": ["cat.png"]}}).encode(),
            headers={"Authorization": served["worker"], "Content-Type": "application/x-www-form-urlencoded"}, method="POST",
        )
        urllib.request.urlopen(done, timeout=10).close()

    worker = threading.Thread(target=work)
    worker.start()
    result = swarmctl("submit", "--input", '{"prompt": "a cat"}', "--wait", env=client_env(served))
    worker.join()
    final = json.loads(result.stdout)
    assert final["status"] == "COMPLETED"
    assert final["output"] == {"images": ["cat.png"]}


def test_worker_key_cannot_submit(served):
    result = swarmctl("submit", "--prompt", "x", env=client_env(served, key=served["worker"]), check=False)
    assert result.returncode != 0
    assert "401" in result.stderr


def test_bad_batch_file_names_the_line(served, tmp_path):
    batch = tmp_path / "bad.jsonl"
    batch.write_text('{"prompt": "ok"}\nnot json\n')
    result = swarmctl("submit", "--batch", str(batch), env=client_env(served), check=False)
    assert result.returncode != 0
    assert "line 2" in result.stderr


def test_serve_refuses_a_public_address_without_keys(tmp_path):
    result = subprocess.run(
        [swarmctl_binary(), "serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, SWARM_API_KEYS="", SWARM_WORKER_KEYS=""),
    )
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without client API keys" in result.stderr + result.stdout
