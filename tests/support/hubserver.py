"""A local Hugging Face Hub for tests: the routes the real `huggingface_hub` client uses, on 127.0.0.1.

It keeps model repositories in memory as git-like commits (path -> bytes), branches and tags, and serves:

- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: model info with `sha` and `siblings`;
- `GET /api/models/{repo}/tree/{rev}[/{path}]`: the file listing (`oid`, `size`, `lfs` for large files);
- `HEAD`/`GET /{repo}/resolve/{rev}/{file}` with `ETag`, `X-Repo-Commit` and `Content-Length`; large files
  ("LFS": `*.safetensors`, `*.onnx`) answer like the real Hub: a 302 to a CDN on another origin (a second port)
  with `X-Linked-Etag` (sha256) and `X-Linked-Size`, and the CDN serves the bytes without authentication;
- push: `POST /api/repos/create`, `/api/models/{repo}/branch/{branch}`, `/api/validate-yaml`,
  `/api/models/{repo}/preupload/{rev}` (every file "regular", so the client sends it base64 in the commit) and
  `/api/models/{repo}/commit/{rev}` (ndjson).

Errors carry the Hub's `X-Error-Code` header (RepoNotFound, RevisionNotFound, EntryNotFound) so the client raises
its typed exceptions. A private repository, and every write, needs `Authorization: Bearer <token>` with one of
`tokens`. Every request is logged in `requests` (method, path, whether it carried a token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pt", ".pth")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.onnx filter=lfs diff=lfs merge=lfs -text\n"
SHA = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n".encode()
    )


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha

    def resolve(self, revision: str) -> Commit | None:
        if revision in self.refs:
            return self.commits[self.refs[revision]]
        return self.commits.get(revision) if SHA.match(revision) else None


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.commit, self.extra = status, code, message, commit, extra


class LocalHub:
    """An in-memory Hub served on 127.0.0.1 (API + resolve on one port, the "CDN" for large files on another)."""

    def __init__(self, tokens: tuple[str, ...] = ("hf_local_write_token",)):
        self.tokens = set(tokens)
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, bool]] = []
        self.cdn_requests: list[tuple[str, str, bool]] = []
        self.lock = threading.RLock()
        self._blobs: dict[str, bytes] = {}  # sha256 -> bytes, what the CDN serves
        self._servers: list[ThreadingHTTPServer] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalHub:
        api = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, self._route_api, self.requests))
        cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, self._route_cdn, self.cdn_requests))
        for server in (api, cdn):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._servers = [api, cdn]
        self.url = f"http://127.0.0.1:{api.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{cdn.server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ content, as a maintainer would push it
    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        with self.lock:
            if repo_id in self.repos:
                raise HubError(409, None, f"You already created this model repo: {repo_id}", url=f"{self.url}/{repo_id}")
            repo = self.repos[repo_id] = Repo(repo_id, private)
            self._commit(repo, "main", {".gitattributes": GITATTRIBUTES}, [], "initial commit")
            return repo

    def add_commit(
        self, repo_id: str, files: dict[str, bytes], branch: str = "main", message: str = "update", private: bool = False
    ) -> str:
        """Commit `files` (added or replaced) to `branch`, creating the repository and the branch if needed."""
        with self.lock:
            repo = self.repos.get(repo_id) or self.create_repo(repo_id, private)
            if branch not in repo.refs:
                repo.refs[branch] = repo.refs["main"]
            return self._commit(repo, branch, files, [], message)

    def add_folder(self, repo_id: str, folder: str | Path, branch: str = "main", **kwargs) -> str:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}
        return self.add_commit(repo_id, files, branch, **kwargs)

    def tag(self, repo_id: str, tag: str, revision: str = "main") -> None:
        with self.lock:
            repo = self.repos[repo_id]
            repo.refs[tag] = repo.resolve(revision).sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.lock:
            return dict(self.repos[repo_id].resolve(revision).files)

    def _commit(self, repo: Repo, branch: str, added: dict[str, bytes], deleted: list[str], message: str) -> str:
        parent = repo.commits.get(repo.refs.get(branch, ""))
        files = dict(parent.files) if parent else {}
        for path in deleted:
            if path.endswith("/"):
                files = {p: b for p, b in files.items() if not p.startswith(path)}
            elif files.pop(path, None) is None:
                raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
        files.update(added)
        digest = hashlib.sha1(f"{repo.repo_id}\n{parent.sha if parent else ''}\n{message}\n{time.time_ns()}".encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + git_blob_sha1(files[path]).encode())
        sha = digest.hexdigest()
        repo.commits[sha] = Commit(sha, parent.sha if parent else None, message, files)
        repo.refs[branch] = sha
        for data in added.values():
            self._blobs[hashlib.sha256(data).hexdigest()] = data
        return sha

    # ------------------------------------------------------------------ routing
    def _authorized(self, headers) -> bool:
        value = headers.get("Authorization", "")
        return value.startswith("Bearer ") and value[len("Bearer ") :] in self.tokens

    def _repo(self, repo_id: str, headers) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorized(headers)):
            # The Hub answers the same for "missing" and "private without access", so as not to leak names.
            status = 401 if not self._authorized(headers) else 404
            raise HubError(status, "RepoNotFound", "Repository not found")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}")
        return commit

    def _require_write(self, headers) -> None:
        if not self._authorized(headers):
            raise HubError(401, None, "Invalid credentials in Authorization header")

    def _route_api(self, method: str, path: str, query: dict, headers, body: bytes):
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, rest = f"{parts[2]}/{parts[3]}", parts[4:]
            if method == "GET" and not rest:
                return self._model_info(self._repo(repo_id, headers), "main")
            if method == "GET" and rest[:1] == ["revision"] and len(rest) == 2:
                return self._model_info(self._repo(repo_id, headers), rest[1])
            if method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
                return self._tree(self._repo(repo_id, headers), rest[1], "/".join(rest[2:]), query)
            if method == "POST" and rest[:1] == ["preupload"] and len(rest) == 2:
                return self._preupload(repo_id, rest[1], headers, json.loads(body))
            if method == "POST" and rest[:1] == ["commit"] and len(rest) == 2:
                return self._receive_commit(repo_id, rest[1], headers, body)
            if method == "POST" and rest[:1] == ["branch"] and len(rest) == 2:
                return self._create_branch(repo_id, rest[1], headers, json.loads(body or b"{}"))
        if method == "POST" and parts == ["api", "repos", "create"]:
            return self._create_repo_route(headers, json.loads(body))
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(method, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), headers)
        raise HubError(404, None, f"no route for {method} {path} in the local Hub")

    def _route_cdn(self, method: str, path: str, query: dict, headers, body: bytes):
        match = re.fullmatch(r"/lfs/([0-9a-f]{64})", path)
        if method not in ("GET", "HEAD") or not match or match[1] not in self._blobs:
            raise HubError(404, None, "no such object")
        return 200, {"Content-Type": "application/octet-stream", "ETag": f'"{match[1]}"'}, self._blobs[match[1]]

    # ------------------------------------------------------------------ read routes
    def _model_info(self, repo: Repo, revision: str):
        commit = self._commit_at(repo, revision)
        info = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "tags": [],
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            "lastModified": "2026-01-01T00:00:00.000Z",
        }
        return 200, {}, info

    def _tree(self, repo: Repo, revision: str, prefix: str, query: dict):
        commit = self._commit_at(repo, revision)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        base = f"{prefix.rstrip('/')}/" if prefix else ""
        if prefix and not any(p.startswith(base) for p in commit.files):
            raise HubError(404, "EntryNotFound", f"{prefix} does not exist on {revision}")
        entries, folders = [], set()
        for path in sorted(commit.files):
            if not path.startswith(base):
                continue
            inner = path[len(base) :].split("/")
            for depth in range(1, len(inner)):
                folders.add(base + "/".join(inner[:depth]))
            if len(inner) > 1 and not recursive:
                continue
            entries.append(self._tree_entry(path, commit.files[path]))
        for folder in sorted(folders):
            if recursive or "/" not in folder[len(base) :]:
                entries.append({"type": "directory", "oid": git_blob_sha1(folder.encode()), "size": 0, "path": folder})
        return 200, {}, entries

    @staticmethod
    def _tree_entry(path: str, data: bytes) -> dict:
        entry = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
        if path.endswith(LFS_SUFFIXES):
            pointer = lfs_pointer(data)
            entry["oid"] = git_blob_sha1(pointer)
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)}
        return entry

    def _resolve(self, method: str, repo_id: str, revision: str, filename: str, headers):
        repo = self._repo(repo_id, headers)
        commit = self._commit_at(repo, revision)
        data = commit.files.get(filename)
        if data is None:
            raise HubError(404, "EntryNotFound", f"{filename} does not exist on {unquote(revision)}", commit=commit.sha)
        common = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if filename.endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(data).hexdigest()
            return (
                302,
                {
                    **common,
                    "Location": f"{self.cdn_url}/lfs/{sha256}",
                    "ETag": f'"{git_blob_sha1(lfs_pointer(data))}"',
                    "X-Linked-Etag": f'"{sha256}"',
                    "X-Linked-Size": str(len(data)),
                },
                b"",
            )
        return 200, {**common, "ETag": f'"{git_blob_sha1(data)}"', "Content-Type": "application/octet-stream"}, data

    # ------------------------------------------------------------------ write routes
    def _create_repo_route(self, headers, payload: dict):
        self._require_write(headers)
        if payload.get("type", "model") != "model":
            raise HubError(400, None, "this local Hub only holds model repositories")
        repo_id = f"{payload['organization']}/{payload['name']}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.create_repo(repo_id, private)
        return 200, {}, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()}

    def _create_branch(self, repo_id: str, branch: str, headers, payload: dict):
        self._require_write(headers)
        with self.lock:
            repo = self._repo(repo_id, headers)
            if branch in repo.refs:
                raise HubError(409, None, f"Reference already exists: refs/heads/{branch}")
            repo.refs[branch] = self._commit_at(repo, payload.get("startingPoint") or "main").sha
        return 200, {}, {}

    def _validate_yaml(self, payload: dict):
        content = payload.get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.S)
        errors = []
        try:
            meta = yaml.safe_load(match[1]) if match else {}
        except yaml.YAMLError as exc:
            meta, errors = None, [{"message": f"invalid YAML: {exc}"}]
        if meta is not None and not isinstance(meta, dict):
            errors.append({"message": "the metadata must be a YAML mapping"})
        elif isinstance(meta, dict):
            errors += [{"message": m} for m in model_index_problems(meta.get("model-index"))]
        if errors:
            return 400, {"X-Error-Message": errors[0]["message"]}, {"errors": errors, "warnings": []}
        return 200, {}, {"errors": [], "warnings": []}

    def _preupload(self, repo_id: str, revision: str, headers, payload: dict):
        self._require_write(headers)
        commit = self._commit_at(self._repo(repo_id, headers), revision)
        existing = commit.files
        files = [
            {
                "path": f["path"],
                "uploadMode": "regular",  # everything travels base64 in the commit payload: no LFS/Xet storage here
                "shouldIgnore": False,
                "oid": git_blob_sha1(existing[f["path"]]) if f["path"] in existing else None,
            }
            for f in payload["files"]
        ]
        return 200, {}, {"files": files, "commitOid": commit.sha}

    def _receive_commit(self, repo_id: str, revision: str, headers, body: bytes):
        self._require_write(headers)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, None, "the commit payload must start with a header line")
        header, added, deleted = lines[0]["value"], {}, []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, None, f"unsupported encoding {value.get('encoding')!r}")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"].rstrip("/") + ("/" if key == "deletedFolder" else ""))
            else:
                raise HubError(400, None, f"{key} operations are not supported (preupload said 'regular')")
        with self.lock:
            repo = self._repo(repo_id, headers)
            branch = unquote(revision)
            if branch not in repo.refs or SHA.match(branch):
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch} (commits go to a branch)")
            parent = header.get("parentCommit")
            if parent and parent != repo.refs[branch]:
                raise HubError(412, None, "A commit has happened since. Please refresh and try again.")
            sha = self._commit(repo, branch, added, deleted, header.get("summary") or "commit")
        return 200, {}, {"success": True, "commitOid": sha, "commitUrl": f"{self.url}/{repo_id}/commit/{sha}"}


def model_index_problems(model_index) -> list[str]:
    """What the Hub's metadata validation would reject in a `model-index` (an empty list when it is well formed)."""
    if model_index is None:
        return []
    if not isinstance(model_index, list) or not model_index:
        return ["model-index must be a non-empty list"]
    problems = []
    for entry in model_index:
        if not isinstance(entry, dict) or not entry.get("name") or not isinstance(entry.get("results"), list):
            problems.append("each model-index entry needs a name and a list of results")
            continue
        for result in entry["results"]:
            task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
            if not isinstance(task, dict) or not task.get("type"):
                problems.append("each result needs task.type")
            if not isinstance(dataset, dict) or not dataset.get("type") or not dataset.get("name"):
                problems.append("each result needs dataset.type and dataset.name")
            if not isinstance(metrics, list) or not metrics:
                problems.append("each result needs a list of metrics")
                continue
            for metric in metrics:
                if not metric.get("type") or not isinstance(metric.get("value"), (int, float)):
                    problems.append(f"metric {metric!r} needs a type and a numeric value")
    return problems


def _handler(hub: LocalHub, route, log: list):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with hub.lock:
                log.append((method, url.path, "Authorization" in self.headers))
            try:
                status, headers, payload = route(method, url.path, parse_qs(url.query), self.headers, body)
            except HubError as exc:
                status, payload = exc.status, {"error": exc.message, **exc.extra}
                headers = {"X-Error-Message": exc.message}
                if exc.code:
                    headers["X-Error-Code"] = exc.code
                if exc.commit:
                    headers["X-Repo-Commit"] = exc.commit
            if not isinstance(payload, bytes):
                payload = json.dumps(payload).encode()
                headers.setdefault("Content-Type", "application/json")
            payload, status = self._range(payload, status)
            if status == 206:
                headers["Content-Range"] = self._content_range
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(payload)

        def _range(self, payload: bytes, status: int) -> tuple[bytes, int]:
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if status == 200 and match and int(match[1]) < len(payload):
                self._content_range = f"bytes {match[1]}-{len(payload) - 1}/{len(payload)}"
                return payload[int(match[1]) :], 206
            return payload, status

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
