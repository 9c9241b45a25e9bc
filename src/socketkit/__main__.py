"""``python -m socketkit``."""

from socketkit.cli.main import entry

entry()
