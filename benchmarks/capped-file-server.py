"""A file server that caps what each connection gets, for benchmarks/model-download.sh.

`/cap<bytes per second>/<file>` serves `<root>/<file>` with Range (`bytes=a-b`, `bytes=a-`) at no more than that
rate per connection (0: uncapped), paced in slices of about 8 ms with no initial burst, the way a CDN's
per-connection limit looks to a client. nginx's limit_rate was not used: it lets every request send a full
second's worth at once, so downloaders that cut a file into many small ranges would never meet the cap.

Usage: python3 capped-file-server.py <root> <port file>   (binds 127.0.0.1 on a free port, writes it to <port file>)
"""

import os
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_HEAD(self):  # noqa: N802 - the base class's name
        self.serve(body=False)

    def do_GET(self):  # noqa: N802
        self.serve(body=True)

    def serve(self, body):
        match = re.fullmatch(r"/cap(\d+)/([A-Za-z0-9._-]+)", self.path)
        path = os.path.join(self.root, match.group(2)) if match else None
        if not path or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rate = int(match.group(1))
        size = os.path.getsize(path)
        start, end = 0, size - 1
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged:
            start = int(ranged.group(1))
            end = min(end, int(ranged.group(2))) if ranged.group(2) else end
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if body:
            self.send_range(path, start, end + 1, rate)

    def send_range(self, path, start, stop, rate):
        # About 8 ms of data per slice; at least 16 KiB.
        piece = max(16 << 10, rate // 128) if rate else 4 << 20
        began = time.monotonic()
        sent = 0
        with open(path, "rb") as file:
            position = start
            while position < stop:
                if rate:
                    # Sleep until this slice is due: never ahead of rate x elapsed.
                    due = began + (sent + min(piece, stop - position)) / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                try:
                    count = os.sendfile(self.connection.fileno(), file.fileno(), position, min(piece, stop - position))
                except (BrokenPipeError, ConnectionResetError):
                    return
                if count == 0:
                    return
                position += count
                sent += count


class Server(ThreadingHTTPServer):
    # The default backlog of 5 drops the SYNs of a downloader opening dozens of connections at once, which then wait a
    # full second for TCP to retry.
    request_queue_size = 256
    daemon_threads = True


def main():
    root, port_file = sys.argv[1], sys.argv[2]
    Handler.root = root
    server = Server(("127.0.0.1", 0), Handler)
    with open(port_file, "w") as file:
        file.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
