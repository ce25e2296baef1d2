"""`swarmctl costs` against a running `swarmctl serve`: a bare-HTTP worker completes a Wan job, and the command shows
it by job and by day, as a table and as JSON that matches the API.

Needs SWARMCTL_BIN, the path of a built swarmctl (scripts/test-python.sh sets it up).
"""

import json
import re
import urllib.request

import pytest
from conftest import Serve
from test_swarmctl_cli import swarmctl


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("costs-data")
    serve = Serve(data_dir, ["--endpoint", "costs"], env={"SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": ""})
    yield serve
    serve.stop()


def run_one_job(base):
    """Submits a Wan preset job at 720p and completes it as a bare-HTTP worker; returns its id."""
    submit = urllib.request.Request(
        f"{base}/v2/costs/run", data=json.dumps({"input": {"preset": "wan22-i2v-lightx2v", "prompt": "a fox", "width": 1280, "height": 720}}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(submit, timeout=10) as response:
        job_id = json.loads(response.read())["id"]
    with urllib.request.urlopen(f"{base}/v2/costs/job-take/cli-worker?gpu=SIM", timeout=40) as response:
        assert json.loads(response.read())["id"] == job_id
    done = urllib.request.Request(
        f"{base}/v2/costs/job-done/cli-worker/{job_id}?gpu=SIM&isStream=false", data=json.dumps({"output": {"video": "fox.mp4"}}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST",
    )
    urllib.request.urlopen(done, timeout=10).close()
    return job_id


def test_costs_by_job_and_by_day_as_table_and_json(served):
    job_id = run_one_job(served.base)
    env = {"SWARM_URL": served.base, "SWARM_API_KEY": ""}

    by_job = json.loads(swarmctl("costs", "--endpoint", "costs", "--by", "job", "--json", env=env).stdout)
    job = next(row for row in by_job["jobs"] if row["job_id"] == job_id)
    assert job["status"] == "COMPLETED" and job["provider"] == "vastai"
    assert job["resolution"] == "720p" and job["fal_equivalent_usd"] == pytest.approx(0.405)

    with urllib.request.urlopen(f"{served.base}/v2/costs/costs?from={by_job['from']}&to={by_job['to']}&group=job", timeout=10) as response:
        assert json.loads(response.read()) == by_job

    table = swarmctl("costs", "--endpoint", "costs", "--by", "job", env=env).stdout
    assert table.splitlines()[0].split()[:4] == ["JOB", "DAY", "PROVIDER", "STATUS"]
    assert job_id in table and "fal.ai would have charged $0.4050" in table

    days = swarmctl("costs", "--endpoint", "costs", "--since", "48h", env=env).stdout.splitlines()
    assert days[0].split()[:3] == ["DAY", "JOBS", "SPEND"]
    assert len([line for line in days if re.match(r"^\d{4}-\d\d-\d\d +\d+ ", line)]) == 3  # two days back and today
    assert "1 jobs completed" in days[-1]


def test_bad_options_are_refused(served):
    env = {"SWARM_URL": served.base, "SWARM_API_KEY": ""}
    result = swarmctl("costs", "--by", "week", env=env, check=False)
    assert result.returncode != 0 and "--by" in result.stderr
    result = swarmctl("costs", "--since", "soon", env=env, check=False)
    assert result.returncode != 0 and "--since" in result.stderr
