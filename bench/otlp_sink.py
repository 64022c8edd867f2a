#!/usr/bin/env python3
"""A stand-in OpenTelemetry collector for bench.py: accepts OTLP/HTTP exports
(POST /v1/traces, protobuf) on loopback, reads every body, answers 200 with an empty
ExportTraceServiceResponse, and counts requests and bytes (GET /stats returns them as JSON).
It does not decode the spans: the point is a real HTTP peer the exporter talks to, at the
lowest cost to the shared CPU.

    python3 bench/otlp_sink.py PORT
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"exports": 0, "bytes": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with lock:
            counts["exports"] += 1
            counts["bytes"] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        with lock:
            body = json.dumps(counts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
