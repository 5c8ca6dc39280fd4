"""Where derived artefacts live (Report JSON, key-frame thumbnails, heatmaps, the timeline plot, kept media):
a folder on local disk by default, or an S3-compatible bucket (AWS S3, MinIO, R2...) through boto3.

Keys look like `<analysis id>/report.json`; both stores share one small interface.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import ServerSettings


class ArtefactStore:
    kind = "base"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        """The stored bytes, or None when there is no such artefact."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> None:
        raise NotImplementedError

    def copy_prefix(self, source: str, target: str, skip: tuple[str, ...] = ()) -> None:
        """Copy every artefact under `source` to the same name under `target`, except the names in `skip`."""
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


class LocalArtefacts(ArtefactStore):
    kind = "local"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artefact key outside the store: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a file.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)

    def copy_prefix(self, source: str, target: str, skip: tuple[str, ...] = ()) -> None:
        folder = self._path(source.rstrip("/"))
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.is_file() and path.name not in skip and not path.name.startswith(".part-"):
                self.put(f"{target.rstrip('/')}/{path.name}", path.read_bytes(), "")

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.root)}


class S3Artefacts(ArtefactStore):
    kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        credentials = {}
        if access_key_id and secret_access_key:
            credentials = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=region or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30),
            **credentials,
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def delete_prefix(self, prefix: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def copy_prefix(self, source: str, target: str, skip: tuple[str, ...] = ()) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        source_key = self.prefix + source.rstrip("/") + "/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=source_key):
            for item in page.get("Contents", []):
                name = item["Key"][len(source_key) :]
                if name and name not in skip:
                    self.client.copy_object(
                        Bucket=self.bucket,
                        Key=f"{self.prefix}{target.rstrip('/')}/{name}",
                        CopySource={"Bucket": self.bucket, "Key": item["Key"]},
                    )

    def describe(self) -> dict:
        return {"kind": self.kind, "bucket": self.bucket, "prefix": self.prefix, "endpoint_url": self.endpoint_url}


def make_store(settings: ServerSettings, data_dir: Path) -> ArtefactStore:
    if settings.s3_bucket:
        return S3Artefacts(
            settings.s3_bucket,
            settings.s3_prefix,
            settings.s3_endpoint_url or None,
            settings.s3_region or None,
            settings.s3_access_key_id or None,
            settings.s3_secret_access_key or None,
        )
    return LocalArtefacts(data_dir / "artefacts")
