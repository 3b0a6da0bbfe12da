"""An OTLP/HTTP logs receiver for the tests: http.server, parsing each request with
opentelemetry-proto's JSON format (google.protobuf.json_format), independently of rawtrace's
encoder. `responses` scripts what it answers: (status, headers, body) per request, then 200."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


class OtlpReceiver:
    def __init__(self) -> None:
        self.requests: list[ExportLogsServiceRequest] = []  # parsed, whatever was answered
        self.responses: list[tuple[int, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert (
                    self.path == "/v1/logs" and self.headers["Content-Type"] == "application/json"
                )
                request = json_format.Parse(body, ExportLogsServiceRequest())
                with receiver.lock:
                    receiver.requests.append(request)
                    status, headers, answer = (
                        receiver.responses.pop(0) if receiver.responses else (200, {}, b"{}")
                    )
                self.send_response(status)
                for key, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def records(self) -> list[Any]:
        with self.lock:
            return [
                record
                for request in self.requests
                for resource in request.resource_logs
                for scope in resource.scope_logs
                for record in scope.log_records
            ]
