"""Hugging Face Hub I/O, isolated here: download a checkpoint snapshot and map the client's errors to ours.

`HF_ENDPOINT`, `HF_HOME` / `HF_HUB_CACHE`, `HF_TOKEN` and `HF_HUB_OFFLINE` work as the huggingface_hub
client documents them.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelFormatError, ModelNotFoundError, ModelOfflineError

CHECKPOINT_FILES = ["config.json", "model.safetensors", "README.md", "*.onnx"]


def download_checkpoint(repo_id: str, revision: str | None = None) -> tuple[Path, str]:
    """Fetch (or reuse from the cache) a checkpoint; return its local folder and the commit it resolved to."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=CHECKPOINT_FILES))
    except GatedRepoError:
        raise ModelNotFoundError(f"{where}: the repository is gated: set HF_TOKEN to an account with access") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"{where}: no such model repository on the Hub (or it is private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{where}: no such revision in the repository") from None
    except EntryNotFoundError as exc:
        raise ModelFormatError(f"{where}: a checkpoint file is missing ({exc})") from None
    except LocalEntryNotFoundError:
        raise ModelOfflineError(
            f"{where}: not in the local cache and the Hub cannot be reached (offline mode or no network)"
        ) from None
    except HfHubHTTPError as exc:
        raise ModelNotFoundError(f"{where}: the Hub answered with an error ({exc})") from None
    for required in ("config.json", "model.safetensors"):
        if not (folder / required).is_file():
            raise ModelFormatError(f"{where}: the repository has no {required}")
    return folder, folder.name
