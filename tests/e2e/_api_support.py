"""Helpers of the HTTP API end-to-end tests: a real server in a subprocess, scripted agents, SSE parsing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from runtime_persistence import create_engine, upgrade

TOKEN = "e2e-secret-token"
_URL = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def write_agent(directory: Path, name: str, steps: list[str], *, ask: tuple[str, ...] = ()) -> str:
    """Write a scripted agent (TOML scenario steps) and its workspace; return the agent file's text.

    `ask`: tools whose calls need an approval.
    """
    (directory / "workspace").mkdir(exist_ok=True)
    scenario = directory / f"{name}.scenario.toml"
    scenario.write_text('model = "scripted-e2e"\n' + "\n".join(steps), encoding="utf-8")
    policy = ""
    if ask:
        policy = f'\n[policy]\npreset = "balanced"\nrequires_approval = {json.dumps(list(ask))}\n'
    return (
        f'name = "{name}"\n'
        'instructions = "Do the task, then call complete_task."\n'
        'tools = ["file:*"]\n'
        'workspace = "workspace"\n'
        f"{policy}\n"
        "[model]\n"
        f'name = "scripted:{name}"\n'
        f'scenario = "{scenario.name}"\n'
    )


def step(*calls: tuple[str, dict[str, Any]], delay_s: float = 0.0) -> str:
    """One scenario step calling `calls` (name, arguments)."""
    text = f'[[steps]]\ntext = "step"\ndelay_s = {delay_s}\nusage = {{ input_tokens = 100, output_tokens = 10 }}\n'
    for name, arguments in calls:
        text += f"[[steps.tool_calls]]\nname = {json.dumps(name)}\narguments = {_inline(arguments)}\n"
    return text


def complete(summary: str = "done") -> str:
    """The step that ends the run."""
    return step(("complete_task", {"summary": summary}))


def _inline(arguments: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in arguments.items()) + " }"


@dataclass
class ApiServer:
    """``python -m runtime_facade.api`` on 127.0.0.1 (a free port), with a SQLite database in `directory`."""

    directory: Path
    token: str | None = TOKEN
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    starts: int = 0

    def __post_init__(self) -> None:
        self.log = self.directory / "server.log"

    @property
    def database(self) -> str:
        return f"sqlite:///{self.directory / 'runtime.db'}"

    def start(self, timeout_s: float = 30.0) -> ApiServer:
        """Start the server and wait until it logs its URL (the database is migrated first, as by its owner)."""
        engine = create_engine(self.database)
        upgrade(engine)
        engine.dispose()
        self.starts += 1
        self.log = self.directory / f"server-{self.starts}.log"
        command = [sys.executable, "-m", "runtime_facade.api", "--db", self.database, "--port", "0"]
        if self.token is not None:
            token_file = self.directory / "token"
            token_file.write_text(self.token + "\n", encoding="utf-8")
            command += ["--token-file", str(token_file)]
        environ = {key: value for key, value in os.environ.items() if not key.startswith("AGENT_RUNTIME_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.directory, env=environ, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = _URL.search(self.log.read_text(encoding="utf-8", errors="replace"))
            if found:
                self.url = found.group(1)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.log.read_text(encoding='utf-8')}")

    def client(self, *, token: str | None = TOKEN, timeout_s: float = 30.0) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def read_sse(response: httpx.Response, *, limit: int | None = None) -> list[SseMessage]:
    """Parse a streamed SSE response (comments skipped); stop after `limit` messages if given."""
    messages: list[SseMessage] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line:
            key, _, value = line.partition(": ")
            fields[key] = value
            continue
        if fields:
            messages.append(SseMessage(fields.get("id"), fields.get("event"), fields.get("data", "")))
            fields = {}
            if limit is not None and len(messages) >= limit:
                break
    return messages


def wait_for(predicate: Any, *, timeout_s: float = 20.0, what: str = "the condition") -> Any:
    """Poll `predicate` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
