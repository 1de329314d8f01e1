"""create_runtime and Runtime: every plane wired, on in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from runtime_core.approvals import ApprovalStatus
from runtime_core.clock import ManualClock
from runtime_core.events import EventType
from runtime_core.ids import SequentialIds
from runtime_core.runs import RunStatus
from runtime_facade import LAUNCH_KEY, AgentDefinition, Runtime, create_runtime, load_agent, load_config
from runtime_persistence import SchemaOutdatedError, create_engine, upgrade

SCENARIO = """
model = "m"
[[steps]]
[[steps.tool_calls]]
name = "file:read"
arguments = { path = "notes.txt" }
[[steps]]
[[steps.tool_calls]]
name = "file:write"
arguments = { path = "out.txt", content = "done" }
[[steps]]
[[steps.tool_calls]]
name = "complete_task"
arguments = { summary = "wrote out.txt" }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_text("write done into out.txt\n")
    (tmp_path / "scenario.toml").write_text(SCENARIO)
    (tmp_path / "ask.toml").write_text('requires_approval = ["file:write"]\n')
    (tmp_path / "deny.toml").write_text('denied_tools = ["file:write"]\n')
    (tmp_path / "agent.toml").write_text(
        'name = "writer"\ntools = ["file:*"]\nworkspace = "ws"\npolicy = "ask.toml"\n'
        '[model]\nname = "scripted:m"\nscenario = "scenario.toml"\n'
    )
    return tmp_path


def agent_with_policy(project: Path, policy: str) -> AgentDefinition:
    text = (project / "agent.toml").read_text().replace('policy = "ask.toml"', f'policy = "{policy}"')
    path = project / f"agent-{policy}"
    path.write_text(text)
    return load_agent(path)


def test_an_in_memory_runtime_runs_an_agent_file_and_publishes_on_the_bus(project: Path) -> None:
    async def scenario() -> None:
        async with create_runtime(clock=ManualClock(), ids=SequentialIds()) as runtime:
            result = await runtime.run(agent_with_policy(project, "balanced"), "go")
            assert result.ok, result
            assert (project / "ws" / "out.txt").read_text() == "done"
            assert result.run_id == "run_000001"  # the injected id generator
            types = [item.type for item in runtime.bus.history("run.*")]
            assert types[-1] == "run.completed"
            run = await runtime.get_run(result.run_id)
            launch = run.metadata[LAUNCH_KEY]
            assert isinstance(launch, dict)
            assert launch["policy_name"] == "balanced"
            assert launch["workspace"] == str((project / "ws").resolve())

    asyncio.run(scenario())


def test_approval_resume_and_replay_across_runtimes_on_sqlite(project: Path) -> None:
    url = f"sqlite:///{project / 'runs.db'}"

    async def first() -> str:
        async with create_runtime(url, auto_upgrade=True) as runtime:
            result = await runtime.run(project / "agent.toml", "write it")
            assert result.status is RunStatus.WAITING_APPROVAL
            return result.run_id

    run_id = asyncio.run(first())
    assert not (project / "ws" / "out.txt").exists()

    async def second() -> None:  # a new process: everything comes back from the database
        async with create_runtime(url) as runtime:
            [request] = await runtime.pending_approvals(run_id)
            assert request.tool_call.name == "file:write"
            approved = await runtime.approve(request.id, note="fine", resolved_by="alice")
            assert approved.status is ApprovalStatus.ALLOWED
            result = await (await runtime.resume(run_id)).result()
            assert result.ok, result
            assert (project / "ws" / "out.txt").read_text() == "done"
            report = await runtime.replay(run_id)
            assert report.identical, report.divergence
            denied = await runtime.replay(run_id, agent=agent_with_policy(project, "deny.toml"))
            assert denied.divergence is not None
            assert denied.divergence.actual is not None
            assert "'deny'" in denied.divergence.actual
            seqs = [event.seq async for event in runtime.events(run_id)]
            assert seqs == list(range(1, len(seqs) + 1))

    asyncio.run(second())


def test_cancel_from_another_runtime_fences_the_run_and_denies_its_requests(project: Path) -> None:
    url = f"sqlite:///{project / 'runs.db'}"
    runtime = create_runtime(url, auto_upgrade=True)
    waiting = runtime.run_sync(project / "agent.toml", "write it")
    assert waiting.status is RunStatus.WAITING_APPROVAL
    other = create_runtime(url)
    try:
        cancelled = other.cancel_sync(waiting.run_id, "changed my mind")
        assert cancelled.status is RunStatus.CANCELLED
        [request] = other._portal.call(other.approval_store.list(run_id=waiting.run_id))
        assert request.status is ApprovalStatus.DENIED
        assert request.resolved_by == "cancel"
        with pytest.raises(Exception, match="already ended"):
            other.cancel_sync(waiting.run_id)
    finally:
        other.close()
        runtime.close()


def test_fork_continues_a_scripted_run_from_its_turn(project: Path) -> None:
    async def scenario() -> None:
        async with create_runtime() as runtime:
            first = await runtime.run(agent_with_policy(project, "balanced"), "go")
            assert first.ok
            (project / "ws" / "out.txt").unlink()
            fork = await (await runtime.fork(first.run_id, at_turn=1)).result()
            assert fork.ok, fork  # the scenario went on with its second step: the write
            assert (project / "ws" / "out.txt").read_text() == "done"
            run = await runtime.get_run(fork.run_id)
            assert run.metadata["forked_from"] == {"run_id": first.run_id, "turn": 1}

    asyncio.run(scenario())


def test_events_follow_a_live_run_to_its_end(project: Path) -> None:
    async def scenario() -> None:
        async with create_runtime() as runtime:
            handle = await runtime.start(agent_with_policy(project, "balanced"), "go")
            types = [event.type async for event in runtime.events(handle.run_id, follow=True)]
            assert types[0] is EventType.RUN_CREATED
            assert types[-1] is EventType.RUN_COMPLETED

    asyncio.run(scenario())


def test_the_project_database_is_created_and_upgraded_but_a_named_one_is_not(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    runtime = create_runtime(config=load_config(environ={}))
    try:
        assert (project / ".agent-runtime" / "runtime.db").is_file()
        assert runtime.run_sync(agent_with_policy(project, "balanced"), "go").ok
    finally:
        runtime.close()
    with pytest.raises(SchemaOutdatedError, match="upgrade"):
        create_runtime(f"sqlite:///{project / 'other.db'}")


def test_postgresql_is_checked_then_used(project: Path, postgres_url: str) -> None:
    with pytest.raises(SchemaOutdatedError):
        create_runtime(postgres_url)
    engine = create_engine(postgres_url)
    upgrade(engine)
    engine.dispose()
    runtime: Runtime = create_runtime(postgres_url)
    try:
        waiting = runtime.run_sync(project / "agent.toml", "write it")
        assert waiting.status is RunStatus.WAITING_APPROVAL
        [request] = runtime._portal.call(runtime.pending_approvals(waiting.run_id))
        runtime.approve_sync(request.id)
        assert runtime.resume_sync(waiting.run_id).ok
        assert runtime.replay_sync(waiting.run_id).identical
    finally:
        runtime.close()


def test_a_stopped_run_waits_for_its_approval_however_long(project: Path) -> None:
    clock = ManualClock()

    async def scenario() -> None:
        async with create_runtime(clock=clock) as runtime:  # approval_wait=False: the CLI's way
            waiting = await runtime.run(project / "agent.toml", "write it")
            [request] = await runtime.pending_approvals(waiting.run_id)
            assert request.expires_at is None
            clock.advance(timedelta(days=3))
            await runtime.approve(request.id)
            assert (await (await runtime.resume(waiting.run_id)).result()).ok

        async with create_runtime(clock=clock, approval_wait=True, approval_timeout_s=0.2) as server:
            waiting = await server.start(project / "agent.toml", "write it")
            result = await waiting.result()  # nobody answers: denied when the request expires
            [request] = await server.approval_store.list(run_id=result.run_id)
            assert request.status is ApprovalStatus.EXPIRED
            assert request.expires_at is not None

    asyncio.run(scenario())


def test_stream_yields_the_run_and_leaving_early_cancels_it(project: Path) -> None:
    async def scenario() -> None:
        async with create_runtime() as runtime:
            types = [item.type async for item in runtime.stream(agent_with_policy(project, "balanced"), "go")]
            assert types[0] is EventType.RUN_CREATED
            assert types[-1] is EventType.RUN_COMPLETED
            stream = runtime.stream(agent_with_policy(project, "balanced"), "go again")
            first = await anext(stream)
            await stream.aclose()
            run = await runtime.get_run(first.run_id)
            assert run.status is RunStatus.CANCELLED

    asyncio.run(scenario())


def test_cancelling_the_task_awaiting_run_cancels_the_run(project: Path) -> None:
    slow = SCENARIO.replace("[[steps]]\n", "[[steps]]\ndelay_s = 30\n", 1)  # the first model call hangs
    (project / "scenario.toml").write_text(slow)

    async def scenario() -> None:
        async with create_runtime() as runtime:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await runtime.run(agent_with_policy(project, "balanced"), "go", run_id="run_slow")
            run = await runtime.get_run("run_slow")
            assert (run.status, run.reason) == (RunStatus.CANCELLED, "cancelled")
            events = [event async for event in runtime.events("run_slow")]
            assert events[-1].type is EventType.RUN_CANCELLED
            assert events[-1].payload.reason == "the task awaiting Runtime.run was cancelled"

    asyncio.run(scenario())
