"""The public surface of runtime_core."""

from tests.public_api import assert_public_api


def test_public_api() -> None:
    assert_public_api("runtime_core", "runtime-core")


def test_every_submodule_declares_all() -> None:
    import importlib
    import pkgutil

    import runtime_core

    for info in pkgutil.walk_packages(runtime_core.__path__, "runtime_core."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), f"{info.name} has no __all__"
        assert all(hasattr(module, n) for n in module.__all__), info.name
