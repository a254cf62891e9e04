"""Streaming multipart uploads: the file part goes to a spooled temporary file as it
arrives (bounded memory), with the size limit enforced while reading."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

SPOOL_BYTES = 4 * 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024


class UploadError(ValueError):
    """Malformed upload (400)."""


class UploadTooLargeError(ValueError):
    """Upload over the configured limit (413)."""


@dataclass
class ParsedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    file: IO[bytes] | None = None
    filename: str | None = None
    file_size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)  # sha256 of the file part, as it streams

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


async def parse_multipart(
    content_type: str, chunks: AsyncIterator[bytes], max_file_bytes: int
) -> ParsedUpload:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError("expected multipart/form-data with a boundary")
    upload = ParsedUpload()
    state: dict = {
        "name": None,
        "filename": None,
        "value": bytearray(),
        "header": b"",
        "headers": {},
    }

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        key = state["header"].lower()
        state["headers"][key] = state["headers"].get(key, b"") + data[start:end]

    def on_header_end() -> None:
        state["header"] = b""

    def on_headers_finished() -> None:
        disposition = state["headers"].get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        state["name"] = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        state["filename"] = filename.decode("utf-8", "replace") if filename is not None else None
        if state["filename"] is not None and state["name"] == "file":
            if upload.file is not None:
                raise UploadError("only one file per upload")
            upload.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by the caller
            upload.filename = state["filename"]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["filename"] is not None and state["name"] == "file":
            upload.file_size += end - start
            if upload.file_size > max_file_bytes:
                raise UploadTooLargeError(
                    f"file is larger than the limit of {max_file_bytes} bytes"
                )
            upload.file.write(data[start:end])
            upload.digest.update(data[start:end])
        else:
            state["value"] += data[start:end]
            if len(state["value"]) > MAX_FIELD_BYTES:
                raise UploadError(f"form field '{state['name']}' is too long")

    def on_part_end() -> None:
        if state["filename"] is None and state["name"]:
            upload.fields[state["name"]] = state["value"].decode("utf-8", "replace")
        state.update(name=None, filename=None, value=bytearray(), headers={})

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except (UploadError, UploadTooLargeError):
        if upload.file is not None:
            upload.file.close()
        raise
    except Exception as error:  # the parser's own errors: malformed body
        if upload.file is not None:
            upload.file.close()
        raise UploadError(f"malformed multipart body: {error}") from error
    if upload.file is not None:
        upload.file.seek(0)
    return upload
