"""``/v1/files`` wire types, in OpenAI's shape."""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict

__all__ = ["UPLOAD_PURPOSES", "DeletedFile", "FileObject"]

UPLOAD_PURPOSES = ("batch", "user_data", "assistants", "evals", "fine-tune", "vision")
"""Purposes a client may upload with (``batch_output`` files are made by batches)."""


class FileObject(TypedDict):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    expires_at: NotRequired[int]
    filename: str
    purpose: str
    status: Literal["processed"]


class DeletedFile(TypedDict):
    id: str
    object: Literal["file"]
    deleted: bool
