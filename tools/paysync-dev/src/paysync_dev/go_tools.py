"""Go programs the tests need (stripe-mock, kustomize), built once with `go install` into `.cache/bin`.

`make test` builds them first; a test that needs one builds it there too when it is missing, so a
single test file runs on a fresh checkout. Without Go they cannot be built: the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from paysync_dev import paths


def binary(name: str) -> Path:
    """Where `make test` puts the program `name` (`GOBIN=.cache/bin go install ...`)."""
    return paths.repo_root() / ".cache" / "bin" / name


def ensure_installed(name: str, package: str, version: str) -> Path:
    """The program `name`, built with `go install package@version` when missing; RuntimeError without Go."""
    target = binary(name)
    if target.is_file():
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            f"{name} is not built ({target}) and `go` is not on PATH: install Go "
            f"or run `make test`, which builds it with `go install {package}@{version}`"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(target.parent)}
    result = subprocess.run(
        [go, "install", f"{package}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0 or not target.is_file():
        raise RuntimeError(f"`go install {package}@{version}` failed:\n{result.stderr[-2000:]}")
    return target
