"""Streaming multipart uploads: the file part goes to a spooled temporary file as it
arrives (bounded memory), with every limit enforced while reading (SPEC §12): the file's
size, the number of form fields and the length of each, the length of each part's
headers, and the body as a whole."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

SPOOL_BYTES = 4 * 1024 * 1024
#: At most this many parts (form fields, the file among them) in one body.
MAX_FORM_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
MAX_PART_HEADER_BYTES = 16 * 1024
#: Room for the boundaries, a preamble and an epilogue.
_FRAMING_BYTES = 64 * 1024


def max_body_bytes(max_file_bytes: int) -> int:
    """The longest multipart body an upload of at most ``max_file_bytes`` may have: the
    file, the fields and their headers, the framing."""
    parts = MAX_FORM_FIELDS * (MAX_FIELD_BYTES + MAX_PART_HEADER_BYTES)
    return max_file_bytes + parts + _FRAMING_BYTES


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


class _Refused(Exception):
    """Carries what ``on_field`` raised out of the parser, untouched."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


async def parse_multipart(
    content_type: str,
    chunks: AsyncIterator[bytes],
    max_file_bytes: int,
    on_field: Callable[[str, str], None] | None = None,
) -> ParsedUpload:
    """Parse a ``multipart/form-data`` body as it streams in. ``on_field(name, value)`` is
    called as each form field (not the file) is complete, so a caller can refuse the
    upload from a field sent before the file: whatever it raises ends the parse."""
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
        "header_bytes": 0,
        "parts": 0,
    }

    def count_header_bytes(size: int) -> None:
        state["header_bytes"] += size
        if state["header_bytes"] > MAX_PART_HEADER_BYTES:
            raise UploadTooLargeError(
                f"a part's headers are longer than the limit of {MAX_PART_HEADER_BYTES} bytes"
            )

    def on_part_begin() -> None:
        state["parts"] += 1
        if state["parts"] > MAX_FORM_FIELDS:
            raise UploadTooLargeError(f"more than the limit of {MAX_FORM_FIELDS} form fields")
        state["header_bytes"] = 0

    def on_header_field(data: bytes, start: int, end: int) -> None:
        count_header_bytes(end - start)
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        count_header_bytes(end - start)
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
                raise UploadTooLargeError(
                    f"form field '{state['name']}' is longer than the limit of "
                    f"{MAX_FIELD_BYTES} bytes"
                )

    def on_part_end() -> None:
        if state["filename"] is None and state["name"]:
            name, value = state["name"], state["value"].decode("utf-8", "replace")
            upload.fields[name] = value
            if on_field is not None:
                try:
                    on_field(name, value)
                except Exception as error:
                    raise _Refused(error) from error
        state.update(name=None, filename=None, value=bytearray(), headers={})

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    longest = max_body_bytes(max_file_bytes)
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > longest:
                raise UploadTooLargeError(
                    f"request body is larger than the limit of {longest} bytes"
                )
            parser.write(chunk)
        parser.finalize()
    except (UploadError, UploadTooLargeError):
        if upload.file is not None:
            upload.file.close()
        raise
    except _Refused as refused:
        if upload.file is not None:
            upload.file.close()
        raise refused.error from None
    except Exception as error:  # the parser's own errors: malformed body
        if upload.file is not None:
            upload.file.close()
        raise UploadError(f"malformed multipart body: {error}") from error
    if upload.file is not None:
        upload.file.seek(0)
    return upload
