"""Hatch build hook: compile the agent loop's hot modules with mypyc when ``AGENT_RUNTIME_MYPYC=1``.

With the variable unset (or ``0``), a wheel build is the ordinary pure-Python ``py3-none-any`` wheel and
this hook does nothing. With ``AGENT_RUNTIME_MYPYC=1`` a wheel build (never an editable install) runs
mypyc, mypy's compiler, over the modules listed under ``modules`` in ``pyproject.toml`` and ships the
resulting C extensions beside their ``.py`` sources, so the wheel becomes platform-specific
(``cp311-cp311-linux_x86_64`` and so on). Python imports an extension module before a source module of
the same name, so the ``.py`` files are the source of tracebacks and the reference, not what runs.

Everything is built in a temporary directory: nothing is written into the source tree, so an editable
install of the same checkout can never pick up a stale compiled module.

The compile needs a C compiler and the Python headers, as building any C extension does. Only when the
variable is set does the hook ask the build frontend for its requirements: mypy (pinned to the version in
``uv.lock`` that type-checks the workspace), setuptools (which drives the C compiler) and the package's
own runtime dependencies, so that mypyc sees the types of the sibling planes that ``mypy --strict`` checks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENVIRONMENT_VARIABLE = "AGENT_RUNTIME_MYPYC"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
# The mypy that type-checks the workspace (uv.lock) compiles it, so both read the code the same way
# (tests/test_build.py keeps the two versions equal).
_REQUIREMENTS = ["mypy==2.4.1", "setuptools>=75"]
# The one shared library holding every compiled module; each module gets a small shim extension.
_GROUP = "runtime_execution"
_MYPY_CONFIG = """\
[mypy]
follow_imports = silent
cache_dir = {cache}
"""


def compile_requested() -> bool:
    """Return whether ``AGENT_RUNTIME_MYPYC`` asks for the compiled build; reject values it cannot mean."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not understood: "
        "set it to 1 to compile the agent loop with mypyc, or to 0 (or leave it unset) for pure Python"
    )


class MypycBuildHook(BuildHookInterface):
    """Compile ``modules`` with mypyc into the wheel when ``AGENT_RUNTIME_MYPYC=1``."""

    _work: Path | None = None  # the temporary build directory, from `initialize` until `finalize`

    def dependencies(self) -> list[str]:
        """The compiler and the package's own dependencies, for a compiled wheel only."""
        if self.target_name != "wheel" or not compile_requested():
            return []
        return [*_REQUIREMENTS, *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile the modules and add their extensions to the wheel, which becomes platform-specific."""
        if self.target_name != "wheel" or not compile_requested():
            return
        if version == "editable":
            self.app.display_info(f"{ENVIRONMENT_VARIABLE}: an editable install is always pure Python")
            return
        sources = self._sources()
        self._work = Path(tempfile.mkdtemp(prefix="runtime-execution-mypyc-"))
        try:
            built = self._compile(sources, self._work)
        except BaseException:
            self._remove_work()
            raise
        for path in built:
            build_data["force_include"][str(path)] = path.relative_to(self._work / "lib").as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self.app.display_info(f"mypyc: compiled {len(sources)} modules into {len(built)} extensions")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary build directory once the wheel holds the extensions."""
        self._remove_work()

    def _remove_work(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def _sources(self) -> list[Path]:
        patterns = self.config.get("modules", [])
        if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
            raise TypeError("[tool.hatch.build.targets.wheel.hooks.custom] modules must be a list of glob patterns")
        root = Path(self.root)
        sources: set[Path] = set()
        for pattern in patterns:
            matched = sorted(root.glob(pattern))
            if not matched:
                raise ValueError(f"mypyc: the pattern {pattern!r} in `modules` matches no file under {root}")
            sources.update(path for path in matched if path.suffix == ".py")
        return sorted(sources)

    def _compile(self, sources: list[Path], work: Path) -> list[Path]:
        # Imported here: these are the hook's own requirements, present only when it asked for them.
        from mypyc.build import mypycify
        from setuptools import Distribution

        config = work / "mypy.ini"
        config.write_text(_MYPY_CONFIG.format(cache=work / "cache"), encoding="utf-8")
        previous = Path.cwd()
        os.chdir(work)  # mypy and setuptools write relative paths (caches, objects) under the current directory
        try:
            extensions = mypycify(
                ["--config-file", str(config), *map(str, sources)],
                target_dir=str(work / "c"),
                group_name=_GROUP,
            )
            distribution = Distribution({"name": "runtime-execution-mypyc", "ext_modules": extensions})
            command: Any = distribution.get_command_obj("build_ext")
            command.build_lib = str(work / "lib")
            command.build_temp = str(work / "temp")
            command.ensure_finalized()
            command.run()
        except SystemExit as error:  # mypyc reports type errors by exiting
            raise RuntimeError(f"mypyc could not compile the modules (exit status {error.code}); see above") from None
        finally:
            os.chdir(previous)
        built = sorted(path for path in (work / "lib").rglob("*") if path.suffix in {".so", ".pyd"})
        if not built:
            raise RuntimeError(f"mypyc produced no extension module in {work / 'lib'}")
        return built
