"""The repository's scripts under `tools/` (not packages), loaded as modules for the tests that check them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from paysync_dev.paths import repo_root


def load(script: str) -> ModuleType:
    """`tools/<script>` as a module named after it (`openapi_docs.py` → `openapi_docs_tool`)."""
    name = f"{Path(script).stem}_tool"
    spec = importlib.util.spec_from_file_location(name, repo_root() / "tools" / script)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"tools/{script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
