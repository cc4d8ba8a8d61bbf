"""A local stand-in for the part of the Hugging Face Hub's HTTP API that ``HfApi.create_repo`` and
``HfApi.upload_folder`` call, for tests: no hub is reachable from the test machines.

It answers, on a threaded ``http.server`` bound to 127.0.0.1:

- ``POST /api/repos/create``: records the repo (409 when it exists, which ``exist_ok`` accepts);
- ``POST /api/models/NS/NAME/preupload/REV``: every file "regular" (so no LFS or Xet transfer: the
  contents travel base64 in the commit itself);
- ``POST /api/validate-yaml``: a README.md (what the client sends before it commits a model card): 400
  when its front matter is not a YAML mapping, a warning when it has none;
- ``POST /api/models/NS/NAME/commit/REV``: the NDJSON commit (a header line, then one ``file`` line per
  file with base64 content), whose files it keeps.

Every request is recorded (method, path, Authorization header), and anything else is answered 404 and
recorded too, so a test sees what the client asked that the stand-in does not know.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_PREUPLOAD = re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/?]+)")
_COMMIT = re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/?]+)")


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None


@dataclass
class HubState:
    """What the stand-in was asked and holds: repos (id -> its create request) and their files."""

    requests: list[Request] = field(default_factory=list)
    repos: dict[str, dict] = field(default_factory=dict)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)  # README.md contents sent to validate-yaml
    unknown: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _record(self) -> None:
        with self.server.state.lock:
            self.server.state.requests.append(
                Request(self.command, self.path, self.headers.get("Authorization"))
            )

    def do_GET(self) -> None:
        self._record()
        self._unknown()

    def do_POST(self) -> None:
        self._record()
        body = self._body()
        if self.path.split("?")[0] == "/api/repos/create":
            return self._create(json.loads(body))
        if self.path.split("?")[0] == "/api/validate-yaml":
            return self._validate(json.loads(body)["content"])
        match = _PREUPLOAD.match(self.path)
        if match:
            files = json.loads(body)["files"]
            answer = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in files
            ]
            return self._reply(200, {"files": answer})
        match = _COMMIT.match(self.path)
        if match:
            return self._commit(match["repo"], body)
        self._unknown()

    def _unknown(self) -> None:
        with self.server.state.lock:
            self.server.state.unknown.append(f"{self.command} {self.path}")
        self._reply(404, {"error": "not in the stand-in"})

    def _validate(self, content: str) -> None:
        with self.server.state.lock:
            self.server.state.cards.append(content)
        parts = content.split("---\n")
        if not content.startswith("---\n") or len(parts) < 3:
            return self._reply(
                200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]}
            )
        try:
            meta = yaml.safe_load(parts[1])
        except yaml.YAMLError as exc:
            meta = str(exc)
        if not isinstance(meta, dict):
            return self._reply(
                400, {"errors": [{"message": f"the front matter is not a YAML mapping: {meta!r}"}]}
            )
        self._reply(200, {"errors": [], "warnings": []})

    def _create(self, request: dict) -> None:
        repo = "/".join(p for p in (request.get("organization"), request["name"]) if p)
        state = self.server.state
        with state.lock:
            if repo in state.repos:
                return self._reply(
                    409, {"error": "You already created this model repo", "url": f"{self.server.base}/{repo}"}
                )
            state.repos[repo] = request
            state.files[repo] = {}
        self._reply(200, {"url": f"{self.server.base}/{repo}", "name": repo})

    def _commit(self, repo: str, body: bytes) -> None:
        state = self.server.state
        if repo not in state.repos:
            return self._reply(404, {"error": "Repository not found"})
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        with state.lock:
            state.commits.append(lines[0])
            for line in lines[1:]:
                if line["key"] == "file":
                    value = line["value"]
                    assert value["encoding"] == "base64", value
                    state.files[repo][value["path"]] = base64.b64decode(value["content"])
        oid = hashlib.sha1(body).hexdigest()
        self._reply(
            200,
            {
                "commitUrl": f"{self.server.base}/{repo}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    base: str


class HubStandIn:
    """``with HubStandIn() as hub:`` serves on ``hub.url`` (set ``HF_ENDPOINT`` to it); ``hub.state``
    holds what it was asked."""

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state = HubState()
        self.url = self.server.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.state = self.server.state
        self.thread = threading.Thread(target=self.server.serve_forever, name="hub-standin", daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
