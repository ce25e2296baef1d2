"""fal.ai's own Python client (fal-client 1.0.3) against `swarmctl serve`'s fal-compatible queue API, over TLS with a
private CA, the way the users' app would reach it after changing FAL_QUEUE_RUN_HOST and FAL_KEY (falai.md).

fal_client reads its hosts once, at import, and always speaks https: the port and the environment are fixed before
it is imported, and the server's certificate is signed by a CA made here and trusted through SSL_CERT_FILE."""

import atexit
import base64
import http.server
import json
import os
import shutil
import ssl
import struct
import subprocess
import tempfile
import threading
import urllib.request
import zlib
from pathlib import Path

import pytest

from conftest import Serve, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
CLIENT_KEY = "fal-test-client-key"
PORT = free_port()
CERTS = Path(tempfile.mkdtemp(prefix="swarm-fal-certs-"))
atexit.register(shutil.rmtree, CERTS, ignore_errors=True)
subprocess.run([str(ROOT / "scripts/make-test-certs.sh"), str(CERTS)], check=True)
os.environ["FAL_QUEUE_RUN_HOST"] = f"127.0.0.1:{PORT}"
os.environ["FAL_RUN_HOST"] = f"127.0.0.1:{PORT}"
os.environ["FAL_KEY"] = CLIENT_KEY
os.environ["SSL_CERT_FILE"] = str(CERTS / "ca.pem")

import fal_client  # noqa: E402  (after the environment it reads at import)

APP = "fal-ai/wan/v2.2-a14b/image-to-video"


def tiny_png():
    """A 16x16 grey PNG, as a data URI (what fal_client.encode_file gives for a local file)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\x80" * 48 for _ in range(16))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fal-serve")
    serve = Serve(
        data_dir,
        args=["--tls-cert", str(CERTS / "server.pem"), "--tls-key", str(CERTS / "server.key"), "--local-worker"],
        env={"SWARM_API_KEYS": CLIENT_KEY, "SWARMUI_API_URL": f"http://127.0.0.1:{free_port()}", "SSL_CERT_FILE": str(CERTS / "ca.pem")},
        key=f"Bearer {CLIENT_KEY}", port=PORT, ca=CERTS / "ca.pem",
    )
    yield serve
    serve.stop()


def arguments(**extra):
    return {"prompt": "a cat walks", "image_url": tiny_png(), "num_frames": 17, "resolution": "480p", **extra}


def download(url):
    context = ssl.create_default_context(cafile=str(CERTS / "ca.pem"))
    with urllib.request.urlopen(url, context=context, timeout=30) as response:
        return response.read()


def test_submit_status_with_logs_then_get_runs_on_a_worker(server):
    handle = fal_client.submit(APP, arguments=arguments(seed=42))
    assert handle.request_id
    wait_until(lambda: isinstance(handle.status(with_logs=True), fal_client.Completed), 120, "the request to complete")
    status = handle.status(with_logs=True)
    assert status.logs and status.logs[0]["source"] == "USER"
    assert status.metrics.get("inference_time") is not None
    result = handle.get()
    video = result["video"]
    assert video["content_type"].startswith("video/")
    assert result["prompt"] == "a cat walks"
    assert isinstance(result["seed"], int)
    body = download(video["url"])
    assert len(body) == video["file_size"] > 0


def test_text_to_video_gets_a_video_from_the_workers_t2v_preset(server):
    """The text-to-video route asks the worker for wan22-t2v-lightx2v, which the built-in presets ship: a prompt alone
    comes back as a video (before that preset, the job failed naming the presets the worker had)."""
    result = fal_client.subscribe("fal-ai/wan/v2.2-a14b/text-to-video", arguments={"prompt": "waves at dusk", "num_frames": 17, "resolution": "480p"})
    video = result["video"]
    assert video["content_type"].startswith("video/")
    assert result["prompt"] == "waves at dusk"
    body = download(video["url"])
    assert len(body) == video["file_size"] > 0


def test_subscribe_reports_queue_updates(server):
    updates = []
    result = fal_client.subscribe(APP, arguments=arguments(), with_logs=True, on_queue_update=updates.append)
    assert result["video"]["url"].startswith("https://127.0.0.1:")
    kinds = {type(update).__name__ for update in updates}
    assert kinds & {"Queued", "InProgress"}, kinds


def test_status_and_result_by_id(server):
    handle = fal_client.submit(APP, arguments=arguments())
    # Handles built from an id drop the app's sub-path: /fal-ai/wan/requests/{id}/status.
    wait_until(lambda: isinstance(fal_client.status(APP, handle.request_id, with_logs=True), fal_client.Completed), 120, "completion")
    result = fal_client.result(APP, handle.request_id)
    assert result["video"]["file_size"] > 0


def test_cancel(server):
    # A long clip keeps the one local worker busy while a second request waits in the queue.
    busy = fal_client.submit(APP, arguments=arguments(num_frames=161))
    queued = fal_client.submit(APP, arguments=arguments())
    fal_client.cancel(APP, queued.request_id)
    status = fal_client.status(APP, queued.request_id)
    assert isinstance(status, fal_client.Completed)
    with pytest.raises(fal_client.client.FalClientHTTPError) as raised:
        fal_client.cancel(APP, queued.request_id)
    assert raised.value.status_code == 400
    busy.get()


def test_webhook_receives_the_result(server):
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        handle = fal_client.submit(APP, arguments=arguments(), webhook_url=f"http://127.0.0.1:{receiver.server_port}/hook")
        wait_until(lambda: received, 120, "the webhook")
        call = received[0]
        assert call["request_id"] == handle.request_id
        assert call["status"] == "OK"
        assert call["payload"]["video"]["file_size"] > 0
    finally:
        receiver.shutdown()


def test_bad_field_is_a_422_naming_it(server):
    with pytest.raises(fal_client.client.FalClientHTTPError) as raised:
        fal_client.submit(APP, arguments=arguments(num_frames=5000))
    assert raised.value.status_code == 422
    assert "num_frames" in str(raised.value)


def test_wrong_key_is_a_401(server):
    client = fal_client.SyncClient(key="not-a-key")
    with pytest.raises(fal_client.client.FalClientHTTPError) as raised:
        client.submit(APP, arguments=arguments())
    assert raised.value.status_code == 401


def test_plain_http_beyond_loopback_warns(tmp_path):
    serve = Serve(tmp_path, args=["--host", "0.0.0.0"], env={"SWARM_API_KEYS": CLIENT_KEY}, key=f"Bearer {CLIENT_KEY}")
    try:
        log = serve.log_path.read_text()
    finally:
        serve.stop()
    assert "plain HTTP on 0.0.0.0" in log and "--tls-cert" in log, log
