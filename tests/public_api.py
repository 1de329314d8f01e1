"""Shared check of a package's public surface (STYLE: explicit `__all__`, tested)."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType


def assert_public_api(package: str, distribution: str) -> ModuleType:
    """Check `__all__` of `package`: unique, importable, complete, versioned and documented."""
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"__all__ names that do not import: {missing}"
    public = {name for name, value in vars(module).items() if not name.startswith("_") and not inspect.ismodule(value)}
    assert public <= set(exported), f"public names missing from __all__: {sorted(public - set(exported))}"
    assert module.__version__ == importlib.metadata.version(distribution)
    undocumented = [
        name
        for name in exported
        if (inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)))
        and not inspect.getdoc(getattr(module, name))
    ]
    assert undocumented == [], f"public classes and functions without a docstring: {undocumented}"
    return module
