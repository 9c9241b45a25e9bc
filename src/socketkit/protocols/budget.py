"""Datagram services that can shape their reply to a byte budget.

The runtime's UDP guard gives each reply a budget (by default: no more bytes
than the request, for sources that could be spoofed). A service whose reply
still means something when shorter (chargen: "0 to 512 characters"; qotd: a
quote cut short) implements ``handle_within`` and answers with what fits; any
other service is answered in full or not at all, because half a timestamp is
worse than none.
"""

from __future__ import annotations

from abc import abstractmethod

from socketkit.protocols.base import DatagramService

__all__ = ["BudgetedDatagramService"]


class BudgetedDatagramService(DatagramService):
    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        replies, _ = self.handle_within(datagram, now, None)
        return replies

    @abstractmethod
    def handle_within(
        self, datagram: bytes, now: float, max_bytes: int | None
    ) -> tuple[list[bytes], bool]:
        """Replies whose total size is at most ``max_bytes`` (``None``: no budget), and
        whether the budget made them shorter than the full answer."""
