"""bind.py in-process: the plan's refusals, Unix socket files, and every error a person reads."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from socketkit.errors import AddressInUse, SocketkitError, UsageError
from socketkit.runtime.bind import (
    Binding,
    bind_all,
    close_bound,
    plan_bindings,
    unlink_socket,
)


def test_the_plan_refuses_what_cannot_be_served() -> None:
    with pytest.raises(UsageError, match="port names one port"):
        plan_bindings(["echo", "daytime"], port=7)
    with pytest.raises(UsageError, match="outside 0-65535"):
        plan_bindings(["echo"], port_base=65530)
    with pytest.raises(UsageError, match="nothing to serve"):
        plan_bindings(["echo"], tcp=False, udp=False)
    several = plan_bindings(["echo", "sum"], port_base=0, tcp=False, udp=False, unix="/run/sk")
    assert [b.path for b in several] == ["/run/sk/echo.sock", "/run/sk/sum.sock"]


def test_a_stale_unix_socket_file_is_replaced_and_removed_at_close(tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a crash left the file; nobody listens
    plan = plan_bindings(["echo"], tcp=False, udp=False, unix=path)
    bound = asyncio.run(bind_all(plan, 16))
    assert [b.endpoint.family for b in bound] == ["Unix"]
    close_bound(bound)
    assert not os.path.exists(path)


def test_a_unix_path_held_by_a_server_or_by_another_file_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "busy.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen(1)
        plan = plan_bindings(["echo"], tcp=False, udp=False, unix=path)
        with pytest.raises(AddressInUse, match="another server listens there"):
            asyncio.run(bind_all(plan, 16))
    regular = tmp_path / "notes.txt"
    regular.write_text("mine")
    plan = plan_bindings(["echo"], tcp=False, udp=False, unix=str(regular))
    with pytest.raises(AddressInUse, match="a file that is not a socket"):
        asyncio.run(bind_all(plan, 16))
    unlink_socket(str(regular))  # never removes a file that is not a socket
    assert regular.read_text() == "mine"


def test_a_missing_directory_says_mkdir(tmp_path: Path) -> None:
    path = str(tmp_path / "nowhere" / "echo.sock")
    plan = plan_bindings(["echo"], tcp=False, udp=False, unix=path)
    with pytest.raises(
        UsageError, match=r"its directory does not exist - create it first \(mkdir -p"
    ):
        asyncio.run(bind_all(plan, 16))


def test_all_or_nothing_a_port_in_use_leaves_nothing_bound() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        plan = [
            *plan_bindings(["daytime"], port=0, udp=False),
            Binding(plan_bindings(["echo"], port=0)[0].info, "tcp", "127.0.0.1", taken),
        ]
        with pytest.raises(AddressInUse):
            asyncio.run(bind_all(plan, 16))


def test_a_name_that_does_not_resolve_is_our_error_not_a_gaierror() -> None:
    plan = plan_bindings(["echo"], host="no-such-host.invalid", port=0, udp=False)
    with pytest.raises(SocketkitError) as caught:
        asyncio.run(bind_all(plan, 16))
    assert "no-such-host.invalid" in str(caught.value)
