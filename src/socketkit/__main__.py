"""``python -m socketkit``."""

from socketkit.cli.main import entry

if __name__ == "__main__":
    entry()
