"""Where the repository is and where local infrastructure keeps its state."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

LOCAL_DIR_ENV = "PAYSYNC_LOCAL_DIR"


def _is_workspace_root(directory: Path) -> bool:
    """Tell whether a directory is the uv workspace root."""
    if (directory / "uv.lock").is_file():
        return True
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return "workspace" in data.get("tool", {}).get("uv", {})


def _walk_up(start: Path) -> Path | None:
    """Return the first workspace root at or above start."""
    for directory in (start, *start.parents):
        if _is_workspace_root(directory):
            return directory
    return None


def repo_root() -> Path:
    """Return the repository root (the directory holding uv.lock / the uv workspace)."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        found = _walk_up(start)
        if found is not None:
            return found
    raise RuntimeError(
        f"cannot find the paysync repository root (a directory with uv.lock or a pyproject.toml "
        f"with [tool.uv.workspace]) above {Path(__file__).resolve()} or {Path.cwd()}"
    )


def local_dir() -> Path:
    """Return the git-ignored state directory ($PAYSYNC_LOCAL_DIR or <root>/.local)."""
    override = os.environ.get(LOCAL_DIR_ENV)
    path = Path(override).expanduser() if override else repo_root() / ".local"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def kafka_dir() -> Path:
    """Return the dev broker's directory (holds libs/, data/, logs/)."""
    return local_dir() / "kafka"


def kafka_libs_dir() -> Path:
    """Return the directory of the Kafka classpath jars."""
    return kafka_dir() / "libs"


def kafka_test_dir() -> Path:
    """Return the test-session broker's directory, separate from the dev broker."""
    return local_dir() / "test-kafka"


def postgres_dir() -> Path:
    """Return the directory for PostgreSQL helper state (install logs)."""
    path = local_dir() / "postgres"
    path.mkdir(parents=True, exist_ok=True)
    return path


def kafka_infra_dir() -> Path:
    """Return infra/kafka, which holds the pom and the log4j2 config."""
    return repo_root() / "infra" / "kafka"
