"""Hugging Face Hub I/O, isolated here: download a checkpoint, publish one, list the local cache, map errors.

Everything goes through the `huggingface_hub` client. The settings users know are read from the environment at
each call (not once at import), so they behave as documented and tests can point them elsewhere:

- `HF_ENDPOINT`: the Hub (or a mirror) to talk to;
- `HF_HUB_CACHE`, else `HF_HOME`/hub (else `~/.cache/huggingface/hub`): where downloads are cached;
- `HF_TOKEN` (or the token saved by `hf auth login`): private repositories and uploads;
- `HF_HUB_OFFLINE=1`: never touch the network; a checkpoint not in the cache fails at once (ModelOfflineError).

Only `config.json`, `model.safetensors`, `README.md`, `*.onnx` (a face detector, the ONNX export) and `onnx.json`
(the export's manifest) are ever downloaded: no pickle file of a repository reaches this machine, let alone
`torch.load`. A checkpoint that carries its export is served without PyTorch.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import (
    ModelError,
    ModelFileMissingError,
    ModelNotFoundError,
    ModelOfflineError,
    ModelUploadError,
)

REQUIRED_FILES = ("config.json", "model.safetensors")
CHECKPOINT_FILES = [*REQUIRED_FILES, "README.md", "*.onnx", "onnx.json"]
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    cache_dir: Path
    offline: bool

    @classmethod
    def from_environment(cls) -> HubSettings:
        env = os.environ
        hf_home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
        cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(hf_home, "hub")
        offline = (env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").strip().lower() in _TRUE
        return cls(
            endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            cache_dir=Path(os.path.expandvars(os.path.expanduser(cache))),
            offline=offline,
        )


@dataclass(frozen=True)
class CachedCheckpoint:
    repo_id: str
    commit: str
    refs: tuple[str, ...]  # branches or tags that pointed at this commit when it was downloaded
    size_bytes: int
    path: Path


@dataclass(frozen=True)
class Upload:
    repo_id: str
    commit: str
    url: str
    branch: str


def download_checkpoint(repo_id: str, revision: str | None = None) -> tuple[Path, str]:
    """Fetch (or reuse from the cache) a checkpoint; return its local folder and the commit it resolved to."""
    from huggingface_hub import snapshot_download

    settings = HubSettings.from_environment()
    where = f"{repo_id}@{revision}" if revision else repo_id
    with hub_errors(where, settings):
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=CHECKPOINT_FILES,
                endpoint=settings.endpoint,
                cache_dir=settings.cache_dir,
                local_files_only=settings.offline,
            )
        )
    for required in REQUIRED_FILES:
        if not (folder / required).is_file():
            raise ModelFileMissingError(
                f"{where}: the repository has no {required} (a checkpoint needs {' and '.join(REQUIRED_FILES)})"
            )
    return folder, folder.name  # the snapshot folder is named after the commit


def upload_checkpoint(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    branch: str | None = None,
    message: str | None = None,
) -> Upload:
    """Create the repository (and branch) if needed and commit the checkpoint files of `folder` in one commit.

    Checkpoint files the repository holds but the folder does not (an old face detector file, say) are deleted in
    the same commit; anything else in the repository (.gitattributes, extra documents) is left alone.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    settings = HubSettings.from_environment()
    where = f"{repo_id}@{branch}" if branch else repo_id
    if settings.offline:
        raise ModelOfflineError(f"{where}: cannot push with HF_HUB_OFFLINE set: unset it to reach {settings.endpoint}")
    folder = Path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and _is_checkpoint_file(p.name))
    api = HfApi(endpoint=settings.endpoint)
    with hub_errors(where, settings, upload=True):
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch and branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        remote = [p for p in api.list_repo_files(repo_id, revision=branch) if _is_checkpoint_file(p)]
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
        operations += [CommitOperationDelete(path_in_repo=p) for p in remote if p not in files]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message or f"Upload checkpoint ({', '.join(files)})",
            revision=branch,
        )
    return Upload(repo_id, info.oid, info.commit_url, branch or "main")


def cached_checkpoints() -> list[CachedCheckpoint]:
    """Checkpoints (config.json + model.safetensors) in the local Hub cache, one entry per cached commit."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    settings = HubSettings.from_environment()
    try:
        cache = scan_cache_dir(settings.cache_dir)
    except CacheNotFound:
        return []
    found = []
    for repo in cache.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            names = {f.file_name for f in rev.files}
            if all(required in names for required in REQUIRED_FILES):
                found.append(
                    CachedCheckpoint(repo.repo_id, rev.commit_hash, tuple(sorted(rev.refs)), rev.size_on_disk, rev.snapshot_path)
                )
    return sorted(found, key=lambda c: (c.repo_id, c.refs == (), c.commit))


def _is_checkpoint_file(name: str) -> bool:
    """A file at the top of a checkpoint folder (or repository) that belongs to the checkpoint format."""
    return "/" not in name and any(fnmatch.fnmatch(name, pattern) for pattern in CHECKPOINT_FILES)


@contextlib.contextmanager
def hub_errors(where: str, settings: HubSettings, upload: bool = False) -> Iterator[None]:
    """Turn the client's exceptions into our typed errors, each with a message that says what to do."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    failed = ModelUploadError if upload else ModelNotFoundError
    try:
        yield
    except HFValidationError as exc:
        raise ModelNotFoundError(f"{where}: not a valid Hub repository id or revision ({_last_line(exc)})") from None
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{where}: the repository is gated: set HF_TOKEN to an account that was granted access"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"{where}: no such model repository on {settings.endpoint} (or it is private: set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{where}: the repository has no such revision (branch, tag or commit)") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        # LocalEntryNotFoundError also covers a cached snapshot missing files (IncompleteSnapshotError).
        if settings.offline or upload:
            raise ModelOfflineError(
                f"{where}: not in the local cache ({settings.cache_dir}) and HF_HUB_OFFLINE is set: "
                "pull it once with network access (python -m model_hub pull) or unset HF_HUB_OFFLINE"
            ) from None
        raise ModelOfflineError(
            f"{where}: not in the local cache ({settings.cache_dir}) and {settings.endpoint} cannot be reached "
            "or answered with an error"
        ) from None
    except RemoteEntryNotFoundError as exc:
        raise ModelFileMissingError(f"{where}: a checkpoint file is missing from the repository ({_last_line(exc)})") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if upload and status in (401, 403):
            raise ModelUploadError(
                f"{where}: the Hub refused the upload (HTTP {status}): set HF_TOKEN to a token with write access"
            ) from None
        raise failed(f"{where}: the Hub answered HTTP {status}: {_last_line(exc)}") from None
    except (httpx2.ConnectError, httpx2.TimeoutException) as exc:
        raise ModelOfflineError(f"{where}: {settings.endpoint} cannot be reached ({type(exc).__name__})") from None
    except ValueError as exc:  # e.g. the Hub rejected the model card's metadata
        if upload:
            raise ModelUploadError(f"{where}: {exc}") from None
        raise ModelError(f"{where}: {exc}") from None


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
