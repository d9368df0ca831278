"""A local stand-in for Prolific's API, answering ``GET /api/v1/submissions/{id}/`` as its
reference documents it (docs.prolific.com, "Retrieve a submission"): the submission's JSON
with ``Authorization: Token <token>``, 401 for another token, 404 for an unknown id; and,
on demand, the failures a real server has (a 5xx, a slow answer, a body sent a byte at a
time). A threaded ``http.server`` on 127.0.0.1: the client under test makes real requests.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

TOKEN = "fake-prolific-token-0123456789"
PATH = re.compile(r"^/api/v1/submissions/([^/]+)/$")


@dataclass
class FakeProlific:
    """What the server answers (``submissions`` by id, ``mode``) and what it was asked (``asked``)."""

    url: str = ""
    submissions: dict[str, dict] = field(default_factory=dict)
    mode: str = "ok"  # "ok", "error" (503), "slow" (answers after ``delay`` s), "trickle", "redirect"
    delay: float = 3.0
    asked: list[str] = field(default_factory=list)  # the submission ids requested, in order
    headers: list[dict[str, str]] = field(default_factory=list)

    def add(self, session_id: str, *, participant: str, study_id: str, status: str = "ACTIVE") -> None:
        """A submission as the reference's example shows one (ids 24 hexadecimal characters)."""
        self.submissions[session_id] = {
            "id": session_id, "study_id": study_id, "participant": participant, "status": status,
            "started_at": "2026-12-07T21:00:00.000000Z", "completed_at": None, "entered_code": None,
            "bonus_payments": [],
        }


def _handler(fake: FakeProlific) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

        def _send(self, status: int, payload: dict, *, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            match = PATH.match(self.path)
            fake.asked.append(match.group(1) if match else self.path)
            fake.headers.append(dict(self.headers.items()))
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                self._send(401, {"error": {"detail": "Invalid token."}})
                return
            if fake.mode == "error":
                self._send(503, {"error": "Service unavailable"})
                return
            if fake.mode == "slow":
                time.sleep(fake.delay)
            if fake.mode == "redirect":
                self._send(302, {}, headers={"Location": "http://127.0.0.1:9/elsewhere/"})
                return
            submission = fake.submissions.get(match.group(1)) if match else None
            if submission is None:
                self._send(404, {"error": {"detail": "Not found."}})
                return
            if fake.mode == "trickle":
                body = json.dumps(submission).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(len(body)):  # a byte every 0.2 s: each wait is short, the whole is not
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
                return
            self._send(200, submission)

    return Handler


@pytest.fixture
def fake_prolific(settings) -> Iterator[FakeProlific]:
    """The fake API, running, and the settings pointing at it (token set: the check is on)."""
    fake = FakeProlific()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    settings.FUSION_PROLIFIC_API_TOKEN = TOKEN
    settings.FUSION_PROLIFIC_API_URL = fake.url
    settings.FUSION_PROLIFIC_API_TIMEOUT_S = 1.0
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
