"""Durable agent turns: ours (AgentLoop on SqlRunStore, SQLite synchronous=FULL) vs LangGraph + SqliteSaver.

Run (from the workspace root)::

    make bench-env   # once, and after changing the sources: .venv-bench holds the release build
    .venv-bench/bin/python bench/durable_turn.py [--turns 500] [--runs 5] [--json] [--check] [--no-postgres]

The JSON field ``ours_compiled_modules`` (and the table's second line) says which build of ours ran.

The work (the same in both frameworks): a scripted model that answers instantly from replies built
before the clock starts. On turns 1..N (N = ``--turns``, 500) it replies with ~1 KB of text and one call
of a tool ``fetch(page)`` that returns a prebuilt ~1 KB page; on turn N+1 it finishes. Each of the N
timed turns is one model call, one tool call and everything needed to make both durable.

- **ours**: ``AgentLoop`` on ``SqlRunStore`` over a fresh SQLite file per run (WAL, ``synchronous=FULL``:
  every commit is fsync'd), recovery off, ``limits.max_turns`` = N + 10, the default snapshot interval
  (100 turns). The tool is ``@tool(effect=ToolEffect.NONE)``: it reads a page and changes nothing, so the
  loop writes no side-effect ledger ahead of it and each turn is one fsync'd commit, the turn end (DESIGN
  §4). That is the turn DESIGN §12's targets are set for: its own figures (a commit 0.17-0.26 ms,
  LangGraph 2.3 ms per turn) leave a 5x faster turn no room for a second commit. Turn N+1 calls
  ``complete_task``.
- **ours, write-ahead** (``variants.ours_idempotent``, ratios in ``write_ahead``): the same tool declared
  ``idempotent``. Any effect but ``none`` makes the loop commit the ledger's ``tool.started`` before the
  call, so each turn is two fsync'd commits (write-ahead, turn end), DESIGN §4's worst case; ``unsafe``
  and ``compensable`` take the same path while running (they differ only on resume).
- **langgraph**: ``StateGraph(MessagesState)`` with a ``model`` node (returns the prebuilt ``AIMessage``)
  and the prebuilt ``ToolNode([fetch])`` (a ``langchain_core`` ``@tool``): ``START -> model``,
  ``model -> tools_condition -> tools | END``, ``tools -> model``; compiled with
  ``SqliteSaver(sqlite3.connect(fresh file))`` and run with ``graph.invoke(..., durability="sync")``,
  so a checkpoint is committed (fsync'd: WAL and ``synchronous=FULL``, set explicitly) after every
  superstep before the next starts: two supersteps per turn. Turn N+1 is an ``AIMessage`` without tool
  calls, which ends the graph.
- **ours on PostgreSQL** (``postgres`` in the JSON): ours again, on a throwaway local server started with
  ``tests/postgres.py`` (fsync on), a fresh database per run. Skipped with a note if no server can start.
- **ours, synchronous=OFF** (``variants.ours_sync_off``, informative): ours with no fsync at all, so
  that the runtime's own cost per turn (Python, serialisation, SQLite writes) shows apart from the disk's.

Timing: the model records a timestamp per call; turn k's time is the gap between model calls k and k+1
(so it covers the tool, the commits and the next request's preparation). The report gives the mean over
turns 1-50 and over the last 50 turns (451-500), per run, and the median over the runs. Each framework
gets one untimed warm-up run (60 turns); then ``--runs`` repetitions, each running every variant in turn
(ours, langgraph, ours_idempotent, ours_sync_off, ours on PostgreSQL), a resume and a commit calibration, so
that drifts of the machine hit all of them alike. Models,
tools, graphs and empty databases (schema migrated) are built before the clock starts; ``gc.collect()``
runs before each timed run and the warmed-up heap is frozen (``gc.freeze()``, as in loop_inmemory.py).
Every run is checked (turn count, tool calls, final message), so a framework that stopped early cannot
look fast.

Context for the numbers: ``sqlite_commit_us`` is the median time of one fsync'd commit of a 2 KB row
on this disk (plain sqlite3, WAL, ``synchronous=FULL``), measured once per repetition; ``commits_per_turn``
counts the ``COMMIT`` statements each SQLite variant ran during its warm-up run (traced there only, never
in a timed run), divided by its turns.

Storage: ``*_bytes`` = the total size of the run's database files (main file, ``-wal``, ``-shm``) after
the connections are closed (SQLite then checkpoints the WAL into the main file and deletes it). On
PostgreSQL: ``pg_total_relation_size`` of the database's tables (with indexes and TOAST), not the catalogs.
``raw_message_bytes`` = the UTF-8 bytes of every message content of the conversation (task, N+1 model
texts, N tool results); tool-call arguments (``{"page": k}``) are not counted.

Resume (``resume_ms_500_turns``, ours): a run of N turns whose driver dies in its model call of turn N+1
(an exception that is not an ``Exception``, raised before anything of that turn is committed, as a crash
there would; unlike a crash, the dying driver still releases its lease). Then, as a new process would, a
new engine, store and loop on the same file: the time from calling ``loop.resume(run_id, steal=True)``
(the store has no connection yet: connecting and the schema check are included) to the model call of
turn N+1, i.e. loading the run (nearest snapshot + deltas), reading its log for the resume point, taking
the lease and starting the driver up to the model request. ``resume_handle_ms`` is the part until
``resume()`` returns its handle. The resumed run must then complete with N+1 turns.

Replay (``replay_us_per_turn``, ours): ``await loop.replay(run_id)`` of the finished timed run (same loop,
store open), divided by N; the report must say ``identical``.

Targets (DESIGN §12): ratio_1_50 (langgraph / ours) >= 5, ratio_451_500 >= 12, flat per-turn time (ours
451-500 / 1-50 <= 1.15), ours_bytes <= 1.5 x raw_message_bytes, resume <= 20 ms, replay <= 100 us per
turn. The exit status is 0 whatever the numbers, unless ``--check`` is given: then 1 when one is missed.

``--profile`` runs ours once under cProfile instead and prints where the time goes.

No network: the guard of bench/_common.py makes every socket connection (except Unix sockets) and every
name lookup of Python's ``socket`` module raise for the whole process; PostgreSQL is reached on loopback
by libpq, which does not go through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import itertools
import json
import platform
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import NETWORK_ATTEMPTS, block_network, compiled_modules, describe_build, ratio, version

ROOT = Path(__file__).resolve().parent.parent

WINDOW = 50  # turns per timing window: 1-50 and the last 50
WARMUP_TURNS = 60
MESSAGE_BYTES = 1024

TARGET_RATIO_1_50 = 5.0
TARGET_RATIO_451_500 = 12.0
TARGET_FLATNESS = 1.15
TARGET_BYTES_RATIO = 1.5
TARGET_RESUME_MS = 20.0
TARGET_REPLAY_US_PER_TURN = 100.0

RUN_ID = "run_durable_turn"
THREAD_ID = "durable-turn"
VARIANTS = ("ours", "langgraph", "ours_idempotent", "ours_sync_off", "ours_postgres")
TOOL_EFFECT = "none"  # of ours; ours_idempotent declares the same tool "idempotent"
DISTS = (
    "runtime-execution",
    "runtime-persistence",
    "sqlalchemy",
    "psycopg",
    "pydantic",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-prebuilt",
    "langchain-core",
)


# --- the script both frameworks play ----------------------------------------------------------------

_WORDS = (
    *("agent", "runtime", "durable", "turn", "checkpoint", "ledger", "model", "tool", "result", "message"),
    *("event", "commit", "fsync", "write", "ahead", "snapshot", "delta", "replay", "resume", "lease"),
    *("fencing", "policy", "budget", "sequence", "page", "document", "section", "paragraph"),
)


def _text(label: str, size: int, rng: random.Random) -> str:
    """ASCII text of exactly `size` bytes (no character JSON would escape), different for every label."""
    words = [label]
    length = len(label)
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


@dataclass(frozen=True)
class Script:
    """What the model says and the tool returns, turn by turn (shared by every framework)."""

    turns: int
    task: str
    replies: tuple[str, ...]  # model text of turns 1..turns
    pages: tuple[str, ...]  # tool result of turns 1..turns
    final: str  # model text of the finishing turn

    @classmethod
    def build(cls, turns: int) -> Script:
        rng = random.Random(turns)
        return cls(
            turns=turns,
            task="Read the document page by page, one page per turn, and summarise it.",
            replies=tuple(_text(f"reply {turn}:", MESSAGE_BYTES, rng) for turn in range(1, turns + 1)),
            pages=tuple(_text(f"page {turn}:", MESSAGE_BYTES, rng) for turn in range(1, turns + 1)),
            final="done: every page is read and summarised",
        )

    def page(self, number: int) -> str:
        return self.pages[number - 1]

    @property
    def raw_message_bytes(self) -> int:
        texts = itertools.chain((self.task, self.final), self.replies, self.pages)
        return sum(len(text.encode()) for text in texts)


# --- measurement ------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed run: model-call timestamps, wall time and the database's size afterwards."""

    calls_ns: list[int]
    elapsed_ns: int
    bytes: int | None = None


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def window_us(self, first: int, last: int) -> float | None:
        """Median over the runs of the mean time of turns first..last (1-based), in µs."""
        means = [_window(s.calls_ns, first, last) for s in self.samples]
        return statistics.median(means) / 1000.0 if means else None

    def ms_per_run(self) -> float | None:
        return statistics.median(s.elapsed_ns / 1e6 for s in self.samples) if self.samples else None

    def bytes(self) -> int | None:
        sizes = [s.bytes for s in self.samples if s.bytes is not None]
        return round(statistics.median(sizes)) if sizes else None


def _window(calls_ns: list[int], first: int, last: int) -> float:
    """Mean gap (ns) between model calls k and k+1 for k in first..last."""
    gaps = [b - a for a, b in itertools.pairwise(calls_ns[first - 1 : last + 1])]
    return statistics.fmean(gaps)


def _dir_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir() if path.is_file())


class Counter:
    """Counts tool invocations, so that a run that skipped its tools is caught."""

    def __init__(self) -> None:
        self.n = 0


class CommitCounter:
    """Counts the ``COMMIT`` statements SQLite runs on traced connections while `on` (warm-up runs only)."""

    def __init__(self) -> None:
        self.n = 0
        self.on = False

    def trace(self, statement: str) -> None:
        if self.on and statement.startswith("COMMIT"):
            self.n += 1


def measure_commit_ns(workdir: Path, commits: int = 200) -> float:
    """Median time of one fsync'd commit of a 2 KB row (WAL, synchronous=FULL): the floor under both sides."""
    directory = Path(tempfile.mkdtemp(prefix="commit-", dir=workdir))
    conn = sqlite3.connect(directory / "commit.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
        row, times = b"x" * 2048, []
        for _ in range(commits):
            start = time.perf_counter_ns()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (data) VALUES (?)", (row,))
            conn.execute("COMMIT")
            times.append(time.perf_counter_ns() - start)
        return statistics.median(times)
    finally:
        conn.close()
        shutil.rmtree(directory)


# A prepared run: (model-call timestamps, the timed coroutine, the untimed clean-up returning the bytes).
@dataclass
class Prepared:
    calls_ns: list[int]
    run: Callable[[], Awaitable[None]]
    finish: Callable[[], Awaitable[int | None]]
    after_run: Callable[[], Awaitable[None]] | None = None


async def _timed(prepared: Prepared, turns: int, name: str, commits: CommitCounter | None = None) -> Sample:
    gc.collect()
    start = time.perf_counter_ns()
    try:
        if commits is not None:
            commits.on = True
        await prepared.run()
        elapsed = time.perf_counter_ns() - start
        if commits is not None:
            commits.on = False
        if prepared.after_run is not None:
            await prepared.after_run()
    finally:
        size = await prepared.finish()
    if len(prepared.calls_ns) != turns + 1:
        raise RuntimeError(f"{name}: expected {turns + 1} model calls, got {len(prepared.calls_ns)}")
    return Sample(prepared.calls_ns, elapsed, size)


# --- ours -------------------------------------------------------------------------------------------


class _Crash(BaseException):
    """Stops our driver in its model call, like a crash: not an Exception, so the loop does not record it."""


def _ours_responses(script: Script, first: int, last: int, *, finish: bool) -> list[Any]:
    from runtime_core.messages import AssistantMessage
    from runtime_core.providers import FinishReason, ModelResponse
    from runtime_core.tools import ToolCall

    responses = [
        ModelResponse(
            model="m",
            message=AssistantMessage(
                content=script.replies[turn - 1],
                tool_calls=(ToolCall(id=f"call_{turn}", name="bench:fetch", arguments={"page": turn}),),
            ),
            finish_reason=FinishReason.TOOL_CALLS,
        )
        for turn in range(first, last + 1)
    ]
    if finish:
        responses.append(
            ModelResponse(
                model="m",
                message=AssistantMessage(
                    content=script.final,
                    tool_calls=(
                        ToolCall(id=f"call_{script.turns + 1}", name="complete_task", arguments={"summary": "done"}),
                    ),
                ),
                finish_reason=FinishReason.TOOL_CALLS,
            )
        )
    return responses


class ScriptedModel:
    """A `ModelProvider` answering from prebuilt responses; records the time of each call."""

    name = "bench"

    def __init__(self, responses: list[Any], *, crash_after: bool = False) -> None:
        self.calls_ns: list[int] = []
        self._replies = iter(responses)
        self._crash_after = crash_after

    async def complete(self, request: Any) -> Any:
        self.calls_ns.append(time.perf_counter_ns())
        reply = next(self._replies, None)
        if reply is None:
            if self._crash_after:
                raise _Crash
            raise RuntimeError("the scripted model ran out of replies")
        return reply

    def stream(self, request: Any) -> Any:
        raise NotImplementedError("the benchmark drives complete() only")


def _ours_loop(script: Script, engine: Any, model: ScriptedModel, effect: str, counter: Counter) -> tuple[Any, Any]:
    """(loop, agent) of ours on `engine` (whose schema is migrated)."""
    from runtime_core.agents import AgentSpec, Limits, RecoveryConfig
    from runtime_core.function_tools import tool
    from runtime_core.tools import ToolEffect
    from runtime_execution import AgentLoop, LocalToolRegistry, complete_task
    from runtime_persistence import SqlRunStore

    @tool(name="bench:fetch", effect=ToolEffect(effect))
    async def fetch(page: int) -> str:
        """Return one page of the document."""
        counter.n += 1
        return script.page(page)

    loop = AgentLoop(providers=[model], tools=LocalToolRegistry([fetch, complete_task]), store=SqlRunStore(engine))
    agent = AgentSpec(
        name="bench",
        model="bench:m",
        tools=("bench:*",),
        limits=Limits(max_turns=script.turns + 10),
        recovery=RecoveryConfig(enabled=False),
    )
    return loop, agent


def _check_ours(result: Any, script: Script, counter: Counter, name: str) -> None:
    from runtime_core.runs import RunStatus

    if result.status != RunStatus.COMPLETED or result.turns != script.turns + 1 or counter.n != script.turns:
        raise RuntimeError(
            f"{name}: expected a completed run of {script.turns + 1} turns with {script.turns} tool calls, "
            f"got {result.status} after {result.turns} turns and {counter.n} calls"
        )


@dataclass
class OursExtras:
    """Replay timings of ours, taken after timed runs (not timed with them)."""

    replay_ns: list[int] = field(default_factory=list)
    replay_identical: list[bool] = field(default_factory=list)


class PostgresDatabases:
    """Fresh databases on a throwaway PostgreSQL server (or a note saying why there is none)."""

    def __init__(self) -> None:
        self.server: Any = None
        self.note: str | None = None
        self.version: str | None = None

    def start(self) -> None:
        try:
            if str(ROOT) not in sys.path:
                # Run as `python bench/durable_turn.py`, sys.path starts with bench/, not the workspace root.
                sys.path.insert(0, str(ROOT))
            from tests.postgres import PostgresServer

            self.server = PostgresServer().start()
            with self.server.connect() as conn:
                self.version = conn.execute("SHOW server_version").fetchone()[0]
        except Exception as exc:  # never fail the benchmark for PostgreSQL: report why it was skipped
            self.server = None
            self.note = f"PostgreSQL skipped: {type(exc).__name__}: {exc}".splitlines()[0]

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
            self.server = None

    def create(self) -> tuple[str, Callable[[], None]]:
        from sqlalchemy.engine import make_url

        url = self.server.create_database()
        name = make_url(url).database
        return url, lambda: self.server.drop_database(name)


def prepare_ours(
    script: Script,
    workdir: Path,
    *,
    effect: str = TOOL_EFFECT,
    synchronous: str = "FULL",
    postgres: PostgresDatabases | None = None,
    extras: OursExtras | None = None,
    commits: CommitCounter | None = None,
) -> Prepared:
    from sqlalchemy import event

    from runtime_persistence import create_engine, upgrade

    drop: Callable[[], None] | None = None
    if postgres is None:
        directory = Path(tempfile.mkdtemp(prefix="ours-", dir=workdir))
        engine = create_engine(f"sqlite:///{directory / 'runtime.db'}", synchronous=synchronous)
    else:
        url, drop = postgres.create()
        engine = create_engine(url)
    if commits is not None:
        event.listen(engine, "connect", lambda dbapi_connection, _: dbapi_connection.set_trace_callback(commits.trace))
    upgrade(engine)
    counter = Counter()
    model = ScriptedModel(_ours_responses(script, 1, script.turns, finish=True))
    loop, agent = _ours_loop(script, engine, model, effect, counter)

    async def run() -> None:
        result = await loop.run(agent, script.task, run_id=RUN_ID)
        _check_ours(result, script, counter, "ours")

    async def replay() -> None:
        if extras is None:
            return
        gc.collect()
        start = time.perf_counter_ns()
        report = await loop.replay(RUN_ID)
        extras.replay_ns.append(time.perf_counter_ns() - start)
        extras.replay_identical.append(report.identical)

    async def finish() -> int | None:
        await loop.store.close()
        size = _postgres_bytes(engine) if postgres is not None else None
        engine.dispose()
        if drop is not None:
            drop()
            return size
        size = _dir_bytes(directory)
        shutil.rmtree(directory)
        return size

    return Prepared(model.calls_ns, run, finish, replay)


def _postgres_bytes(engine: Any) -> int:
    """Tables, indexes and TOAST of the database's own tables (not the catalogs of an empty database)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            ).scalar_one()
        )


@dataclass
class ResumeSample:
    resume_ns: int  # resume() called -> model call of turn N+1
    handle_ns: int  # resume() called -> resume() returned


async def measure_resume(script: Script, workdir: Path, effect: str = TOOL_EFFECT) -> ResumeSample:
    """Crash a run of N turns in its turn N+1, then time its resume by a new engine, store and loop."""
    from runtime_persistence import create_engine, upgrade

    directory = Path(tempfile.mkdtemp(prefix="resume-", dir=workdir))
    url = f"sqlite:///{directory / 'runtime.db'}"
    try:
        engine = create_engine(url, synchronous="FULL")
        upgrade(engine)
        model = ScriptedModel(_ours_responses(script, 1, script.turns, finish=False), crash_after=True)
        counter = Counter()
        loop, agent = _ours_loop(script, engine, model, effect, counter)
        try:
            await loop.run(agent, script.task, run_id=RUN_ID)
            raise RuntimeError("resume: the first driver was expected to crash in turn N+1")
        except _Crash:
            pass
        finally:
            await loop.store.close()
            engine.dispose()

        # A new process: nothing of the first loop is reused, the store has not connected yet.
        engine = create_engine(url, synchronous="FULL")
        resumed = ScriptedModel(_ours_responses(script, script.turns + 1, script.turns, finish=True))
        loop, _ = _ours_loop(script, engine, resumed, effect, counter)
        try:
            gc.collect()
            start = time.perf_counter_ns()
            handle = await loop.resume(RUN_ID, steal=True)
            handle_ns = time.perf_counter_ns() - start
            result = await handle.result()
            _check_ours(result, script, counter, "resume")
            return ResumeSample(resumed.calls_ns[0] - start, handle_ns)
        finally:
            await loop.store.close()
            engine.dispose()
    finally:
        shutil.rmtree(directory)


# --- LangGraph --------------------------------------------------------------------------------------


LANGGRAPH_PRAGMAS: dict[str, Any] = {}


def prepare_langgraph(script: Script, workdir: Path, *, commits: CommitCounter | None = None) -> Prepared:
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.tools import tool as lc_tool
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    directory = Path(tempfile.mkdtemp(prefix="langgraph-", dir=workdir))
    conn = sqlite3.connect(directory / "checkpoints.db", check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()  # WAL; otherwise done lazily by the first checkpoint, inside the timed run
    # sqlite3's default is already FULL; said explicitly so that both sides fsync every commit alike.
    conn.execute("PRAGMA synchronous = FULL")
    LANGGRAPH_PRAGMAS.update(
        journal_mode=conn.execute("PRAGMA journal_mode").fetchone()[0],
        synchronous=conn.execute("PRAGMA synchronous").fetchone()[0],
    )
    if commits is not None:
        conn.set_trace_callback(commits.trace)

    calls_ns: list[int] = []
    counter = Counter()
    replies = [
        AIMessage(
            id=f"ai_{turn}",
            content=script.replies[turn - 1],
            tool_calls=[{"name": "fetch", "args": {"page": turn}, "id": f"call_{turn}", "type": "tool_call"}],
        )
        for turn in range(1, script.turns + 1)
    ]
    replies.append(AIMessage(id=f"ai_{script.turns + 1}", content=script.final))
    answers = iter(replies)

    def model(state: MessagesState) -> dict[str, list[AIMessage]]:
        calls_ns.append(time.perf_counter_ns())
        return {"messages": [next(answers)]}

    @lc_tool
    def fetch(page: int) -> str:
        """Return one page of the document."""
        counter.n += 1
        return script.page(page)

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([fetch]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    graph = builder.compile(checkpointer=saver)
    # Two supersteps per turn; the default limit (10007 in 1.2, 25 before 1.0) is not relied on.
    config: Any = {"configurable": {"thread_id": THREAD_ID}, "recursion_limit": 2 * script.turns + 10}

    async def run() -> None:
        # LangGraph's sync API on its sync saver (the one the docs pair with SqliteSaver); nothing else
        # runs on the event loop meanwhile.
        out = graph.invoke({"messages": [HumanMessage(script.task)]}, config, durability="sync")
        messages = out["messages"]
        if len(messages) != 2 * script.turns + 2 or messages[-1].content != script.final or counter.n != script.turns:
            raise RuntimeError(
                f"langgraph: unexpected run: {len(messages)} messages, {counter.n} tool calls, "
                f"last message {messages[-1].content[:40]!r}"
            )

    async def finish() -> int:
        conn.close()
        size = _dir_bytes(directory)
        shutil.rmtree(directory)
        return size

    return Prepared(calls_ns, run, finish)


# --- driver -----------------------------------------------------------------------------------------


@dataclass
class Results:
    series: dict[str, Series] = field(default_factory=dict)
    extras: OursExtras = field(default_factory=OursExtras)
    resumes: list[ResumeSample] = field(default_factory=list)
    commit_ns: list[float] = field(default_factory=list)
    commits_per_turn: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    postgres_version: str | None = None


class Bench:
    """Prepares and times the variants of one benchmark invocation in a private temp directory."""

    def __init__(self, workdir: Path, turns: int, databases: PostgresDatabases, results: Results) -> None:
        self.workdir = workdir
        self.script = Script.build(turns)
        self.warm = Script.build(WARMUP_TURNS)
        self.databases = databases
        self.results = results

    def prepare(self, name: str, script: Script, commits: CommitCounter | None = None) -> Prepared:
        workdir = self.workdir
        if name == "langgraph":
            return prepare_langgraph(script, workdir, commits=commits)
        if name == "ours_postgres":
            return prepare_ours(script, workdir, postgres=self.databases)
        if name == "ours_idempotent":
            return prepare_ours(script, workdir, effect="idempotent", commits=commits)
        if name == "ours_sync_off":
            return prepare_ours(script, workdir, synchronous="OFF", commits=commits)
        extras = self.results.extras if script is self.script else None  # replay the timed runs only
        return prepare_ours(script, workdir, extras=extras, commits=commits)

    async def run(self, name: str, script: Script, commits: CommitCounter | None = None) -> Sample | None:
        """Time one run; a PostgreSQL failure is noted (and PostgreSQL dropped), never raised."""
        try:
            return await _timed(self.prepare(name, script, commits), script.turns, name, commits)
        except Exception as exc:
            if name != "ours_postgres":
                raise
            self.results.notes.append(f"PostgreSQL run failed: {type(exc).__name__}: {exc}".splitlines()[0])
            return None

    async def warm_up(self, names: list[str]) -> list[str]:
        """One untimed run of each variant (counting its SQLite commits); return the variants that work."""
        working = []
        for name in names:
            commits = None if name == "ours_postgres" else CommitCounter()
            if await self.run(name, self.warm, commits) is None:
                continue
            working.append(name)
            if commits is not None:
                self.results.commits_per_turn[name] = commits.n / (self.warm.turns + 1)
        await measure_resume(self.warm, self.workdir)
        return working

    async def repeat(self, names: list[str], runs: int) -> None:
        """`runs` repetitions, each running every variant once, then a resume and a commit calibration."""
        series = self.results.series
        series.update((name, Series()) for name in names)
        for _ in range(runs):
            for name in list(names):
                if (sample := await self.run(name, self.script)) is None:
                    names.remove(name)  # only PostgreSQL can fail here; the others raise
                    continue
                series[name].samples.append(sample)
            self.results.resumes.append(await measure_resume(self.script, self.workdir))
            self.results.commit_ns.append(measure_commit_ns(self.workdir))


async def measure(turns: int, runs: int, *, postgres: bool = True, gc_freeze: bool = True) -> Results:
    """Warm every variant up once, then time `runs` interleaved repetitions."""
    results = Results()
    databases = PostgresDatabases()
    if postgres:
        databases.start()
        if databases.note is not None:
            results.notes.append(databases.note)
        results.postgres_version = databases.version
    else:
        results.notes.append("PostgreSQL skipped: --no-postgres")
    try:
        with tempfile.TemporaryDirectory(prefix="durable-turn-") as tmp:
            bench = Bench(Path(tmp), turns, databases, results)
            names = await bench.warm_up([name for name in VARIANTS if name != "ours_postgres" or databases.server])
            if gc_freeze:
                # Both frameworks share the process: without this, full collections during a run also scan
                # the other framework's modules, and whoever allocates most pays most for them.
                gc.collect()
                gc.freeze()
            await bench.repeat(names, runs)
    finally:
        databases.stop()
    return results


def _windows(series: Series | None, turns: int) -> tuple[float | None, float | None]:
    if series is None or not series.samples:
        return None, None
    return series.window_us(1, WINDOW), series.window_us(turns - WINDOW + 1, turns)


def _variant(series: Series | None, turns: int) -> dict[str, Any]:
    first, last = _windows(series, turns)
    return {
        "us_turns_1_50": first,
        "us_turns_451_500": last,
        "flatness": ratio(last, first),
        "ms_per_run": series.ms_per_run() if series is not None else None,
        "bytes": series.bytes() if series is not None else None,
    }


def report(results: Results, turns: int, runs: int, *, gc_freeze: bool = True) -> dict[str, Any]:
    variants = {name: _variant(results.series.get(name), turns) for name in VARIANTS}
    ours, langgraph = variants["ours"], variants["langgraph"]
    raw = Script.build(turns).raw_message_bytes
    resumes = results.resumes
    resume_ms = statistics.median(r.resume_ns / 1e6 for r in resumes) if resumes else None
    replay_ns = results.extras.replay_ns
    replay_us = statistics.median(ns / 1000.0 / turns for ns in replay_ns) if replay_ns else None
    identical = bool(results.extras.replay_identical) and all(results.extras.replay_identical)
    ratio_first = ratio(langgraph["us_turns_1_50"], ours["us_turns_1_50"])
    ratio_last = ratio(langgraph["us_turns_451_500"], ours["us_turns_451_500"])
    write_ahead = variants["ours_idempotent"]
    bytes_ratio = ratio(ours["bytes"], raw)
    checks = {
        "ratio_1_50": (ratio_first or 0.0) >= TARGET_RATIO_1_50,
        "ratio_451_500": (ratio_last or 0.0) >= TARGET_RATIO_451_500,
        "flat": ours["flatness"] is not None and ours["flatness"] <= TARGET_FLATNESS,
        "bytes": bytes_ratio is not None and bytes_ratio <= TARGET_BYTES_RATIO,
        "resume": resume_ms is not None and resume_ms <= TARGET_RESUME_MS,
        "replay": replay_us is not None and replay_us <= TARGET_REPLAY_US_PER_TURN and identical,
    }
    postgres = variants["ours_postgres"]
    return {
        "benchmark": "durable_turn",
        "turns": turns,
        "runs": runs,
        "message_bytes": MESSAGE_BYTES,
        "windows": {"first": [1, WINDOW], "last": [turns - WINDOW + 1, turns]},
        "tool_effect": TOOL_EFFECT,
        "gc_frozen": gc_freeze,
        "ours_us_turns_1_50": ours["us_turns_1_50"],
        "ours_us_turns_451_500": ours["us_turns_451_500"],
        "langgraph_us_turns_1_50": langgraph["us_turns_1_50"],
        "langgraph_us_turns_451_500": langgraph["us_turns_451_500"],
        "ratio_1_50": ratio_first,
        "ratio_451_500": ratio_last,
        "ours_flatness": ours["flatness"],
        "langgraph_flatness": langgraph["flatness"],
        "ours_bytes": ours["bytes"],
        "langgraph_bytes": langgraph["bytes"],
        "raw_message_bytes": raw,
        "ours_bytes_ratio": bytes_ratio,
        "langgraph_bytes_ratio": ratio(langgraph["bytes"], raw),
        "resume_ms_500_turns": resume_ms,
        "resume_handle_ms": statistics.median(r.handle_ns / 1e6 for r in resumes) if resumes else None,
        "replay_us_per_turn": replay_us,
        "replay_identical": identical,
        "write_ahead": {
            "tool_effect": "idempotent",
            "us_turns_1_50": write_ahead["us_turns_1_50"],
            "us_turns_451_500": write_ahead["us_turns_451_500"],
            "ratio_1_50": ratio(langgraph["us_turns_1_50"], write_ahead["us_turns_1_50"]),
            "ratio_451_500": ratio(langgraph["us_turns_451_500"], write_ahead["us_turns_451_500"]),
        },
        "postgres": {
            "measured": bool(results.series.get("ours_postgres", Series()).samples),
            "us_turns_1_50": postgres["us_turns_1_50"],
            "us_turns_451_500": postgres["us_turns_451_500"],
            "flatness": postgres["flatness"],
            "bytes": postgres["bytes"],
            "ms_per_run": postgres["ms_per_run"],
            "server_version": results.postgres_version,
        },
        "variants": variants,
        "sqlite_commit_us": statistics.median(results.commit_ns) / 1000.0 if results.commit_ns else None,
        "commits_per_turn": {name: round(value, 2) for name, value in results.commits_per_turn.items()},
        "target": {
            "ratio_1_50_min": TARGET_RATIO_1_50,
            "ratio_451_500_min": TARGET_RATIO_451_500,
            "flatness_max": TARGET_FLATNESS,
            "bytes_ratio_max": TARGET_BYTES_RATIO,
            "resume_ms_max": TARGET_RESUME_MS,
            "replay_us_per_turn_max": TARGET_REPLAY_US_PER_TURN,
            "checks": checks,
            "missed": [name for name, ok in checks.items() if not ok],
            "met": all(checks.values()),
        },
        "sqlite": {
            "version": sqlite3.sqlite_version,
            "ours": {"journal_mode": "wal", "synchronous": "FULL"},
            "langgraph": dict(LANGGRAPH_PRAGMAS),
        },
        "notes": results.notes,
        "network_attempts": len(NETWORK_ATTEMPTS),
        "ours_compiled_modules": compiled_modules(),
        "versions": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version,
            "postgresql": results.postgres_version,
            **{dist: version(dist) for dist in DISTS},
        },
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


_LABELS = {
    "ours": "ours (read-only tool)",
    "ours_idempotent": "ours (idempotent tool)",
    "ours_sync_off": "ours, synchronous=OFF",
    "ours_postgres": "ours on PostgreSQL",
    "langgraph": "langgraph + SqliteSaver",
}


def print_human(result: dict[str, Any]) -> None:
    last = result["windows"]["last"]
    print(
        f"durable_turn: {result['turns']} turns of model + tool, {result['message_bytes']} B messages, median of "
        f"{result['runs']} runs; python {result['versions']['python']}, sqlite {result['sqlite']['version']}"
    )
    print(describe_build(result["ours_compiled_modules"]))
    header = f"{'variant':<25} {'us turns 1-50':>14} {f'us turns {last[0]}-{last[1]}':>17} {'ms/run':>9} {'bytes':>13}"
    print(header)
    for name, label in _LABELS.items():
        v = result["variants"][name]
        print(
            f"{label:<25} {_fmt(v['us_turns_1_50'], '14.1f')} {_fmt(v['us_turns_451_500'], '17.1f')} "
            f"{_fmt(v['ms_per_run'], '9.1f')} {_fmt(v['bytes'], '13,d')}"
        )
    per_turn = ", ".join(f"{name} {value:g}" for name, value in result["commits_per_turn"].items())
    print(
        f"raw message bytes {result['raw_message_bytes']:,}; one fsync'd SQLite commit "
        f"{_fmt(result['sqlite_commit_us'], '.0f')} us; commits per turn: {per_turn}"
    )
    target = result["target"]
    lines = [
        ("ratio turns 1-50 (langgraph / ours)", result["ratio_1_50"], f">= {target['ratio_1_50_min']:g}", ".1f"),
        ("ratio last 50 turns", result["ratio_451_500"], f">= {target['ratio_451_500_min']:g}", ".1f"),
        ("ours flatness (last 50 / first 50)", result["ours_flatness"], f"<= {target['flatness_max']:g}", ".2f"),
        ("ours bytes / raw", result["ours_bytes_ratio"], f"<= {target['bytes_ratio_max']:g}", ".2f"),
        ("resume (ms)", result["resume_ms_500_turns"], f"<= {target['resume_ms_max']:g}", ".2f"),
        ("replay (us per turn)", result["replay_us_per_turn"], f"<= {target['replay_us_per_turn_max']:g}", ".1f"),
    ]
    for label, value, bound, spec in lines:
        print(f"  {label:<38} {_fmt(value, spec):>9}  target {bound}")
    print(
        f"  (langgraph flatness {_fmt(result['langgraph_flatness'], '.2f')}, langgraph bytes / raw "
        f"{_fmt(result['langgraph_bytes_ratio'], '.1f')}, resume() returned after "
        f"{_fmt(result['resume_handle_ms'], '.2f')} ms, replay identical: {result['replay_identical']})"
    )
    ahead = result["write_ahead"]
    print(
        f"  (write-ahead turn, idempotent tool: ratio turns 1-50 {_fmt(ahead['ratio_1_50'], '.1f')}, "
        f"last 50 turns {_fmt(ahead['ratio_451_500'], '.1f')}; informative)"
    )
    print(f"targets: {'met' if target['met'] else 'MISSED: ' + ', '.join(target['missed'])}")
    for note in result["notes"]:
        print(f"note: {note}")
    if result["network_attempts"]:
        print(f"warning: {result['network_attempts']} network attempts were blocked: {NETWORK_ATTEMPTS[:3]}")


async def profile(turns: int, top: int) -> str:
    """Profile one run of ours (after a warm-up) and return the statistics."""
    script = Script.build(turns)
    with tempfile.TemporaryDirectory(prefix="durable-turn-") as tmp:
        workdir = Path(tmp)
        await _timed(prepare_ours(Script.build(WARMUP_TURNS), workdir), WARMUP_TURNS, "ours")
        prepared = prepare_ours(script, workdir)
        profiler = cProfile.Profile()
        gc.collect()
        profiler.enable()
        try:
            await prepared.run()
        finally:
            profiler.disable()
            await prepared.finish()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(f"cProfile of one run of ours, {turns} turns (divide by {turns + 1} turns for per-turn costs)\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=500, help="model + tool turns per run (>= 100; default 500)")
    parser.add_argument("--runs", type=int, default=5, help="timed repetitions (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--no-postgres", dest="postgres", action="store_false", help="skip ours on PostgreSQL")
    parser.add_argument(
        "--no-gc-freeze", dest="gc_freeze", action="store_false", help="do not gc.freeze() after the warm-ups"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one run of ours and print it (no bench)")
    args = parser.parse_args(argv)
    if args.turns < 2 * WINDOW or args.runs < 1:
        parser.error(f"--turns must be >= {2 * WINDOW} and --runs >= 1")

    block_network("bench/durable_turn.py")
    if args.profile:
        print(asyncio.run(profile(args.turns, 40)))
        return 0
    results = asyncio.run(measure(args.turns, args.runs, postgres=args.postgres, gc_freeze=args.gc_freeze))
    result = report(results, args.turns, args.runs, gc_freeze=args.gc_freeze)
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)
    return 1 if args.check and not result["target"]["met"] else 0


if __name__ == "__main__":
    sys.exit(main())
