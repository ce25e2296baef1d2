"""Faults, with the real runpod SDK: a worker killed mid-job, and the control plane killed and restarted.

Needs SWARMCTL_BIN, the path of a built swarmctl (scripts/test-python.sh sets it up).
"""

import json
import os
import urllib.request
import uuid

import pytest
import runpod
from conftest import SDKWorker, Serve, wait_until

CLIENT_KEY = "client-key-for-fault-tests"
WORKER_KEY = "worker-key-for-fault-tests"
KEYS = {"SWARM_API_KEYS": CLIENT_KEY, "SWARM_WORKER_KEYS": WORKER_KEY}


def endpoint(serve, name="swarmui"):
    runpod.api_key = CLIENT_KEY
    runpod.endpoint_url_base = f"{serve.base}/v2"
    return runpod.Endpoint(name)


def test_a_worker_killed_mid_job_loses_its_lease_and_another_finishes_the_job(tmp_path):
    serve = Serve(_dir(tmp_path, "data"), ["--lease-timeout", "5"], env=KEYS, key=CLIENT_KEY)
    doomed = survivor = None
    try:
        swarm = endpoint(serve)
        doomed = SDKWorker(serve.base, "swarmui", "doomed", WORKER_KEY, _dir(tmp_path, "doomed"), WORKER_HANGS="1")
        job = swarm.run({"slow": True, "prompt": "x"})
        wait_until(lambda: _status(swarm, job.job_id).get("workerId") == "doomed", 60, "the first worker to take the job")
        doomed.kill()

        survivor = SDKWorker(serve.base, "swarmui", "survivor", WORKER_KEY, _dir(tmp_path, "survivor"))
        output = job.output(timeout=90)
        assert output["worker"] == "survivor"
        status = _status(swarm, job.job_id)
        assert status["status"] == "COMPLETED"
        assert status["workerId"] == "survivor"
        assert status["retries"] == 1
    finally:
        for worker in (doomed, survivor):
            if worker and worker.process.poll() is None:
                worker.stop()
        serve.stop()


def storages():
    """SQLite always; PostgreSQL too when SWARM_TEST_DATABASE_URL names a server, in a fresh schema per run."""
    yield pytest.param([], id="sqlite")
    url = os.environ.get("SWARM_TEST_DATABASE_URL")
    if url:
        separator = "&" if "?" in url else "?"
        yield pytest.param(["--database", f"{url}{separator}schema=cp_restart_{uuid.uuid4().hex[:8]}"], id="postgres")


@pytest.mark.parametrize("storage", list(storages()))
def test_the_control_plane_killed_and_restarted_loses_no_accepted_job(tmp_path, storage):
    data = _dir(tmp_path, "data")
    serve = Serve(data, storage, env=KEYS, key=CLIENT_KEY)
    swarm = endpoint(serve)
    single = [swarm.run({"n": index}).job_id for index in range(20)]
    batch = _run_batch(serve, [{"input": {"n": index}} for index in range(500)])
    serve.process.kill()  # SIGKILL: no shutdown, no flush
    serve.process.wait(timeout=10)
    serve.stop()

    restarted = Serve(data, storage, env=KEYS, key=CLIENT_KEY)
    try:
        swarm = endpoint(restarted)
        for job_id in single + batch[:50] + batch[-50:]:
            assert _status(swarm, job_id)["status"] == "IN_QUEUE"
        assert swarm.health()["jobs"]["inQueue"] == 520
        # And the queue still works (emptied first: one SDK worker would take minutes for 520 jobs).
        assert swarm.purge_queue()["removed"] == 520
        worker = SDKWorker(restarted.base, "swarmui", "after-restart", WORKER_KEY, _dir(tmp_path, "worker"))
        try:
            assert runpod.Endpoint("swarmui").run_sync({"after": "restart"}, timeout=60)["worker"] == "after-restart"
        finally:
            worker.stop()
    finally:
        restarted.stop()


def _dir(parent, name):
    path = parent / name
    path.mkdir(exist_ok=True)
    return path


def _status(swarm, job_id):
    return swarm.rp_client.get(f"{swarm.endpoint_id}/status/{job_id}")


def _run_batch(serve, jobs):
    request = urllib.request.Request(
        f"{serve.base}/v2/swarmui/run-batch", data=json.dumps({"jobs": jobs}).encode(),
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["ids"]
