#!/usr/bin/env python3
"""A small queue that speaks RunPod's worker routes exactly (runpod.md section 1), for driving swarm-worker in tests.

It runs as its own process so a test can kill it and start it again: its state lives in a JSON file, written after
every change. Worker routes:
  GET  /v2/<ep>/job-take/<worker>?...      200 with one JSON job, or 204 after holding the poll (--hold seconds)
  POST /v2/<ep>/job-done/<worker>/<job>?.. body is JSON whatever the content type; status IN_PROGRESS is progress
  GET  /v2/<ep>/ping/<worker>?job_id=a%2Cb  records the ids (split on commas); POST also records the JSON report
  GET  /v2/<ep>/job-stop/<worker>?...      200 {"jobsToStop": [...]} once per id, or 204
Test controls (no key needed):
  POST /control/enqueue {"id": ..., "input": {...}}   POST /control/stop {"id": ...}
  POST /control/done-delay {"seconds": N}  (hold job-done answers, to cut the network mid-post)
  GET  /control/state
  GET  /control/trickle/<name>?bytes=N&seconds=S  N zero bytes spread over S seconds (a slow model download)
"""
import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Condition()
STATE = {"queue": [], "taken": [], "results": {}, "deliveries": [], "progress": {}, "pings": [], "to_stop": [], "stopped": []}
OPTIONS = None
DONE_DELAY = 0.0


def save():
    tmp = OPTIONS.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, OPTIONS.state)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if OPTIONS.verbose:
            sys.stderr.write("queue-peer: " + fmt % args + "\n")

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else None

    def body(self):
        return self._body

    def authorized(self):
        if not OPTIONS.key:
            return True
        given = self.headers.get("Authorization", "")
        return given in (OPTIONS.key, "Bearer " + OPTIONS.key)

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        return [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")], urllib.parse.parse_qs(url.query)

    def do_GET(self):
        parts, query = self.route()
        if parts == ["control", "state"]:
            with LOCK:
                return self.reply(200, STATE)
        if parts[:2] == ["control", "trickle"]:
            return self.trickle(int(query["bytes"][0]), float(query["seconds"][0]))
        if len(parts) < 4 or parts[0] != "v2":
            return self.reply(404, {"error": "unknown route"})
        if not self.authorized():
            return self.reply(401, {"error": "bad key"})
        route, worker = parts[2], parts[3]
        if route == "job-take":
            deadline = time.monotonic() + OPTIONS.hold
            with LOCK:
                while not STATE["queue"] and time.monotonic() < deadline:
                    LOCK.wait(deadline - time.monotonic())
                if not STATE["queue"]:
                    return self.reply(204)
                job = STATE["queue"].pop(0)
                STATE["taken"].append({"id": job["id"], "worker": worker, "job_in_progress": query.get("job_in_progress", [""])[0]})
                save()
            return self.reply(200, job)
        if route == "ping":
            return self.record_ping(worker, query, None)
        if route == "job-stop":
            deadline = time.monotonic() + min(OPTIONS.hold, 2)
            with LOCK:
                while not STATE["to_stop"] and time.monotonic() < deadline:
                    LOCK.wait(deadline - time.monotonic())
                ids, STATE["to_stop"] = STATE["to_stop"], []
                STATE["stopped"].extend(ids)
                save()
            return self.reply(200, {"jobsToStop": ids}) if ids else self.reply(204)
        return self.reply(404, {"error": "unknown route"})

    def trickle(self, size, seconds):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        steps = 20
        for i in range(steps):
            chunk = size // steps + (size % steps if i == steps - 1 else 0)
            self.wfile.write(b"\0" * chunk)
            self.wfile.flush()
            time.sleep(seconds / steps)

    def record_ping(self, worker, query, report):
        ids = [i for value in query.get("job_id", []) for i in value.split(",") if i]
        with LOCK:
            STATE["pings"].append({"worker": worker, "job_ids": ids, "stage": query.get("stage", [""])[0],
                                   "runpod_version": query.get("runpod_version", [""])[0], "report": report})
            del STATE["pings"][:-200]
            save()
        return self.reply(200, {"status": "ok"})

    def do_POST(self):
        parts, query = self.route()
        # Read before any answer, whatever the route: bytes left unread would be taken for the next request on the
        # kept-alive connection (one handler object serves them all).
        self._body = self.read_body()
        if parts[:1] == ["control"]:
            payload = self.body() or {}
            with LOCK:
                if parts[1] == "enqueue":
                    STATE["queue"].append({"id": payload["id"], "input": payload["input"]})
                elif parts[1] == "stop":
                    STATE["to_stop"].append(payload["id"])
                elif parts[1] == "done-delay":
                    global DONE_DELAY
                    DONE_DELAY = float(payload["seconds"])
                save()
                LOCK.notify_all()
            return self.reply(200, {"ok": True})
        if len(parts) >= 4 and parts[0] == "v2" and parts[2] == "ping":
            if not self.authorized():
                return self.reply(401, {"error": "bad key"})
            return self.record_ping(parts[3], query, self.body())
        if len(parts) < 5 or parts[0] != "v2" or parts[2] != "job-done":
            return self.reply(404, {"error": "unknown route"})
        if not self.authorized():
            return self.reply(401, {"error": "bad key"})
        # The SDK sends JSON with the form content type (runpod.md 1.3): parse it whatever the header says.
        body = self.body()
        job = parts[4]
        with LOCK:
            if isinstance(body, dict) and body.get("status") == "IN_PROGRESS":
                STATE["progress"].setdefault(job, []).append(body.get("output"))
            else:
                STATE["deliveries"].append({"id": job, "content_type": self.headers.get("Content-Type", ""),
                                            "is_stream": query.get("isStream", [""])[0]})
                # The first final result wins, as a real queue dedupes job-done by id.
                STATE["results"].setdefault(job, body)
            save()
        if DONE_DELAY:
            time.sleep(DONE_DELAY)
        return self.reply(200, {})


def main():
    global OPTIONS, STATE
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state", required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--verbose", action="store_true")
    OPTIONS = parser.parse_args()
    if os.path.exists(OPTIONS.state):
        with open(OPTIONS.state) as f:
            STATE.update(json.load(f))
    server = ThreadingHTTPServer(("127.0.0.1", OPTIONS.port), Handler)
    server.daemon_threads = True
    print(f"queue peer listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
