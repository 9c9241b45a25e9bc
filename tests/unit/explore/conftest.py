"""The ``fake_env`` fixture: every explorer command runs on fakes (no DNS, no /proc)."""

from __future__ import annotations

import pytest

import socketkit.cli.explore as explore_cli


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> explore_cli.Environment:
    from tests.unit.explore.explore_fakes import (
        FAKE_SOCKET,
        LINUX_EPHEMERAL,
        fake_catalog,
        fake_clock,
        fake_listeners,
        fake_resolver,
    )

    ticks = fake_clock()
    env = explore_cli.Environment(
        resolver=fake_resolver(),
        catalog=fake_catalog,
        ephemeral=lambda: LINUX_EPHEMERAL,
        listeners=fake_listeners,
        clock=lambda: next(ticks),
        socket_module=FAKE_SOCKET,
    )
    monkeypatch.setattr(explore_cli, "ENVIRONMENT", env)
    return env
