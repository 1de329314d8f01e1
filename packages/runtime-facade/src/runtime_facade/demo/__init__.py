"""The demo: a scripted agent fixes a small bug in a throw-away git workspace, under a policy that asks.

``agent-runtime demo`` (``make demo``) runs it offline: the agent lists and reads the project, edits
``greet.py`` (the policy asks first, the demo approves), runs the tests and completes; the run is then
replayed with zero divergence. The pieces are here for the CLI and for tests:

```python
import asyncio, tempfile
from runtime_facade import create_runtime
from runtime_facade.demo import prepare_workspace, run_demo

async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        workspace = prepare_workspace(directory)
        async with create_runtime() as runtime:
            outcome = await run_demo(runtime, workspace)
        assert outcome.ok, outcome

asyncio.run(main())
```
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime_core.approvals import Approval
from runtime_core.events import Event, PolicyDecidedPayload, ToolCalledPayload
from runtime_core.exceptions import ConfigurationError
from runtime_core.policy import PolicyAction, PolicyOutcome
from runtime_core.runs import RunResult, RunStatus
from runtime_core.usage import Usage
from runtime_execution import ReplayReport, decisions
from runtime_facade.agent_files import load_agent
from runtime_facade.runtime import Runtime

__all__ = ["AGENT_FILE", "SEED_FILES", "TASK", "DemoOutcome", "prepare_workspace", "run_demo", "workspace_diff"]

AGENT_FILE = Path(__file__).with_name("agent.toml")
"""The demo agent (its policy and scripted scenario are beside it)."""

TASK = "The unit test in test_greet.py fails. Find out why, fix the code and make the test pass."
"""What the demo asks the agent to do."""

SEED_FILES = {
    "greet.py": 'def greet(name):\n    return f"Hello {name}!"\n',
    "test_greet.py": (
        "import unittest\n\nfrom greet import greet\n\n\n"
        "class GreetTest(unittest.TestCase):\n"
        "    def test_greets_with_a_comma(self):\n"
        '        self.assertEqual(greet("Ada"), "Hello, Ada!")\n\n\n'
        'if __name__ == "__main__":\n    unittest.main()\n'
    ),
}
"""The workspace's files before the run: ``greet.py`` lacks the comma its test expects."""

_ACTIONS = {
    PolicyOutcome.ALLOW: PolicyAction.ALLOW,
    PolicyOutcome.ALLOW_WITH_CONFIRM: PolicyAction.ASK,
    PolicyOutcome.DENY: PolicyAction.DENY,
}
"""The action behind an outcome, for engines that leave `PolicyDecision.policy_action` unset."""

_GIT_IDENTITY = ("-c", "user.name=Agent Runtime demo", "-c", "user.email=demo@agent-runtime.invalid")


@dataclass(frozen=True)
class DemoOutcome:
    """What the demo did, for its summary.

    Attributes:
        result: The run's end (after the approval and the resume).
        replay: The replay of the finished run.
        approvals: The approval requests the demo answered.
        tools: How often each tool was called (the model's calls, not the resumed turn's repeats).
        policy: How many policy decisions of each action (``allow``, ``ask``, ``deny``).
        usage: Tokens and cost of the whole run.
        diff: ``git diff`` of the workspace after the run.
    """

    result: RunResult
    replay: ReplayReport
    approvals: Sequence[Approval] = ()
    tools: Counter[str] = field(default_factory=Counter)
    policy: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    diff: str = ""

    @property
    def ok(self) -> bool:
        """Whether the run completed and its replay is identical."""
        return self.result.status is RunStatus.COMPLETED and self.replay.identical


def prepare_workspace(directory: str | Path) -> Path:
    """Write the seed files into ``<directory>/workspace`` and commit them in a new git repository.

    Raises:
        ConfigurationError: git is not installed or fails.
    """
    workspace = Path(directory) / "workspace"
    workspace.mkdir(parents=True)
    for name, text in SEED_FILES.items():
        (workspace / name).write_text(text, encoding="utf-8")
    _git(workspace, "init", "--quiet")
    _git(workspace, "add", *SEED_FILES)
    _git(workspace, *_GIT_IDENTITY, "commit", "--quiet", "--no-gpg-sign", "-m", "The demo project")
    return workspace


def workspace_diff(workspace: Path) -> str:
    """``git diff`` of the workspace against its first commit."""
    return _git(workspace, "--no-pager", "diff", "--no-color", "--no-ext-diff")


async def run_demo(
    runtime: Runtime,
    workspace: Path,
    *,
    on_event: Callable[[Event], None] | None = None,
    on_approval: Callable[[Approval], None] | None = None,
) -> DemoOutcome:
    """Run the demo agent in `workspace`, approve what its policy asks, resume, then replay the run.

    Args:
        runtime: Where to run it (its store keeps the run).
        workspace: A workspace made by `prepare_workspace`.
        on_event: Called with every recorded event, live (the CLI's progress view).
        on_approval: Called before the demo approves a request.

    Raises:
        ConfigurationError: The run went another way than the demo's (it did not stop for the approval).
    """
    handle = await runtime.start(load_agent(AGENT_FILE), TASK, workspace=workspace)
    answered: list[Approval] = []
    seen = 0
    while True:
        async for item in handle.events(after_seq=seen, deltas=False):
            if isinstance(item, Event):
                seen = item.seq
                if on_event is not None:
                    on_event(item)
        result = await handle.result()
        if result.status is not RunStatus.WAITING_APPROVAL:
            break
        pending = await runtime.pending_approvals(result.run_id)
        if not pending:
            raise ConfigurationError(f"demo run {result.run_id} waits for an approval that is not pending")
        for approval in pending:
            if on_approval is not None:
                on_approval(approval)
            answered.append(await runtime.approve(approval.id, resolved_by="demo", note="approved by the demo"))
        handle = await runtime.resume(result.run_id)
    if not answered:
        raise ConfigurationError("the demo's policy should have asked before the edit; it did not")
    report = await runtime.replay(result.run_id)
    log = await runtime.store.read_events(result.run_id)
    tools, policy = _counts(log)
    diff = await asyncio.to_thread(workspace_diff, workspace)
    return DemoOutcome(result, report, answered, tools, policy, result.usage, diff)


def _counts(log: Sequence[Event]) -> tuple[Counter[str], Counter[str]]:
    """Tool calls and policy decisions (by action) of a run, each once (not the resumed turn's repeats)."""
    kept = {decision.seq for decision in decisions(log)}
    tools: Counter[str] = Counter()
    policy: Counter[str] = Counter()
    for event in log:
        if event.seq not in kept:
            continue
        if isinstance(event.payload, ToolCalledPayload):
            tools[event.payload.call.name] += 1
        elif isinstance(event.payload, PolicyDecidedPayload):
            decision = event.payload.decision
            policy[(decision.policy_action or _ACTIONS[decision.policy_decision]).value] += 1
    return tools, policy


def _git(workspace: Path, *arguments: str) -> str:
    try:
        completed = subprocess.run(
            ["git", *arguments], cwd=workspace, capture_output=True, text=True, check=True, timeout=30
        )
    except FileNotFoundError:
        raise ConfigurationError("the demo needs git on PATH") from None
    except subprocess.CalledProcessError as error:
        raise ConfigurationError(f"git failed in {workspace}: {error.stderr.strip()}") from None
    return completed.stdout
