"""The base permission checker: which permission of a security policy each built-in tool needs.

Tools are classified by name (first matching row wins); a tool no row names needs no permission. Levels
from ``allow_from`` up allow the call; levels from ``ask_from`` up (when set) allow it after
confirmation; anything lower denies it with an `Escalation` naming the lowest level that would do.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime_control.policy.presets import (
    BashPermission,
    CodePermission,
    FilePermission,
    NetworkAccess,
    ToolPermissions,
)
from runtime_core.policy import Escalation, PolicyAction
from runtime_core.tools import match_tool_pattern

__all__ = ["PermissionVerdict", "check_permission"]


_Level = BashPermission | FilePermission | CodePermission | NetworkAccess


@dataclass(frozen=True, slots=True)
class _Requirement:
    patterns: tuple[str, ...]
    permission: str
    allow_from: _Level
    ask_from: _Level | None
    risk_tag: str
    resource_argument: str | None = None


_REQUIREMENTS = (
    _Requirement(
        ("file:read", "file:list", "file:search", "file:info"), "file", FilePermission.READ, None, "fs:read", "path"
    ),
    # Any other file operation (write, edit, and whatever a plugin adds: delete, move) counts as a write.
    _Requirement(("file:*",), "file", FilePermission.WORKSPACE, None, "fs:write", "path"),
    _Requirement(("shell:*", "bash:*"), "bash", BashPermission.SANDBOX, BashPermission.CONFIRM, "shell"),
    _Requirement(("code:*",), "code", CodePermission.SANDBOX, None, "code"),
    _Requirement(("http:*", "net:*", "web:*"), "network", NetworkAccess.FULL, NetworkAccess.ALLOWLIST, "network"),
)


@dataclass(frozen=True, slots=True)
class PermissionVerdict:
    """What the base permission checker says about one tool name.

    Attributes:
        action: ``allow``, ``ask`` (allowed after confirmation) or ``deny``.
        permission: The permission the tool needs, or ``None`` when it needs none.
        reason: Why it asks or denies.
        escalation: For a denial, the lowest level that would let the call run.
        risk_tags: What kind of tool this is (``fs:read``, ``fs:write``, ``shell``, ``code``, ``network``).
        resource_argument: Argument naming the resource the call touches (reported in the escalation).
    """

    action: PolicyAction
    permission: str | None = None
    reason: str | None = None
    escalation: Escalation | None = None
    risk_tags: tuple[str, ...] = ()
    resource_argument: str | None = None


_NO_PERMISSION = PermissionVerdict(PolicyAction.ALLOW)


def check_permission(name: str, permissions: ToolPermissions) -> PermissionVerdict:
    """Return the base permission verdict for the tool called `name` under `permissions`."""
    for requirement in _REQUIREMENTS:
        if any(match_tool_pattern(pattern, name) for pattern in requirement.patterns):
            return _verdict(name, requirement, getattr(permissions, requirement.permission))
    return _NO_PERMISSION


def _verdict(name: str, requirement: _Requirement, granted: _Level) -> PermissionVerdict:
    tags = (requirement.risk_tag,)
    if granted.rank >= requirement.allow_from.rank:
        return PermissionVerdict(PolicyAction.ALLOW, requirement.permission, risk_tags=tags)
    if requirement.ask_from is not None and granted.rank >= requirement.ask_from.rank:
        reason = f"{name} needs confirmation: the {requirement.permission} permission is {granted.value!r}"
        return PermissionVerdict(PolicyAction.ASK, requirement.permission, reason, risk_tags=tags)
    needed = requirement.ask_from or requirement.allow_from
    return PermissionVerdict(
        PolicyAction.DENY,
        requirement.permission,
        f"{name} needs the {requirement.permission} permission at {needed.value!r} or higher; "
        f"the policy grants {granted.value!r}",
        Escalation(permission=requirement.permission, level=needed.value),
        tags,
        requirement.resource_argument,
    )
