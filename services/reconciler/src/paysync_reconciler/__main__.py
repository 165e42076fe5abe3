"""Run the reconciler: `paysync-reconciler` (serve), `paysync-reconciler tick --tenant T --provider P`."""

from __future__ import annotations

from paysync_reconciler.cli import app


def main() -> None:
    """The command line; with no arguments it serves until SIGTERM."""
    app()


if __name__ == "__main__":
    main()
