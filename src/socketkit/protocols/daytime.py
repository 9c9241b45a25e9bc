"""Daytime, RFC 867: the current date and time as one line of ASCII text.

The RFC fixes no syntax and suggests its own first example,
``Weekday, Month Day, Year HH:MM:SS-ZONE``; we send exactly that, in UTC
(``Tuesday, February 22, 1982 17:37:43-UTC``) plus CR LF. Names come from
our own tables and calendar arithmetic, not ``strftime`` or ``datetime``, so
neither the locale nor the time zone can change the bytes, and this module
stays free of clock-reading imports. Time is passed in (``now``), never read.

TCP: the line is sent at once, input is thrown away, then we close.
UDP: each datagram is answered with the line; the request is ignored.
"""

from __future__ import annotations

from socketkit.protocols.base import DatagramService, OutputBuffer, StreamProtocol

__all__ = ["DaytimeDatagram", "DaytimeStream", "civil_from_days", "daytime_line"]

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian calendar, ``days`` after 1970-01-01.

    Howard Hinnant's ``civil_from_days``: exact for any integer, no tables.
    """
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def daytime_line(now: float) -> bytes:
    """The reply for ``now`` (seconds since the Unix epoch, UTC), with its CR LF."""
    days, seconds = divmod(int(now // 1), 86_400)
    year, month, day = civil_from_days(days)
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    weekday = _DAYS[(days + 3) % 7]  # 1970-01-01 was a Thursday
    text = (
        f"{weekday}, {_MONTHS[month - 1]} {day}, {year} "
        f"{hour:02d}:{minute:02d}:{second:02d}-UTC\r\n"
    )
    return text.encode("ascii")


class DaytimeStream(StreamProtocol):
    def __init__(self, *, now: float = 0.0) -> None:
        super().__init__(now=now)
        self._out = OutputBuffer()
        self._out.append(daytime_line(now))

    def _on_data(self, data: bytes) -> None:
        pass  # "input is thrown away"

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        return self._out.take(max_bytes)

    def close_expected(self) -> bool:
        return not self._out


class DaytimeDatagram(DatagramService):
    def handle(self, datagram: bytes, now: float) -> list[bytes]:
        return [daytime_line(now)]
