"""S3 access behind a small adapter, so the step logic is testable without moto."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

DOWNLOAD_PIECE = 1 << 23  # bytes of an object in memory at a time while it is downloaded to a file
STREAM_CHUNK = 1 << 20


class ObjectNotFound(Exception):
    pass


class ObjectTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


@dataclass
class ObjectStore:
    client: Any  # boto3 S3 client

    def read(self, bucket: str, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        """The object's bytes; ObjectTooLarge, before the body is read, when it exceeds max_bytes."""
        return self._get(bucket, key, version_id, max_bytes)["Body"].read()

    def download(
        self,
        bucket: str,
        key: str,
        path: str,
        version_id: str | None = None,
        max_bytes: int | None = None,
        check_size: Callable[[int], None] | None = None,
    ) -> tuple[int, str]:
        """Stream the object into the file at `path`: (its size, its SHA-256 hex digest). ObjectTooLarge, before
        the body is read, when it exceeds max_bytes; `check_size` may raise too, before the body is read. Memory
        holds one piece of the object at a time."""
        response = self._get(bucket, key, version_id, max_bytes)
        if check_size is not None:
            try:
                check_size(int(response["ContentLength"]))
            except BaseException:
                response["Body"].close()
                raise
        digest = hashlib.sha256()
        with open(path, "wb") as file:
            for piece in response["Body"].iter_chunks(DOWNLOAD_PIECE):
                digest.update(piece)
                file.write(piece)
        return int(response["ContentLength"]), digest.hexdigest()

    def _get(self, bucket: str, key: str, version_id: str | None, max_bytes: int | None) -> dict[str, Any]:
        kwargs: dict[str, str] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NoSuchVersion", "NoSuchBucket"):
                raise ObjectNotFound(f"s3://{bucket}/{key}") from error
            raise
        size = int(response["ContentLength"])
        if max_bytes is not None and size > max_bytes:
            response["Body"].close()
            raise ObjectTooLarge(size)
        return response

    def read_uri(self, uri: str) -> bytes:
        return self.read(*split_s3_uri(uri))

    def stream_uri(self, uri: str, chunk_size: int = STREAM_CHUNK) -> Iterator[bytes]:
        """The object's bytes in chunks, read as they are consumed (never the whole object at once)."""
        bucket, key = split_s3_uri(uri)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NoSuchBucket"):
                raise ObjectNotFound(uri) from error
            raise
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def write(self, bucket: str, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        return f"s3://{bucket}/{key}"

    def write_json(self, bucket: str, key: str, document: Any) -> str:
        return self.write(bucket, key, json.dumps(document, indent=2, sort_keys=True).encode(), "application/json")
