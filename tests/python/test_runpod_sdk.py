"""The unmodified runpod SDK (1.12.0) against `swarmctl serve`: as a client (Endpoint) and as a serverless worker.

Needs SWARMCTL_BIN, the path of a built swarmctl (scripts/test-python.sh sets it up).
"""

import json
import urllib.error
import urllib.request

import pytest
import runpod
from conftest import SDKWorker, Serve

CLIENT_KEY = "client-key-for-sdk-tests"
WORKER_KEY = "worker-key-for-sdk-tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("swarm-data")
    serve = Serve(
        data_dir, ["--endpoint", "gen", "--endpoint", "idle"],
        env={"SWARM_API_KEYS": CLIENT_KEY, "SWARM_WORKER_KEYS": WORKER_KEY}, key=CLIENT_KEY,
    )
    yield {"base": serve.base, "process": serve.process, "log": serve.log_path}
    serve.stop()


@pytest.fixture(scope="module")
def workers(server, tmp_path_factory):
    """A plain worker on `swarmui` and a generator worker on `gen`, both the SDK's own serverless loop."""
    started = [
        SDKWorker(server["base"], endpoint, worker_id, WORKER_KEY, tmp_path_factory.mktemp(worker_id), args)
        for endpoint, worker_id, args in [("swarmui", "py-worker", []), ("gen", "py-gen-worker", ["--generator"])]
    ]
    yield
    for worker in started:
        worker.stop()


def use_server(server, endpoint_id):
    runpod.api_key = CLIENT_KEY
    # The Endpoint constructor reads the base URL, so set it first (runpod.md §2.1).
    runpod.endpoint_url_base = f"{server['base']}/v2"
    return runpod.Endpoint(endpoint_id)


# ---- client API, on the `idle` endpoint that no worker serves, so that jobs stay queued ----


def test_health_has_runpods_shape(server):
    health = use_server(server, "idle").health()
    assert set(health["jobs"]) >= {"completed", "failed", "inProgress", "inQueue", "retried"}
    assert set(health["workers"]) >= {"idle", "running"}


def test_run_status_and_cancel(server):
    idle = use_server(server, "idle")
    job = idle.run({"prompt": "a cat"})
    assert job.status() == "IN_QUEUE"
    assert job.cancel() == {"id": job.job_id, "status": "CANCELLED"}
    assert job.status() == "CANCELLED"
    assert job.output(timeout=5) is None


def test_run_with_policy_and_webhook_passes_the_whole_body(server):
    idle = use_server(server, "idle")
    job = idle.run({"input": {"prompt": "x"}, "policy": {"executionTimeout": 60000, "ttl": 600000}, "webhook": "http://127.0.0.1:9/hook"})
    assert job.status() == "IN_QUEUE"
    job.cancel()


def test_purge_queue(server):
    idle = use_server(server, "idle")
    idle.purge_queue()
    idle.run({"n": 1})
    idle.run({"n": 2})
    assert idle.purge_queue() == {"removed": 2, "status": "completed"}
    assert idle.health()["jobs"]["inQueue"] == 0


def test_bad_key_raises_runtime_error(server):
    runpod.endpoint_url_base = f"{server['base']}/v2"
    with pytest.raises(RuntimeError):
        runpod.Endpoint("idle", api_key="not-a-key").health()
    with pytest.raises(RuntimeError):
        runpod.Endpoint("idle", api_key=WORKER_KEY).run({"n": 1})


def test_unknown_endpoint_is_a_json_404(server):
    request = urllib.request.Request(f"{server['base']}/v2/nope/health", headers={"Authorization": CLIENT_KEY})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    assert error.value.code == 404
    assert "nope" in json.loads(error.value.read())["error"]


def test_run_batch(server):
    jobs = [{"input": {"n": index}} for index in range(500)]
    request = urllib.request.Request(
        f"{server['base']}/v2/idle/run-batch", data=json.dumps({"jobs": jobs}).encode(),
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        ids = json.loads(response.read())["ids"]
    assert len(set(ids)) == 500
    use_server(server, "idle").purge_queue()


# ---- the SDK's serverless worker completing jobs submitted through the SDK's client ----


def test_run_sync_completes_through_a_real_worker(server, workers):
    swarm = use_server(server, "swarmui")
    assert swarm.run_sync({"prompt": "hello"}, timeout=60)["echo"] == {"prompt": "hello"}


def test_run_then_output(server, workers):
    swarm = use_server(server, "swarmui")
    job = swarm.run({"input": {"prompt": "later"}})
    output = job.output(timeout=60)
    assert output == {"echo": {"prompt": "later"}, "job_id": job.job_id, "worker": "py-worker"}
    assert job.status() == "COMPLETED"


def test_status_carries_times_and_worker(server, workers):
    swarm = use_server(server, "swarmui")
    job = swarm.run({"n": 3})
    job.output(timeout=60)
    status = swarm.rp_client.get(f"swarmui/status/{job.job_id}")
    assert status["status"] == "COMPLETED"
    assert status["workerId"] == "py-worker"
    assert isinstance(status["delayTime"], int) and isinstance(status["executionTime"], int)


def test_handler_exception_fails_the_job(server, workers):
    swarm = use_server(server, "swarmui")
    job = swarm.run({"fail": True})
    assert job.output(timeout=60) is None
    status = swarm.rp_client.get(f"swarmui/status/{job.job_id}")
    assert status["status"] == "FAILED"
    assert "asked to fail" in status["error"]


def test_progress_update_then_result(server, workers):
    swarm = use_server(server, "swarmui")
    job = swarm.run({"progress": 50})
    assert job.output(timeout=60)["echo"] == {"progress": 50}


def test_stream_from_a_generator_worker(server, workers):
    gen = use_server(server, "gen")
    job = gen.run({"chunks": 4})
    assert list(job.stream()) == [{"tok": 0}, {"tok": 1}, {"tok": 2}, {"tok": 3}]
    assert job.status() == "COMPLETED"


def test_serve_stops_on_sigterm(server, workers):
    """Last: the module's server is stopped here, and must exit promptly although workers hold long polls."""
    process = server["process"]
    process.terminate()
    process.wait(timeout=20)
    assert process.returncode == 0, server["log"].read_text()
