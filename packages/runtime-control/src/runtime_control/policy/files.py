r"""Policy files in TOML or YAML: the schema, the loaders, and line-numbered validation errors.

A policy file holds the settings of a `RulePolicyEngine` (safety checkers are code, so they are passed
when the engine is built)::

    preset = "balanced"                  # safe | balanced | power | developer
    default_action = "allow"             # allow | deny | ask: when no rule matches
    allowed_tools = ["*"]                # the execution allowlist
    denied_tools = []
    requires_approval = ["file:write"]
    interactive_approval = [...]         # default: shell:*, bash:*, file:write, file:edit

    [permissions]                        # overrides of the preset: only the keys given
    bash = "confirm"

    [[rules]]
    id = "no-force-push"
    action = "deny"
    tools = ["shell:run"]
    conditions = [{ path = "command", op = "matches", value = "git\\s+push\\s+.*--force" }]

Every problem is reported at once, each with its line: ``policy.toml:12: rules[2].action: must be one of
allow, deny, ask``. TOML comes from the standard library; YAML needs the ``yaml`` extra
(``pip install 'runtime-control[yaml]'``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtime_control.config_files import (
    ConfigFormat,
    format_location,
    locate,
    read_document,
    validation_problems,
)
from runtime_control.exceptions import ConfigProblem, PolicyFileError
from runtime_control.policy._rules import Problem, compile_rules
from runtime_control.policy.engine import DEFAULT_INTERACTIVE_APPROVAL, RulePolicyEngine, SafetyChecker
from runtime_control.policy.presets import (
    DEFAULT_SECURITY_PRESET,
    SECURITY_PRESETS,
    ResourceLimits,
    SandboxConfig,
    SecurityPolicy,
    ToolPermissions,
)
from runtime_core.policy import PolicyAction, PolicyRule

__all__ = ["PolicyFile", "PolicyFormat", "load_policy", "parse_policy"]

PolicyFormat = ConfigFormat
"""The syntaxes a policy file may use."""

_SUFFIXES: dict[str, PolicyFormat] = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}

_ToolPattern = Annotated[str, Field(min_length=1)]


class PolicyFile(BaseModel):
    """The contents of a policy file.

    ``permissions``, ``sandbox`` and ``limits`` override the preset's values key by key: only the keys
    a file sets replace the preset's.

    Attributes:
        preset: Security preset the policy starts from.
        permissions: Permission levels that replace the preset's.
        sandbox: Sandbox settings that replace the preset's.
        limits: Resource limits that replace the preset's.
        default_action: What happens when no rule matches.
        allowed_tools: The execution allowlist.
        denied_tools: Tool patterns that are always denied.
        requires_approval: Tool patterns whose calls need confirmation.
        interactive_approval: Tool patterns whose calls need confirmation in interactive mode.
        rules: Governance rules, in priority ties' order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str = DEFAULT_SECURITY_PRESET
    permissions: ToolPermissions | None = None
    sandbox: SandboxConfig | None = None
    limits: ResourceLimits | None = None
    default_action: PolicyAction = PolicyAction.ALLOW
    allowed_tools: tuple[_ToolPattern, ...] = ("*",)
    denied_tools: tuple[_ToolPattern, ...] = ()
    requires_approval: tuple[_ToolPattern, ...] = ()
    interactive_approval: tuple[_ToolPattern, ...] = DEFAULT_INTERACTIVE_APPROVAL
    rules: tuple[PolicyRule, ...] = ()

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in SECURITY_PRESETS:
            raise ValueError(f"unknown preset {value!r}; valid presets: {', '.join(SECURITY_PRESETS)}")
        return value

    @model_validator(mode="after")
    def _rules_compile(self) -> PolicyFile:
        _, problems = compile_rules(self.rules)
        if problems:
            raise ValueError("; ".join(f"{format_location(location)}: {message}" for location, message in problems))
        return self

    def security_policy(self) -> SecurityPolicy:
        """Return the preset with this file's overrides applied."""
        base = SECURITY_PRESETS[self.preset]
        return SecurityPolicy(
            sandbox=_overlay(base.sandbox, self.sandbox),
            permissions=_overlay(base.permissions, self.permissions),
            limits=_overlay(base.limits, self.limits),
        )

    def build_engine(self, *, safety_checkers: Sequence[SafetyChecker] = ()) -> RulePolicyEngine:
        """Return the engine this file describes.

        Args:
            safety_checkers: Checkers to run after the rules (they are code, so files cannot hold them).
        """
        return RulePolicyEngine(
            self.rules,
            security=self.security_policy(),
            allowed_tools=self.allowed_tools,
            denied_tools=self.denied_tools,
            requires_approval=self.requires_approval,
            interactive_approval=self.interactive_approval,
            default_action=self.default_action,
            safety_checkers=safety_checkers,
        )


_Model = TypeVar("_Model", bound=BaseModel)


def _overlay(base: _Model, override: _Model | None) -> _Model:
    if override is None:
        return base
    return base.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


def load_policy(path: str | os.PathLike[str]) -> PolicyFile:
    """Read a policy file; the suffix picks the syntax (``.toml``, ``.yaml``, ``.yml``).

    Raises:
        PolicyFileError: The file is not valid (the error lists every problem with its line), or its
            suffix names no supported syntax.
        ImportError: A YAML file, without the ``yaml`` extra installed.
        OSError: The file cannot be read.
    """
    file = Path(path)
    syntax = _SUFFIXES.get(file.suffix.lower())
    if syntax is None:
        raise PolicyFileError(
            str(file), [ConfigProblem(str(file), None, "", "policy files must end in .toml, .yaml or .yml")]
        )
    return parse_policy(file.read_text(encoding="utf-8"), format=syntax, path=str(file))


def parse_policy(text: str, *, format: PolicyFormat, path: str = "<string>") -> PolicyFile:
    """Parse and validate a policy written in `format`.

    Args:
        text: The policy text.
        format: ``toml`` or ``yaml``.
        path: Name used in error messages.

    Raises:
        PolicyFileError: The policy is not valid; the error lists every problem with its line.
        ImportError: YAML, without the ``yaml`` extra installed.
    """
    data, positions = read_document(text, format=format, path=path, error=PolicyFileError)
    problems = _problems(data)
    if problems:
        raise locate(path, positions, problems, PolicyFileError)
    return PolicyFile.model_validate(data)


# -- validation ------------------------------------------------------------------------------------


def _problems(data: object) -> list[Problem]:
    if not isinstance(data, dict):
        return [((), "a policy must be a table (mapping) of settings")]
    problems: list[Problem] = []
    try:
        PolicyFile.model_validate(data)
    except ValidationError as error:
        # Errors at the root come from the rule checks, which are reported below with their locations.
        problems.extend((where, what) for where, what in validation_problems(error) if where)
    rules = data.get("rules")
    if isinstance(rules, list):
        valid: list[tuple[int, PolicyRule]] = []
        for index, raw in enumerate(rules):
            try:
                valid.append((index, PolicyRule.model_validate(raw)))
            except ValidationError:
                continue  # already reported by the whole-file validation
        problems.extend(compile_rules((rule for _, rule in valid), numbers=[index for index, _ in valid])[1])
    return problems
