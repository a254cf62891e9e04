"""What a use case refuses, by kind: the API answers each kind with its own status code
(404, 409, 422) and the exception's message as the detail."""

from __future__ import annotations


class NotFoundError(LookupError):
    """A record the request names does not exist."""


class ConflictError(Exception):
    """The request conflicts with the current state of a record."""


class RefusedError(ValueError):
    """Well-formed values that the rules refuse."""
