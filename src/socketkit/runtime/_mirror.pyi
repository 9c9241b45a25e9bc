"""Types of the native echo relay (``_mirror.c``)."""

from collections.abc import Callable

WANT_WRITE: int
PAUSE: int
DRAINED: int
RESUME: int
END_OF_INPUT: int
FAILED: int
READ_SIZE: int

class Mirror:
    bytes_in: int
    bytes_out: int
    pending: int
    error: int
    def __init__(
        self,
        fd: int,
        on_event: Callable[[int], None],
        high: int = ...,
        low: int = ...,
        chunk: int = ...,
    ) -> None: ...
    def __call__(self) -> None: ...
    def flush(self) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> None: ...
