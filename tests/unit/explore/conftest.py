"""The ``fake_env`` fixture: every explorer command runs on fakes (no DNS, no /proc)."""

from __future__ import annotations

from pathlib import Path

import pytest

import socketkit.cli.explore as explore_cli


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> explore_cli.Environment:
    from tests.unit.explore.explore_fakes import (
        FAKE_HOSTS,
        FAKE_NSSWITCH,
        FAKE_SOCKET,
        LINUX_EPHEMERAL,
        fake_catalog,
        fake_clock,
        fake_interfaces,
        fake_listeners,
        fake_resolver,
    )

    hosts = tmp_path / "hosts"
    hosts.write_text(FAKE_HOSTS)
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text(FAKE_NSSWITCH)

    ticks = fake_clock()
    env = explore_cli.Environment(
        resolver=fake_resolver(),
        catalog=fake_catalog,
        ephemeral=lambda: LINUX_EPHEMERAL,
        listeners=fake_listeners,
        clock=lambda: next(ticks),
        socket_module=FAKE_SOCKET,
        hosts_file=hosts,
        nsswitch=nsswitch,
        interfaces=fake_interfaces,
    )
    monkeypatch.setattr(explore_cli, "ENVIRONMENT", env)
    return env
