"""Multipart uploads: parsed as they stream in, then checked against the caller's rights."""
