"""A tiny runpod serverless worker for the SDK tests: echoes its input, fails on request, streams when asked.

Run with the RUNPOD_WEBHOOK_* variables pointing at swarmctl; `--generator` starts the streaming handler. With
WORKER_HANGS=1 a job whose input has `"slow": true` never finishes (for killing the worker mid-job).
"""

import os
import sys
import time

import runpod


def handler(job):
    job_input = job["input"]
    if job_input.get("fail"):
        raise ValueError("asked to fail")
    if job_input.get("slow") and os.environ.get("WORKER_HANGS") == "1":
        time.sleep(3600)
    if "progress" in job_input:
        runpod.serverless.progress_update(job, {"pct": job_input["progress"]})
    return {"echo": job_input, "job_id": job["id"], "worker": os.environ.get("RUNPOD_POD_ID")}


def generator_handler(job):
    for index in range(job["input"].get("chunks", 3)):
        yield {"tok": index}


if __name__ == "__main__":
    if "--generator" in sys.argv:
        runpod.serverless.start({"handler": generator_handler, "return_aggregate_stream": True})
    else:
        runpod.serverless.start({"handler": handler})
