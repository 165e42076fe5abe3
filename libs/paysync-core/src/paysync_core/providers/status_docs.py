"""Render every adapter's status tables as the Markdown in `libs/paysync-core/docs/status-tables.md`.

Run `python -m paysync_core.providers.status_docs > libs/paysync-core/docs/status-tables.md`.
"""

from __future__ import annotations

from paysync_core.providers import ADAPTERS
from paysync_core.providers.tables import StatusTable, render_markdown


def all_sections() -> tuple[tuple[str, tuple[StatusTable, ...]], ...]:
    """Every adapter's tables, titled by gateway."""
    from paysync_core.providers.clients import STATUS_TABLES as QUERY_TABLES

    webhooks = tuple((adapter.provider.display_name, adapter.status_tables) for adapter in ADAPTERS.values())
    return (*webhooks, ("Objects read by the query clients", QUERY_TABLES))


def render() -> str:
    """The Markdown for every adapter's status tables."""
    return render_markdown(all_sections())


def main() -> None:
    """Print the Markdown rendering."""
    print(render(), end="")


if __name__ == "__main__":
    main()
