"""The plane import contracts of `.importlinter` (DESIGN §2) hold, and each one catches what it is meant to.

The negative cases copy every package's `src` and `.importlinter` into a scratch directory, add one
deliberately wrong module, and run `lint-imports` there with `PYTHONPATH` pointing at the scratch copies
(they shadow the editable installs of the workspace venv, whose `.pth` files come later on `sys.path`).
The positive cases prove the contracts are not broader than the design: what DESIGN §2 allows stays kept.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(path.parent.name for path in ROOT.glob("packages/*/src"))
# The console script lives next to the interpreter running the tests (the workspace venv's bin).
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


def _contract_names() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter", encoding="utf-8")
    prefix = "importlinter:contract:"
    return {section.removeprefix(prefix): parser[section]["name"] for section in parser if section.startswith(prefix)}


CONTRACTS = _contract_names()


@dataclass
class LintResult:
    returncode: int
    output: str
    kept: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)


def run_lint_imports(cwd: Path, pythonpath: list[Path] | None = None) -> LintResult:
    assert LINT_IMPORTS is not None, f"lint-imports is not installed next to {sys.executable}"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # import-linter prints through rich: a wide, colourless console keeps each contract on one line.
    env.update(COLUMNS="1000", NO_COLOR="1", TERM="dumb")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(path) for path in pythonpath)
    completed = subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = completed.stdout + completed.stderr
    result = LintResult(completed.returncode, output)
    by_name = {name: contract_id for contract_id, name in CONTRACTS.items()}
    for line in output.splitlines():
        name, _, verdict = line.strip().rpartition(" ")
        if name in by_name and verdict == "KEPT":
            result.kept.add(by_name[name])
        elif name in by_name and verdict == "BROKEN":
            result.broken.add(by_name[name])
    return result


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of every package's src and of `.importlinter`, importable through PYTHONPATH."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / "packages" / package / "src",
            tmp_path / "packages" / package / "src",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy2(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def scratch_path(scratch: Path) -> list[Path]:
    return [scratch / "packages" / package / "src" for package in PACKAGES]


def write_modules(scratch: Path, modules: Mapping[str, str]) -> None:
    """Write `{dotted.module.name: source}` into the scratch copies (new modules, or replacements)."""
    for dotted, source in modules.items():
        package, *rest = dotted.split(".")
        path = scratch / "packages" / package.replace("_", "-") / "src" / package / Path(*rest)
        path.with_suffix(".py").write_text(source, encoding="utf-8")


def test_contract_names_are_read() -> None:
    assert set(CONTRACTS) == {
        "layers",
        "execution-not-persistence",
        "core-is-pure",
        "only-persistence-uses-sql",
        "only-telemetry-uses-otel",
        "only-execution-uses-httpx",
        "acyclic",
    }
    assert len(PACKAGES) == 6


def test_contracts_hold_on_the_real_tree() -> None:
    result = run_lint_imports(ROOT)
    assert result.returncode == 0, result.output
    assert result.broken == set(), result.output
    assert result.kept == set(CONTRACTS), result.output


def test_scratch_copy_shadows_the_workspace_and_is_clean(scratch: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(path) for path in scratch_path(scratch))}
    for package in PACKAGES:
        name = package.replace("-", "_")
        completed = subprocess.run(
            [sys.executable, "-c", f"import {name}; print({name}.__file__)"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert Path(completed.stdout.strip()).is_relative_to(scratch), completed.stdout
    result = run_lint_imports(scratch, scratch_path(scratch))
    assert result.returncode == 0, result.output
    assert result.kept == set(CONTRACTS), result.output


@dataclass(frozen=True)
class Violation:
    id: str
    modules: Mapping[str, str]
    broken: frozenset[str]


VIOLATIONS = [
    Violation(
        "execution-imports-persistence",
        {"runtime_execution._bad": "import runtime_persistence\n"},
        frozenset({"execution-not-persistence"}),
    ),
    Violation(
        "execution-imports-persistence-submodule-lazily",
        {
            "runtime_persistence._store": '"""A store."""\n',
            "runtime_execution._bad": "def load() -> None:\n    from runtime_persistence import _store  # noqa\n",
        },
        frozenset({"execution-not-persistence"}),
    ),
    Violation(
        "core-imports-httpx",
        {"runtime_core._bad": "import httpx\n"},
        frozenset({"core-is-pure", "only-execution-uses-httpx"}),
    ),
    Violation(
        "core-imports-sqlalchemy",
        {"runtime_core._bad": "from sqlalchemy import select\n"},
        frozenset({"core-is-pure", "only-persistence-uses-sql"}),
    ),
    Violation(
        "core-imports-alembic",
        {"runtime_core._bad": "import alembic\n"},
        frozenset({"core-is-pure", "only-persistence-uses-sql"}),
    ),
    Violation(
        "core-imports-opentelemetry",
        {"runtime_core._bad": "from opentelemetry import trace\n"},
        frozenset({"core-is-pure", "only-telemetry-uses-otel"}),
    ),
    Violation(
        "control-imports-sqlalchemy",
        {"runtime_control._bad": "import sqlalchemy\n"},
        frozenset({"only-persistence-uses-sql"}),
    ),
    Violation(
        "facade-imports-sqlalchemy",
        {"runtime_facade._bad": "import sqlalchemy\n"},
        frozenset({"only-persistence-uses-sql"}),
    ),
    Violation(
        "persistence-imports-opentelemetry",
        {"runtime_persistence._bad": "import opentelemetry.trace\n"},
        frozenset({"only-telemetry-uses-otel"}),
    ),
    Violation(
        "telemetry-imports-httpx",
        {"runtime_telemetry._bad": "import httpx\n"},
        frozenset({"only-execution-uses-httpx"}),
    ),
    Violation(
        "core-imports-facade",
        {"runtime_core._bad": "import runtime_facade\n"},
        frozenset({"layers"}),
    ),
    Violation(
        "telemetry-imports-control",
        {"runtime_telemetry._bad": "import runtime_control\n"},
        frozenset({"layers"}),
    ),
    Violation(
        "control-imports-persistence-sibling",
        {"runtime_control._bad": "import runtime_persistence\n"},
        frozenset({"layers"}),
    ),
    Violation(
        "persistence-imports-control-sibling",
        {"runtime_persistence._bad": "import runtime_control\n"},
        frozenset({"layers"}),
    ),
    Violation(
        "cycle-inside-core",
        {
            "runtime_core._cyc_a": "from runtime_core import _cyc_b  # noqa\n",
            "runtime_core._cyc_b": "from runtime_core import _cyc_a  # noqa\n",
        },
        frozenset({"acyclic"}),
    ),
    Violation(
        "cycle-inside-execution",
        {
            "runtime_execution._cyc_a": "import runtime_execution._cyc_b\n",
            "runtime_execution._cyc_b": "import runtime_execution._cyc_a\n",
        },
        frozenset({"acyclic"}),
    ),
]


@pytest.mark.parametrize("violation", VIOLATIONS, ids=[violation.id for violation in VIOLATIONS])
def test_violation_breaks_its_contract(scratch: Path, violation: Violation) -> None:
    write_modules(scratch, violation.modules)
    result = run_lint_imports(scratch, scratch_path(scratch))
    assert result.returncode != 0, result.output
    # Subset, not equality: a wrong import can also break a contract through what it pulls in indirectly.
    assert violation.broken <= result.broken, result.output
    for contract_id in violation.broken:
        assert f"{CONTRACTS[contract_id]} BROKEN" in result.output


ALLOWED = [
    pytest.param({"runtime_execution._ok": "import httpx\n"}, id="execution-imports-httpx"),
    pytest.param({"runtime_facade._ok": "import httpx\n"}, id="facade-imports-httpx"),
    pytest.param({"runtime_facade._ok": "import opentelemetry.trace\n"}, id="facade-imports-opentelemetry"),
    pytest.param({"runtime_telemetry._ok": "import opentelemetry.trace\n"}, id="telemetry-imports-opentelemetry"),
    pytest.param({"runtime_persistence._ok": "import alembic\nimport sqlalchemy\n"}, id="persistence-imports-sql"),
    pytest.param(
        {"runtime_execution._ok": "import runtime_control\nimport runtime_core\nimport runtime_telemetry\n"},
        id="execution-imports-planes-below",
    ),
    pytest.param(
        {
            "runtime_facade._ok": "\n".join(
                f"import runtime_{plane}" for plane in ("core", "telemetry", "control", "persistence", "execution")
            )
            + "\n"
        },
        id="facade-imports-every-plane",
    ),
    pytest.param(
        {
            "runtime_telemetry._spans": "import opentelemetry.trace\n",
            "runtime_control._ok": "from runtime_telemetry import _spans  # noqa\n",
            "runtime_persistence._ok": "from runtime_telemetry import _spans  # noqa\n",
            "runtime_execution._ok": "from runtime_telemetry import _spans  # noqa\n",
        },
        id="planes-reach-opentelemetry-through-telemetry",
    ),
    pytest.param(
        {
            "runtime_persistence._sql": "import sqlalchemy\n",
            "runtime_facade._ok": "from runtime_persistence import _sql  # noqa\n",
        },
        id="facade-reaches-sqlalchemy-through-persistence",
    ),
]


@pytest.mark.parametrize("modules", ALLOWED)
def test_allowed_imports_keep_every_contract(scratch: Path, modules: Mapping[str, str]) -> None:
    write_modules(scratch, modules)
    result = run_lint_imports(scratch, scratch_path(scratch))
    assert result.returncode == 0, result.output
    assert result.kept == set(CONTRACTS), result.output
