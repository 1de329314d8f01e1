"""The release build: which modules mypyc compiles, with which mypy, and how check-planes proves it.

The compiled wheel itself is built and tested by ``scripts/check_planes.py`` (the last step of ``make
test``): its build step fails when runtime-execution's wheel lacks an extension for a listed module, and
the execution plane's tests then run on that wheel. These tests cover the rules around it.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOK = ROOT / "packages" / "runtime-execution" / "hatch_build.py"


def _check_planes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_planes", ROOT / "scripts" / "check_planes.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_planes", module)  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


check_planes = _check_planes()


def _hook_requirements() -> list[str]:
    tree = ast.parse(HOOK.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_REQUIREMENTS" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(item) for item in value]
    raise AssertionError("hatch_build.py has no _REQUIREMENTS")


def test_the_compiler_is_the_mypy_that_checks_the_workspace() -> None:
    with (ROOT / "uv.lock").open("rb") as handle:
        locked = {package["name"]: package["version"] for package in tomllib.load(handle)["package"]}
    assert f"mypy=={locked['mypy']}" in _hook_requirements()


def test_only_private_modules_of_the_agent_loop_are_compiled() -> None:
    modules = check_planes.compiled_modules("runtime-execution")
    assert "runtime_execution.loop._driver" in modules
    assert "runtime_execution.loop._recorder" in modules
    # Public classes stay ordinary Python classes: docstrings, subclassing and patching work as documented.
    public = [module for module in modules if not module.rpartition(".")[2].startswith("_")]
    assert public == []


def test_the_other_planes_compile_nothing() -> None:
    assert [dist for dist in check_planes.ALLOWED if check_planes.compiled_modules(dist)] == ["runtime-execution"]


def _wheel(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"")
    return path


def test_check_compiled_accepts_a_wheel_with_every_extension(tmp_path: Path) -> None:
    wheel = _wheel(
        tmp_path / "runtime_x-0.1.0-cp311-cp311-linux_x86_64.whl",
        ["runtime_x/a.py", "runtime_x/a.cpython-311-x86_64-linux-gnu.so", "runtime_x/b/_c.cp311-win_amd64.pyd"],
    )
    assert check_planes.check_compiled(wheel, ["runtime_x.a", "runtime_x.b._c"]) == []


def test_check_compiled_names_a_pure_wheel_and_a_missing_extension(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "runtime_x-0.1.0-py3-none-any.whl", ["runtime_x/a.py", "runtime_x/b.py"])
    problems = check_planes.check_compiled(wheel, ["runtime_x.a"])
    assert len(problems) == 2
    assert "pure-Python wheel" in problems[0]
    assert problems[1].endswith("no compiled extension for runtime_x.a")


def _build(tmp_path: Path, value: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: item for key, item in os.environ.items() if key not in {"VIRTUAL_ENV", "AGENT_RUNTIME_MYPYC"}}
    if value is not None:
        env["AGENT_RUNTIME_MYPYC"] = value
    command = [*check_planes.uv_command(), "build", "--wheel", "-o", str(tmp_path), "packages/runtime-execution"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_without_the_variable_the_wheel_is_pure_python(tmp_path: Path) -> None:
    built = _build(tmp_path, None)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert not [name for name in archive.namelist() if name.endswith((".so", ".pyd"))]


@pytest.mark.slow
def test_a_value_the_hook_cannot_mean_stops_the_build(tmp_path: Path) -> None:
    built = _build(tmp_path, "maybe")
    assert built.returncode != 0
    assert "AGENT_RUNTIME_MYPYC='maybe' is not understood" in built.stderr
    assert not list(tmp_path.glob("*.whl"))
