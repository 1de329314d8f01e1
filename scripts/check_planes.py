"""Plane isolation check: each of the six wheels installs, imports and passes its tests on its own.

DESIGN §2 requires that every distribution "installs and imports alone with only its declared
dependencies". This script proves it, without trusting the developer's workspace environment:

1. Build every wheel of the workspace into a temporary directory (``uv build --all-packages --wheel``)
   the way a release is built: with ``AGENT_RUNTIME_MYPYC=1``, so a distribution whose build hook lists
   modules to compile (``[tool.hatch.build.targets.wheel.hooks.custom] modules``) ships them as mypyc C
   extensions. Its wheel must be platform-specific and hold an extension for every listed module.
2. For each distribution, in dependency order: create a fresh virtual environment, install only that
   wheel (siblings resolve from the freshly built wheels through ``--find-links``, third-party packages
   from the index), then, inside that environment:

   - import every module of the package (found with ``pkgutil.walk_packages``, never a fixed list) and
     report each failure with its traceback. A module may need an optional extra of its distribution
     only if its ``ImportError`` names it (``runtime-persistence[postgres]``, STYLE: "a missing optional
     dependency raises an ImportError that names the extra"); such modules are listed, not failed;
   - check that ``py.typed`` ships in the installed package;
   - check that the distribution's requirements pin exactly the siblings ``ALLOWED`` gives it (exact
     ``==`` pins on the shared version, no markers), that the environment holds no other sibling, and
     that every installed sibling is byte-for-byte the wheel just built (not a stale cache entry or a
     same-named package from the index).
3. Unless ``--skip-tests``: run the plane's own tests (``tests/<plane>``) against the wheels just built
   (compiled modules included), in a project environment of its own: ``uv sync --frozen --exact
   --package <dist> --all-extras --group dev --no-install-workspace`` installs the third-party
   dependencies, extras and dev tools, then the wheels of the plane and of the siblings it depends on
   are installed, so that nothing else of the workspace is importable. A plane without test files yet
   is reported as such and is not a failure.

Usage::

    python scripts/check_planes.py [--skip-tests] [--keep]

The exit status is 0 when every check passed, 1 when any failed and 2 when the check could not run.
The script uses the standard library only, so that it can also run as the probe inside each fresh
environment (``--probe``, internal).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast

ROOT = Path(__file__).resolve().parent.parent

# DESIGN §2: the sibling distributions each plane may depend on, in dependency order. This is the one
# place the table lives; `.importlinter` states the same rules for imports.
ALLOWED: dict[str, frozenset[str]] = {
    "runtime-core": frozenset(),
    "runtime-telemetry": frozenset({"runtime-core"}),
    "runtime-control": frozenset({"runtime-core", "runtime-telemetry"}),
    "runtime-persistence": frozenset({"runtime-core", "runtime-telemetry"}),
    "runtime-execution": frozenset({"runtime-core", "runtime-control", "runtime-telemetry"}),
    "runtime-facade": frozenset(
        {"runtime-core", "runtime-telemetry", "runtime-control", "runtime-persistence", "runtime-execution"}
    ),
}

STEPS = ("venv", "install", "import", "py.typed", "requires", "origin", "tests")
_OK, _FAIL, _SKIP = "ok", "FAIL", "skip"
_OUTPUT_TAIL = 200  # lines of a failing command's output worth showing in a CI log
_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*?)\s*(?:;\s*(?P<marker>.*))?$"
)

# Set for the build: the wheels are built as a release builds them, with the modules each distribution's
# build hook lists compiled by mypyc (see packages/runtime-execution/hatch_build.py).
COMPILE_VARIABLE = "AGENT_RUNTIME_MYPYC"
_EXTENSION = re.compile(r"^(?P<module>.+?)\.[^./]+\.(?:so|pyd)$")  # runtime_x/m.cpython-311-x86_64-linux-gnu.so

_EXTRA_ONLY = re.compile(r"""^extra\s*==\s*["'][A-Za-z0-9._-]+["']$""")


def normalize(name: str) -> str:
    """Return the PEP 503 normalized form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def import_name(dist: str) -> str:
    """Return the import name of a workspace distribution (``runtime-core`` -> ``runtime_core``)."""
    return dist.replace("-", "_")


def plane_of(dist: str) -> str:
    """Return the plane (and tests directory) name of a distribution (``runtime-core`` -> ``core``)."""
    return dist.removeprefix("runtime-")


def closure(dist: str) -> frozenset[str]:
    """Return the siblings a distribution pulls in, directly or transitively, including itself."""
    seen: set[str] = set()
    stack = [dist]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(ALLOWED[current])
    return frozenset(seen)


# --------------------------------------------------------------------------------------------------
# Probe: runs inside each fresh environment (stdlib only, started with `python -I`).
# --------------------------------------------------------------------------------------------------


class InstalledDist(TypedDict):
    """A sibling distribution found in the probed environment."""

    version: str
    files: dict[str, str]


class ProbeReport(TypedDict):
    """What the probe found in one environment, written as JSON for the parent process."""

    package: str
    location: str | None
    in_environment: bool
    version: str
    requires: list[str]
    imported: list[str]
    failures: dict[str, str]
    needs_extra: dict[str, str]
    skipped: list[str]
    py_typed: bool
    installed: dict[str, InstalledDist]


def _named_extra(error: BaseException | None, dist: str, extras: Sequence[str]) -> str | None:
    """Return the extra of ``dist`` an ImportError names (``dist[extra]``), if any."""
    if not isinstance(error, ImportError):
        return None
    message = str(error).lower()
    return next((extra for extra in extras if f"{dist}[{extra}]".lower() in message), None)


def probe(dist: str, out: Path) -> int:
    """Import every module of ``dist``'s package in this interpreter and write a `ProbeReport` to ``out``."""
    import importlib
    import importlib.metadata as metadata
    import importlib.util
    import pkgutil
    import traceback

    package = import_name(dist)
    extras = metadata.metadata(dist).get_all("Provides-Extra") or []
    imported: list[str] = []
    failures: dict[str, str] = {}
    needs_extra: dict[str, str] = {}
    skipped: list[str] = []

    def record_failure(name: str) -> None:
        # Called from `except` blocks (ours and pkgutil's onerror), so the exception is current.
        extra = _named_extra(sys.exc_info()[1], dist, extras)
        if extra is not None:
            needs_extra[name] = extra
        else:
            failures[name] = traceback.format_exc()

    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    location = locations[0] if locations else None
    prefix = Path(sys.prefix).resolve()
    try:
        root = importlib.import_module(package)
    except Exception:
        record_failure(package)
    else:
        imported.append(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.", onerror=record_failure):
            if info.name.rpartition(".")[2] == "__main__":
                skipped.append(info.name)  # importing a __main__ module would run the program
                continue
            try:
                importlib.import_module(info.name)
            except Exception:
                record_failure(info.name)
            else:
                imported.append(info.name)

    installed: dict[str, InstalledDist] = {}
    for distribution in metadata.distributions():
        name = normalize(distribution.metadata["Name"])
        if name in ALLOWED:
            files = {str(path): f"{path.hash.mode}={path.hash.value}" for path in distribution.files or [] if path.hash}
            installed[name] = InstalledDist(version=distribution.version, files=files)

    report = ProbeReport(
        package=package,
        location=location,
        in_environment=location is not None and Path(location).resolve().is_relative_to(prefix),
        version=metadata.version(dist),
        requires=metadata.requires(dist) or [],
        imported=imported,
        failures={name: failures[name] for name in sorted(failures)},
        needs_extra=needs_extra,
        skipped=skipped,
        py_typed=location is not None and (Path(location) / "py.typed").is_file(),
        installed=installed,
    )
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------------------
# Checks of a probe report (run in the parent process).
# --------------------------------------------------------------------------------------------------


def check_requires(dist: str, report: ProbeReport) -> list[str]:
    """Return the problems with ``dist``'s declared sibling requirements and installed siblings."""
    problems: list[str] = []
    siblings: dict[str, str] = {}
    for requirement in report["requires"]:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            problems.append(f"cannot parse requirement {requirement!r}")
            continue
        name = normalize(match["name"])
        if name not in ALLOWED:
            continue
        if match["marker"] and _EXTRA_ONLY.match(match["marker"]):
            # An extra that adds a sibling's own extra (runtime-facade[postgres] -> runtime-persistence[postgres]):
            # still an exact pin on a sibling DESIGN §2 allows, but not a requirement of the base install.
            if name not in ALLOWED[dist]:
                problems.append(f"an extra requires a sibling DESIGN §2 does not allow: {requirement!r}")
            if match["spec"].replace(" ", "") != f"=={report['version']}":
                problems.append(f"sibling requirement is not an exact pin on {report['version']}: {requirement!r}")
            continue
        siblings[name] = requirement
        if match["marker"]:
            problems.append(f"sibling requirement with a marker: {requirement!r}")
        if match["spec"].replace(" ", "") != f"=={report['version']}":
            problems.append(f"sibling requirement is not an exact pin on {report['version']}: {requirement!r}")
    if missing := ALLOWED[dist] - siblings.keys():
        problems.append(f"missing sibling requirements: {', '.join(sorted(missing))}")
    if extra := siblings.keys() - ALLOWED[dist]:
        problems.append(f"sibling requirements DESIGN §2 does not allow: {', '.join(sorted(extra))}")
    if unexpected := report["installed"].keys() - closure(dist):
        problems.append(f"environment holds siblings it should not: {', '.join(sorted(unexpected))}")
    return problems


def wheel_record(wheel: Path) -> dict[str, str]:
    """Return ``{path: hash}`` of a wheel's RECORD, without its own ``.dist-info`` files."""
    with zipfile.ZipFile(wheel) as archive:
        record_name = next(name for name in archive.namelist() if name.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(archive.read(record_name).decode("utf-8")))
        return {row[0]: row[1] for row in rows if row and row[1] and ".dist-info/" not in row[0]}


def check_origin(report: ProbeReport, wheels: Mapping[str, Path]) -> list[str]:
    """Return the installed siblings whose files differ from the wheels built by this run."""
    problems: list[str] = []
    for name, installed in sorted(report["installed"].items()):
        expected = wheel_record(wheels[name])
        # Files outside site-packages ("../../../bin/agent-runtime") are console scripts the installer
        # generates for this environment: they are not in the wheel, so they cannot be compared with it.
        actual = {
            path: digest
            for path, digest in installed["files"].items()
            if ".dist-info/" not in path and not path.startswith("../")
        }
        if actual != expected:
            differing = sorted(path for path in {*expected, *actual} if expected.get(path) != actual.get(path))
            problems.append(f"{name} is not the wheel built by this run (differs in {', '.join(differing[:5])})")
    return problems


# --------------------------------------------------------------------------------------------------
# Driver.
# --------------------------------------------------------------------------------------------------


@dataclass
class StepResult:
    """The outcome of one step of one plane."""

    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class PlaneResult:
    """The outcomes of every step of one plane."""

    dist: str
    steps: dict[str, StepResult] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        """Names of the steps that failed."""
        return [name for name, step in self.steps.items() if step.status == _FAIL]

    @property
    def seconds(self) -> float:
        """Total time spent on this plane."""
        return sum(step.seconds for step in self.steps.values())


@dataclass
class CommandResult:
    """A finished subprocess: success, duration and combined output."""

    ok: bool
    seconds: float
    output: str


class Runner:
    """Runs the commands of the check and prints one progress line per step."""

    def __init__(self, uv: list[str], env: dict[str, str]) -> None:
        self.uv = uv
        self.env = env

    def run(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> CommandResult:
        """Run a command to completion, capturing stdout and stderr together."""
        start = time.perf_counter()
        completed = subprocess.run(
            list(args),
            cwd=cwd,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        return CommandResult(completed.returncode == 0, time.perf_counter() - start, completed.stdout)

    def uv_run(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> CommandResult:
        """Run a uv subcommand."""
        return self.run([*self.uv, *args], env=env, cwd=cwd)


def report_step(result: PlaneResult, step: str, outcome: StepResult, output: str = "") -> None:
    """Record a step's outcome and print its progress line (and, for a failure, its evidence)."""
    result.steps[step] = outcome
    timing = f"{outcome.seconds:6.2f}s" if outcome.seconds else " " * 7
    print(f"  {plane_of(result.dist):<12} {step:<9} {outcome.status:<5} {timing}  {outcome.detail}".rstrip())
    if output.strip() and outcome.status == _FAIL:
        print(indent(tail(output)))


def status(ok: bool) -> str:
    """Return the status word of a step that passed (``ok``) or failed."""
    return _OK if ok else _FAIL


def tail(text: str, lines: int = _OUTPUT_TAIL) -> str:
    """Return the last ``lines`` lines of ``text``."""
    kept = text.rstrip().splitlines()
    prefix = [f"... ({len(kept) - lines} earlier lines omitted)"] if len(kept) > lines else []
    return "\n".join([*prefix, *kept[-lines:]])


def indent(text: str) -> str:
    """Indent a block of evidence under its progress line."""
    return "\n".join(f"      | {line}" for line in text.splitlines())


def plane_test_files(plane: str) -> list[Path]:
    """Return the pytest files of a plane (``tests/<plane>/**/test_*.py`` and ``*_test.py``)."""
    directory = ROOT / "tests" / plane
    if not directory.is_dir():
        return []
    return sorted({*directory.rglob("test_*.py"), *directory.rglob("*_test.py")})


def check_plane(runner: Runner, dist: str, wheels: Mapping[str, Path], tmp: Path, *, run_tests: bool) -> PlaneResult:
    """Run every step of the check for one distribution."""
    result = PlaneResult(dist)
    venv = tmp / f"venv-{dist}"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    created = runner.uv_run("venv", "--python", sys.executable, str(venv))
    report_step(result, "venv", StepResult(status(created.ok), created.seconds), created.output)
    installed = None
    if created.ok:
        installed = runner.uv_run(
            "pip", "install", "--python", str(python), "--find-links", str(wheels[dist].parent), str(wheels[dist])
        )
        detail = f"only {wheels[dist].name}"
        report_step(result, "install", StepResult(status(installed.ok), installed.seconds, detail), installed.output)
    if installed is not None and installed.ok:
        probe_plane(runner, result, python, wheels, tmp)
    else:
        for step in ("install", "import", "py.typed", "requires", "origin"):
            result.steps.setdefault(step, StepResult(_SKIP, detail="not installed"))

    if run_tests:
        run_plane_tests(runner, result, wheels, tmp)
    else:
        report_step(result, "tests", StepResult(_SKIP, detail="--skip-tests"))
    return result


def probe_plane(runner: Runner, result: PlaneResult, python: Path, wheels: Mapping[str, Path], tmp: Path) -> None:
    """Import the plane in its fresh environment and check what the probe found."""
    dist = result.dist
    out = tmp / f"probe-{dist}.json"
    # -I: ignore PYTHONPATH and the user site, and keep this script's directory off sys.path.
    probed = runner.run([str(python), "-I", str(Path(__file__).resolve()), "--probe", dist, "--out", str(out)], cwd=tmp)
    if not probed.ok or not out.is_file():
        report_step(result, "import", StepResult(_FAIL, probed.seconds, "probe crashed"), probed.output)
        for step in ("py.typed", "requires", "origin"):
            result.steps[step] = StepResult(_SKIP, detail="probe crashed")
        return
    report = cast(ProbeReport, json.loads(out.read_text(encoding="utf-8")))

    failures = report["failures"]
    notes = [f"{len(report['imported'])} modules"]
    notes += [f"{name} needs [{extra}]" for name, extra in sorted(report["needs_extra"].items())]
    notes += [f"{name} not imported" for name in report["skipped"]]
    if failures:
        notes.insert(0, f"{len(failures)} failed: {', '.join(failures)}")
    evidence = "\n".join(f"{name}:\n{trace}" for name, trace in failures.items())
    if not report["in_environment"]:
        failures = {**failures, report["package"]: f"imported from {report['location']}, outside the fresh venv"}
        evidence += f"\n{report['package']} resolved to {report['location']}, not the fresh environment"
    imported = bool(report["imported"]) and not failures
    report_step(result, "import", StepResult(status(imported), probed.seconds, "; ".join(notes)), evidence)

    where = f"in {report['location']}" if report["py_typed"] else f"missing from {report['location']}"
    report_step(result, "py.typed", StepResult(status(report["py_typed"]), detail=where))

    problems = check_requires(dist, report)
    siblings = ", ".join(plane_of(name) for name in sorted(ALLOWED[dist])) or "none"
    detail = f"sibling pins allowed by DESIGN §2: {siblings}"
    report_step(result, "requires", StepResult(status(not problems), detail=detail), "\n".join(problems))

    problems = check_origin(report, wheels)
    detail = f"{len(report['installed'])} installed sibling wheel(s) are this build's"
    report_step(result, "origin", StepResult(status(not problems), detail=detail), "\n".join(problems))


def run_plane_tests(runner: Runner, result: PlaneResult, wheels: Mapping[str, Path], tmp: Path) -> None:
    """Run ``tests/<plane>`` on the built wheels: the plane, its siblings, extras and dev tools, nothing else."""
    plane = plane_of(result.dist)
    files = plane_test_files(plane)
    if not files:
        report_step(result, "tests", StepResult(_SKIP, detail=f"no test files in tests/{plane}/ yet"))
        return
    # A project environment of its own: `--exact` would otherwise strip the developer's .venv.
    environment = tmp / f"env-{result.dist}"
    python = environment / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    synced = runner.uv_run(
        *("sync", "--frozen", "--exact", "--package", result.dist, "--all-extras", "--group", "dev"),
        "--no-install-workspace",  # the workspace's packages come from the wheels below, not its sources
        env={"UV_PROJECT_ENVIRONMENT": str(environment)},
    )
    steps = [synced]
    if synced.ok:
        built = [str(wheels[dist]) for dist in sorted(closure(result.dist))]
        steps.append(runner.uv_run("pip", "install", "--python", str(python), "--no-deps", *built))
    if steps[-1].ok:
        steps.append(runner.run([str(python), "-m", "pytest", f"tests/{plane}"]))
    last = steps[-1]
    summary = last.output.rstrip().splitlines()[-1].strip("= ") if last.output.strip() else ""
    detail = f"{len(files)} file(s) on the built wheels: {summary}"
    outcome = StepResult(status(last.ok), sum(step.seconds for step in steps), detail)
    report_step(result, "tests", outcome, "\n".join(step.output for step in steps))


def build_wheels(runner: Runner, out: Path) -> dict[str, Path] | None:
    """Build every workspace wheel into ``out``; return the wheel of each distribution, or None on failure."""
    built = runner.uv_run("build", "--all-packages", "--wheel", "-o", str(out), env={COMPILE_VARIABLE: "1"})
    wheels: dict[str, Path] = {}
    problems: list[str] = []
    notes: list[str] = []
    if built.ok:
        for dist in ALLOWED:
            found = sorted(out.glob(f"{import_name(dist)}-*.whl"))
            if len(found) == 1:
                wheels[dist] = found[0]
            else:
                problems.append(f"expected one wheel for {dist}, found {len(found)}")
        for dist, wheel in wheels.items():
            if modules := compiled_modules(dist):
                problems += check_compiled(wheel, modules)
                notes.append(f"{plane_of(dist)}: {len(modules)} modules compiled")
    ok = built.ok and not problems
    detail = "; ".join([f"{len(wheels)} wheels in {out}", *notes])
    print(f"  {'all':<12} {'build':<9} {status(ok):<5} {built.seconds:6.2f}s  {detail}")
    if not ok:
        print(indent(tail("\n".join([built.output, *problems]))))
        return None
    return wheels


def compiled_modules(dist: str) -> list[str]:
    """Return the modules a distribution's build hook compiles (``runtime_x.loop._driver``), if any."""
    directory = ROOT / "packages" / dist
    with (directory / "pyproject.toml").open("rb") as handle:
        hooks = tomllib.load(handle).get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    patterns = hooks.get("wheel", {}).get("hooks", {}).get("custom", {}).get("modules", [])
    sources = sorted({path for pattern in patterns for path in directory.glob(pattern)})
    return [".".join(path.relative_to(directory / "src").with_suffix("").parts) for path in sources]


def check_compiled(wheel: Path, modules: Sequence[str]) -> list[str]:
    """Return what is wrong with a wheel that must ship `modules` compiled: its tag, or a missing extension."""
    problems: list[str] = []
    if wheel.name.endswith("-none-any.whl"):
        problems.append(f"{wheel.name} is a pure-Python wheel: {COMPILE_VARIABLE}=1 compiled nothing")
    with zipfile.ZipFile(wheel) as archive:
        extensions = {
            m.group("module").replace("/", ".") for name in archive.namelist() if (m := _EXTENSION.match(name))
        }
    if missing := [module for module in modules if module not in extensions]:
        problems.append(f"{wheel.name} has no compiled extension for {', '.join(missing)}")
    return problems


def workspace_members() -> set[str]:
    """Return the distribution names of the workspace members under ``packages/``."""
    names: set[str] = set()
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        with pyproject.open("rb") as handle:
            names.add(normalize(tomllib.load(handle)["project"]["name"]))
    return names


def uv_command() -> list[str]:
    """Return the command that runs uv: ``$UV`` (set by ``uv run`` and the Makefile), else ``uv`` on PATH."""
    if configured := os.environ.get("UV", "").strip():
        return shlex.split(configured)
    if found := shutil.which("uv"):
        return [found]
    raise SystemExit("check_planes: uv not found (install it, or set UV to the command that runs it)")


def child_environment() -> dict[str, str]:
    """Return the environment for subprocesses, cleared of anything that would leak the workspace venv."""
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["UV_PYTHON_DOWNLOADS"] = "never"  # this machine and CI use the system Python only
    env.setdefault("NO_COLOR", "1")
    return env


def print_summary(results: Sequence[PlaneResult], seconds: float, *, tests_run: bool) -> None:
    """Print one row per plane with the status of each step."""
    print()
    header = f"  {'plane':<12}" + "".join(f"{step:<10}" for step in STEPS) + "time"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for result in results:
        cells = "".join(f"{result.steps.get(step, StepResult('-')).status:<10}" for step in STEPS)
        print(f"  {plane_of(result.dist):<12}{cells}{result.seconds:5.1f}s")
    failed = [f"{plane_of(result.dist)}:{step}" for result in results for step in result.failed]
    print()
    if failed:
        print(f"check-planes: FAILED ({', '.join(failed)}) in {seconds:.1f}s")
    else:
        proved = "install, import and test alone" if tests_run else "install and import alone (tests skipped)"
        print(f"check-planes: all {len(results)} planes {proved} ({seconds:.1f}s)")


def dependency_order() -> Iterator[str]:
    """Yield the distributions of ``ALLOWED`` in its (dependency) order, checking that it is one."""
    seen: set[str] = set()
    for dist, siblings in ALLOWED.items():
        if not siblings <= seen:
            raise SystemExit(f"check_planes: ALLOWED lists {dist} before {', '.join(sorted(siblings - seen))}")
        seen.add(dist)
        yield dist


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check (or, with ``--probe``, the in-environment probe)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--skip-tests", action="store_true", help="do not run each plane's tests/<plane>")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    parser.add_argument("--probe", metavar="DIST", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        return probe(args.probe, args.out)

    members = workspace_members()
    if members != ALLOWED.keys():
        only_members, only_allowed = sorted(members - ALLOWED.keys()), sorted(ALLOWED.keys() - members)
        print(
            "check_planes: the workspace members and the ALLOWED table (DESIGN §2) disagree: "
            f"only in packages/: {only_members}, only in ALLOWED: {only_allowed}",
            file=sys.stderr,
        )
        return 2
    order = list(dependency_order())
    runner = Runner(uv_command(), child_environment())

    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="check-planes-"))
    results: list[PlaneResult] = []
    try:
        print(f"check-planes: {len(order)} planes, uv = {shlex.join(runner.uv)}, python = {sys.executable}")
        wheels = build_wheels(runner, tmp / "wheels")
        if wheels is None:
            print(f"\ncheck-planes: FAILED (build) in {time.perf_counter() - start:.1f}s")
            return 1
        for dist in order:
            results.append(check_plane(runner, dist, wheels, tmp, run_tests=not args.skip_tests))
        print_summary(results, time.perf_counter() - start, tests_run=not args.skip_tests)
    finally:
        if args.keep:
            print(f"check-planes: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
