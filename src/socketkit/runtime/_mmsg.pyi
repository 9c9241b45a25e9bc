"""Types of the native helper (``_mmsg.c``): batched UDP receive and send."""

from typing import Any

class Batch:
    slots: int
    def __init__(self, fd: int, family: int, slots: int = 64, slot_size: int = 65536) -> None: ...
    def recv(self, limit: int = ...) -> list[tuple[bytes, Any]]: ...
    def send(
        self, replies: list[tuple[bytes, Any]]
    ) -> tuple[int, int, list[tuple[int, int]] | None]: ...
