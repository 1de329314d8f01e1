r"""Agent files: an agent described in TOML, validated with every problem reported at its line.

```toml
name = "fixer"
instructions = "You fix failing tests. Finish with complete_task."   # or instructions_file = "prompt.md"
tools = ["file:*", "shell:run"]
mode = "batch"                       # batch | interactive
workspace = "."                      # root of the file and shell tools, relative to this file
policy = "balanced"                  # a preset, a policy file ("policy.toml"), or a [policy] table

[model]
name = "openai:gpt-4.1-mini"         # <provider>:<model>; provider: openai, anthropic, scripted
base_url = "http://127.0.0.1:8000/v1"  # default: $OPENAI_BASE_URL / $ANTHROPIC_BASE_URL, then the vendor's
api_key_env = "OPENAI_API_KEY"       # the variable that holds the key (never the key itself)

[limits]
max_turns = 30

[budget]
max_cost_usd = 0.50
```

A scripted model reads its replies from a scenario file: ``[model] name = "scripted:demo"`` and
``scenario = "scenario.toml"`` (see docs/providers.md). Paths are relative to the agent file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PositiveFloat,
    ValidationError,
    field_validator,
    model_validator,
)

from runtime_control import SECURITY_PRESETS, ConfigProblem, PolicyFile, load_policy, locate, read_document
from runtime_control.config_files import Location, validation_problems
from runtime_core.agents import AgentSpec, ExecutionMode, Limits, RecoveryConfig
from runtime_core.budgets import Budget
from runtime_facade.exceptions import AgentFileError

__all__ = [
    "AgentDefinition",
    "AgentFile",
    "ModelSettings",
    "PolicySource",
    "load_agent",
    "parse_agent",
    "resolve_inside",
    "resolve_policy",
]

PROVIDERS = ("openai", "anthropic", "scripted")
"""The model providers an agent file may name."""

_DEFAULT_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_DEFAULT_URL_VARIABLES = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_POLICY_SUFFIXES = (".toml", ".yaml", ".yml")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSettings(_Section):
    """The ``[model]`` table: which model, and how to reach it.

    Attributes:
        name: ``<provider>:<model>`` (``openai:gpt-4.1``, ``anthropic:claude-sonnet-4``, ``scripted:demo``).
        base_url: Endpoint of an ``openai`` or ``anthropic`` provider (any compatible server).
        api_key_env: The environment variable holding the API key.
        scenario: The scenario file of a ``scripted`` model.
        timeout_s: Timeout of one HTTP request to the provider.
        max_retries: Retries of a failed provider request (429, 5xx, timeouts).
    """

    name: str
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    scenario: str | None = None
    timeout_s: PositiveFloat = 120.0
    max_retries: int = Field(default=2, ge=0, le=10)

    @property
    def provider(self) -> str:
        """The provider part of `name`."""
        return self.name.partition(":")[0]

    @field_validator("name")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        provider, colon, model = value.partition(":")
        if not colon or not model or provider not in PROVIDERS:
            raise ValueError(f"must be <provider>:<model> with a provider among {', '.join(PROVIDERS)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _fits_provider(self) -> ModelSettings:
        if self.provider == "scripted":
            if self.scenario is None:
                raise ValueError('a scripted model needs a scenario file: scenario = "scenario.toml"')
            if self.base_url is not None or self.api_key_env is not None:
                raise ValueError("a scripted model takes no base_url or api_key_env")
        elif self.scenario is not None:
            raise ValueError(f"scenario is for scripted models, not {self.provider}")
        return self

    def api_key(self, environ: dict[str, str] | os._Environ[str] | None = None) -> str | None:
        """The API key, read from the environment (``None`` when unset: local servers often need none)."""
        variable = self.api_key_env or _DEFAULT_KEY_VARIABLES.get(self.provider)
        return None if variable is None else (os.environ if environ is None else environ).get(variable)

    def endpoint(self, environ: dict[str, str] | os._Environ[str] | None = None) -> str | None:
        """The base URL: the file's, else ``$OPENAI_BASE_URL`` / ``$ANTHROPIC_BASE_URL``, else ``None``."""
        if self.base_url is not None:
            return self.base_url
        variable = _DEFAULT_URL_VARIABLES.get(self.provider)
        return None if variable is None else (os.environ if environ is None else environ).get(variable)


class AgentFile(_Section):
    """The schema of an agent file (see the module description for an example).

    Attributes:
        name: The agent's name.
        instructions: The system prompt.
        instructions_file: A file holding the system prompt instead (relative to the agent file).
        model: A ``[model]`` table, or just ``"<provider>:<model>"``.
        tools: Tool name patterns the agent may use (``complete_task`` is always available).
        mode: ``batch`` (parallel, dependency-safe groups) or ``interactive`` (one tool per turn).
        role: The agent's role, seen by policy rules.
        workspace: Root directory of the file and shell tools (relative to the agent file).
        policy: A preset name, a policy file, or a policy table (the policy-file schema).
        limits: Turn, time and parallelism limits.
        recovery: The recovery turn.
        budget: Token, cost, turn, time and tool-call limits.
        metadata: Stored with each run.
    """

    name: str = Field(min_length=1, max_length=200)
    instructions: str = ""
    instructions_file: str | None = None
    model: ModelSettings
    tools: tuple[Annotated[str, Field(min_length=1)], ...] = ("*",)
    mode: ExecutionMode = ExecutionMode.BATCH
    role: str | None = None
    workspace: str | None = None
    policy: str | PolicyFile | None = None
    limits: Limits = Limits()
    recovery: RecoveryConfig = RecoveryConfig()
    budget: Budget | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, data: object) -> object:
        # model = "openai:gpt-4.1" is short for [model] name = "openai:gpt-4.1".
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            return {**data, "model": {"name": data["model"]}}
        return data

    @field_validator("policy")
    @classmethod
    def _preset_or_file(cls, value: str | PolicyFile | None) -> str | PolicyFile | None:
        if isinstance(value, str) and not (value in SECURITY_PRESETS or value.lower().endswith(_POLICY_SUFFIXES)):
            raise ValueError(
                f"{value!r} is neither a preset ({', '.join(SECURITY_PRESETS)}) nor a policy file (.toml, .yaml, .yml)"
            )
        return value

    def problems(self) -> list[tuple[Location, str]]:
        """What is wrong across settings (each setting being valid on its own)."""
        problems: list[tuple[Location, str]] = []
        if self.instructions and self.instructions_file:
            problems.append((("instructions_file",), "give instructions or instructions_file, not both"))
        if self.recovery.enabled and self.recovery.grace_turns >= self.limits.max_turns:
            problems.append(
                (
                    ("recovery", "grace_turns"),
                    f"must be below limits.max_turns ({self.limits.max_turns}), got {self.recovery.grace_turns}",
                )
            )
        return problems


@dataclass(frozen=True, slots=True)
class PolicySource:
    """Where an agent's policy comes from, resolved: a preset, or a policy file's contents.

    Attributes:
        name: What the agent file said: the preset's name, the file's path, or ``"inline"``.
        policy: The policy (a preset is a policy file with only ``preset`` set).
    """

    name: str
    policy: PolicyFile


@dataclass(frozen=True, slots=True)
class AgentDefinition:
    """An agent, resolved and ready to run: its `AgentSpec` and what the spec cannot hold.

    Attributes:
        spec: The agent as recorded in each run's ``run.created`` event.
        model: How to reach the model.
        policy: The agent's policy, or ``None`` to use the runtime's.
        workspace: Root directory of its file and shell tools, or ``None`` for the runtime's.
        path: The agent file it was read from, if any.
    """

    spec: AgentSpec
    model: ModelSettings
    policy: PolicySource | None = None
    workspace: Path | None = None
    path: Path | None = None

    @classmethod
    def of(
        cls, spec: AgentSpec, *, model: ModelSettings | None = None, workspace: str | os.PathLike[str] | None = None
    ) -> AgentDefinition:
        """Define an agent in code (its policy: the runtime's, or the spec's preset name).

        Raises:
            ConfigurationError: `spec.policy` names a policy file that cannot be read.
        """
        model = model or ModelSettings(name=spec.model)
        policy = resolve_policy(spec.policy, Path.cwd()) if spec.policy else None
        return cls(spec, model, policy, None if workspace is None else Path(workspace).resolve())


def load_agent(path: str | os.PathLike[str]) -> AgentDefinition:
    """Read and validate an agent file.

    Raises:
        AgentFileError: The file cannot be read or is not valid; the message lists every problem with its
            line (a policy file it names is checked too, and reported with its own lines).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        problem = ConfigProblem(str(file), None, "", f"cannot read it: {error.strerror}")
        raise AgentFileError(str(file), [problem]) from None
    return parse_agent(text, path=str(file), base_dir=file.resolve().parent)


def parse_agent(
    text: str, *, path: str = "<string>", base_dir: str | os.PathLike[str] | None = None, confine: bool = False
) -> AgentDefinition:
    """Validate an agent file's text (`base_dir` resolves its relative paths; default: the current directory).

    With `confine`, every file and directory the text names (instructions, scenario, policy file,
    workspace) must be inside `base_dir`: for agent text from a client (the HTTP API), which must not
    reach the server's other files. Nothing outside is read.

    Raises:
        AgentFileError: The text is not a valid agent file; one line per problem.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    data, positions = read_document(text, format="toml", path=path, error=AgentFileError)
    try:
        agent = AgentFile.model_validate(data)
    except ValidationError as error:
        raise locate(path, positions, _agent_problems(error), AgentFileError) from None
    problems = agent.problems()
    root = base.resolve()

    def resolved(location: Location, value: str) -> Path | None:
        """`value` against `base`, or ``None`` with a problem noted (no path, or outside `base` if confined)."""
        path = resolve_inside(root, value) if confine else _resolve(root, value)
        if path is None:
            where = f"outside {str(root)!r}, which it must stay inside" if "\0" not in value else "not a path"
            problems.append((location, f"{value!r} is {where}"))
        return path

    instructions = agent.instructions
    file = agent.instructions_file
    if file is not None and not agent.instructions and (found := resolved(("instructions_file",), file)):
        try:
            instructions = found.read_text(encoding="utf-8")
        except OSError as error:
            problems.append((("instructions_file",), f"cannot read {file!r}: {error.strerror}"))
    model = agent.model
    if model.scenario is not None and (scenario := resolved(("model", "scenario"), model.scenario)):
        if not scenario.is_file():
            problems.append((("model", "scenario"), f"no such file: {str(scenario)!r}"))
        model = model.model_copy(update={"scenario": str(scenario)})
    workspace = None if agent.workspace is None else resolved(("workspace",), agent.workspace)
    if workspace is not None and not workspace.is_dir():
        problems.append((("workspace",), f"no such directory: {str(workspace)!r}"))
    if isinstance(agent.policy, str) and agent.policy not in SECURITY_PRESETS:
        resolved(("policy",), agent.policy)
    if problems:
        raise locate(path, positions, problems, AgentFileError)
    policy = _policy_of(agent.policy, base, path, positions)
    spec = AgentSpec(
        name=agent.name,
        model=model.name,
        instructions=instructions,
        tools=agent.tools,
        mode=agent.mode,
        limits=agent.limits,
        recovery=agent.recovery,
        budget=agent.budget,
        role=agent.role,
        policy=None if policy is None else policy.name,
        metadata=agent.metadata,
    )
    return AgentDefinition(spec, model, policy, workspace, None if path == "<string>" else Path(path).resolve())


def resolve_inside(root: Path, value: str) -> Path | None:
    """`value` (relative to `root`, an absolute, resolved directory) resolved, if it stays inside `root`.

    Symlinks are resolved first, so one inside that points elsewhere is outside. ``None`` when the path
    leaves `root`, or names no path at all (a NUL character).
    """
    path = _resolve(root, value)
    return path if path is not None and path.is_relative_to(root) else None


def _resolve(base: Path, value: str) -> Path | None:
    return None if "\0" in value else (base / value).resolve()


def _agent_problems(error: ValidationError) -> list[tuple[Location, str]]:
    """Validation problems, without the noise of the ``policy`` union (a string or a table)."""
    problems: list[tuple[Location, str]] = []
    for location, message in validation_problems(error):
        if len(location) >= 2 and location[0] == "policy":
            # pydantic names the union member tried ("policy.str", "policy.PolicyFile"): keep the table's
            # problems under the key itself, and drop the string member's complaint about a table.
            member = location[1]
            if member in ("str", "constrained-str"):
                continue
            location = (location[0], *location[2:])
        problems.append((location, message))
    return problems


def _policy_of(
    value: str | PolicyFile | None, base: Path, path: str, positions: dict[Location, int]
) -> PolicySource | None:
    if value is None:
        return None
    if isinstance(value, PolicyFile):
        return PolicySource("inline", value)
    try:
        return resolve_policy(value, base)
    except AgentFileError as error:
        raise locate(path, positions, [(("policy",), error.problems[0].message)], AgentFileError) from None


def resolve_policy(value: str, base: Path) -> PolicySource:
    """A preset name, or a policy file (relative to `base`), resolved.

    Raises:
        AgentFileError: No such policy file.
        PolicyFileError: The policy file is invalid.
    """
    if value in SECURITY_PRESETS:
        return PolicySource(value, PolicyFile(preset=value))
    file = (base / value).resolve()
    if not file.is_file():
        raise AgentFileError(str(file), [ConfigProblem(str(file), None, "policy", f"no such policy file: {value!r}")])
    return PolicySource(str(file), load_policy(file))
