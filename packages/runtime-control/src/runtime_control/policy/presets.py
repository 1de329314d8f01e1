"""Security policies: sandbox, tool permissions and resource limits, and the four named presets.

A [`SecurityPolicy`][runtime_control.policy.presets.SecurityPolicy] is the first step of policy evaluation
(the base permission checker): it says what kinds of tool a run may use at all. Every level enum lists its
members in increasing order (``rank``): permissions from the least to the most privileged, file-system
isolation from none to full. [`SecurityPolicy.for_child`][runtime_control.policy.presets.SecurityPolicy.for_child]
narrows with that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from runtime_core.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_SECURITY_PRESET",
    "SECURITY_PRESETS",
    "BashPermission",
    "CodePermission",
    "ComputerPermission",
    "FilePermission",
    "FsIsolation",
    "LfccPermission",
    "NetworkAccess",
    "ResourceLimits",
    "SandboxConfig",
    "SandboxType",
    "SecurityPolicy",
    "ToolPermissions",
    "security_preset",
]

_MB = 1024 * 1024
_GB = 1024 * _MB


class _Level(StrEnum):
    """An ordered enum: members are declared from the lowest level to the highest."""

    @property
    def rank(self) -> int:
        """Position of the level, 0 for the lowest (the least privileged, or the least isolated)."""
        return list(type(self)).index(self)


class SandboxType(StrEnum):
    """Where tools run (``SandboxConfig.type``)."""

    NONE = "none"
    PROCESS = "process"
    DOCKER = "docker"
    WASM = "wasm"
    RUST = "rust"


class NetworkAccess(_Level):
    """Network reach, from none to full: the sandbox's ``network_access`` and the ``network`` permission."""

    NONE = "none"
    ALLOWLIST = "allowlist"
    FULL = "full"


class FsIsolation(_Level):
    """How far the sandbox isolates the file system, from none to full isolation."""

    NONE = "none"
    WORKSPACE = "workspace"
    TEMP = "temp"
    FULL = "full"


class BashPermission(_Level):
    """Shell commands: disabled, each call confirmed, sandboxed, or unrestricted."""

    DISABLED = "disabled"
    CONFIRM = "confirm"
    SANDBOX = "sandbox"
    FULL = "full"


class FilePermission(_Level):
    """File access: none, read-only, read-write in the workspace, in the home directory, anywhere."""

    NONE = "none"
    READ = "read"
    WORKSPACE = "workspace"
    HOME = "home"
    FULL = "full"


class CodePermission(_Level):
    """Code execution tools: disabled, sandboxed, or unrestricted."""

    DISABLED = "disabled"
    SANDBOX = "sandbox"
    FULL = "full"


class ComputerPermission(_Level):
    """Computer use: disabled, observe (screenshots), control (input), or unrestricted."""

    DISABLED = "disabled"
    OBSERVE = "observe"
    CONTROL = "control"
    FULL = "full"


class LfccPermission(_Level):
    """Access to collaborative documents: none, read, write, or administration."""

    NONE = "none"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


_L = TypeVar("_L", bound=_Level)


def _least(first: _L, second: _L) -> _L:
    return first if first.rank <= second.rank else second


def _most(first: _L, second: _L) -> _L:
    return first if first.rank >= second.rank else second


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SandboxConfig(_Frozen):
    """Where and how isolated tools run. The defaults are the ``balanced`` preset's.

    Attributes:
        type: Sandbox technology.
        network_access: Network reach from inside the sandbox.
        allowed_hosts: Hosts reachable when ``network_access`` is ``allowlist`` (``None``: none listed).
        allowed_roots: Directories tools may touch (``None``: as ``fs_isolation`` says).
        fs_isolation: File-system isolation.
        working_directory: Working directory of sandboxed tools.
    """

    type: SandboxType = SandboxType.PROCESS
    network_access: NetworkAccess = NetworkAccess.ALLOWLIST
    allowed_hosts: tuple[str, ...] | None = None
    allowed_roots: tuple[str, ...] | None = None
    fs_isolation: FsIsolation = FsIsolation.WORKSPACE
    working_directory: str | None = None


class ToolPermissions(_Frozen):
    """What kinds of tool a run may use. The defaults are the ``balanced`` preset's."""

    bash: BashPermission = BashPermission.SANDBOX
    file: FilePermission = FilePermission.WORKSPACE
    code: CodePermission = CodePermission.SANDBOX
    computer: ComputerPermission = ComputerPermission.CONTROL
    network: NetworkAccess = NetworkAccess.ALLOWLIST
    lfcc: LfccPermission = LfccPermission.WRITE


class ResourceLimits(_Frozen):
    """Per-call resource limits. The defaults are the ``balanced`` preset's."""

    max_execution_time_ms: PositiveInt = 120_000
    max_memory_bytes: PositiveInt = 512 * _MB
    max_output_bytes: PositiveInt = 10 * _MB
    max_concurrent_calls: PositiveInt = 5


class SecurityPolicy(_Frozen):
    """Sandbox, permissions and limits of a run (the spec's ``SecurityPolicy``).

    ``SecurityPolicy()`` is the default preset, ``balanced``; the named presets are in
    `SECURITY_PRESETS`.
    """

    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    permissions: ToolPermissions = Field(default_factory=ToolPermissions)
    limits: ResourceLimits = Field(default_factory=ResourceLimits)

    def for_child(
        self, requested: SecurityPolicy | None = None, *, grants: Mapping[str, str] | None = None
    ) -> SecurityPolicy:
        """Return the policy of a child run (delegation depth + 1) started under this one.

        The child gets the parent's policy narrowed by what it asked for, never widened: each permission
        is the lesser of the parent's and the requested level, each limit the smaller value, network
        access the lesser, file-system isolation the stronger, and a sandbox the parent has stays. Only
        `grants` raise a permission above the parent's level.

        Args:
            requested: The policy the child asked for (its own preset or file); ``None`` keeps the parent's.
            grants: Explicit elevations, permission name to level (``{"bash": "full"}``).

        Returns:
            The child's policy.

        Raises:
            ConfigurationError: A grant names an unknown permission or level.
        """
        permissions = self.permissions if requested is None else _narrow_permissions(self.permissions, requested)
        if grants:
            permissions = _apply_grants(permissions, grants)
        if requested is None:
            return self.model_copy(update={"permissions": permissions})
        return SecurityPolicy(
            sandbox=_narrow_sandbox(self.sandbox, requested.sandbox),
            permissions=permissions,
            limits=ResourceLimits(
                max_execution_time_ms=min(self.limits.max_execution_time_ms, requested.limits.max_execution_time_ms),
                max_memory_bytes=min(self.limits.max_memory_bytes, requested.limits.max_memory_bytes),
                max_output_bytes=min(self.limits.max_output_bytes, requested.limits.max_output_bytes),
                max_concurrent_calls=min(self.limits.max_concurrent_calls, requested.limits.max_concurrent_calls),
            ),
        )


def _narrow_permissions(parent: ToolPermissions, requested: SecurityPolicy) -> ToolPermissions:
    child = requested.permissions
    return ToolPermissions(
        bash=_least(parent.bash, child.bash),
        file=_least(parent.file, child.file),
        code=_least(parent.code, child.code),
        computer=_least(parent.computer, child.computer),
        network=_least(parent.network, child.network),
        lfcc=_least(parent.lfcc, child.lfcc),
    )


def _apply_grants(permissions: ToolPermissions, grants: Mapping[str, str]) -> ToolPermissions:
    unknown = sorted(set(grants) - set(ToolPermissions.model_fields))
    if unknown:
        raise ConfigurationError(
            f"unknown permission(s) in grants: {', '.join(unknown)}; "
            f"valid permissions: {', '.join(ToolPermissions.model_fields)}",
            setting=f"grants.{unknown[0]}",
        )
    try:
        return ToolPermissions.model_validate({**permissions.model_dump(), **grants})
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0])
        raise ConfigurationError(
            f"invalid grant {name}={grants[name]!r}: {first['msg']}", setting=f"grants.{name}"
        ) from None


def _narrow_sandbox(parent: SandboxConfig, child: SandboxConfig) -> SandboxConfig:
    network = _least(parent.network_access, child.network_access)
    return SandboxConfig(
        # A child may add a sandbox, never drop or swap the parent's.
        type=child.type if parent.type is SandboxType.NONE else parent.type,
        network_access=network,
        allowed_hosts=_narrow_hosts(parent, child) if network is NetworkAccess.ALLOWLIST else None,
        allowed_roots=_narrow_roots(parent.allowed_roots, child.allowed_roots),
        fs_isolation=_most(parent.fs_isolation, child.fs_isolation),
        working_directory=child.working_directory or parent.working_directory,
    )


def _narrow_hosts(parent: SandboxConfig, child: SandboxConfig) -> tuple[str, ...] | None:
    # A side with full network access does not restrict hosts; an allowlist side without hosts allows none.
    lists = [
        config.allowed_hosts or () for config in (parent, child) if config.network_access is NetworkAccess.ALLOWLIST
    ]
    if all(config.allowed_hosts is None for config in (parent, child)):
        return None
    if len(lists) == 1:
        return lists[0]
    return tuple(host for host in lists[1] if host in lists[0])


def _narrow_roots(parent: tuple[str, ...] | None, child: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if parent is None or child is None:
        return child if parent is None else parent
    return tuple(
        root for root in child if any(PurePosixPath(root).is_relative_to(PurePosixPath(top)) for top in parent)
    )


def _preset(
    sandbox: tuple[SandboxType, NetworkAccess, FsIsolation],
    permissions: tuple[
        BashPermission, FilePermission, CodePermission, ComputerPermission, NetworkAccess, LfccPermission
    ],
    limits: tuple[int, int, int, int],
) -> SecurityPolicy:
    bash, file, code, computer, network, lfcc = permissions
    return SecurityPolicy(
        sandbox=SandboxConfig(type=sandbox[0], network_access=sandbox[1], fs_isolation=sandbox[2]),
        permissions=ToolPermissions(bash=bash, file=file, code=code, computer=computer, network=network, lfcc=lfcc),
        limits=ResourceLimits(
            max_execution_time_ms=limits[0],
            max_memory_bytes=limits[1],
            max_output_bytes=limits[2],
            max_concurrent_calls=limits[3],
        ),
    )


SECURITY_PRESETS: Mapping[str, SecurityPolicy] = MappingProxyType(
    {
        "safe": _preset(
            (SandboxType.PROCESS, NetworkAccess.NONE, FsIsolation.WORKSPACE),
            (
                BashPermission.DISABLED,
                FilePermission.READ,
                CodePermission.DISABLED,
                ComputerPermission.DISABLED,
                NetworkAccess.NONE,
                LfccPermission.READ,
            ),
            (30_000, 256 * _MB, 1 * _MB, 3),
        ),
        "balanced": _preset(
            (SandboxType.PROCESS, NetworkAccess.ALLOWLIST, FsIsolation.WORKSPACE),
            (
                BashPermission.SANDBOX,
                FilePermission.WORKSPACE,
                CodePermission.SANDBOX,
                ComputerPermission.CONTROL,
                NetworkAccess.ALLOWLIST,
                LfccPermission.WRITE,
            ),
            (120_000, 512 * _MB, 10 * _MB, 5),
        ),
        "power": _preset(
            (SandboxType.NONE, NetworkAccess.FULL, FsIsolation.NONE),
            (
                BashPermission.CONFIRM,
                FilePermission.HOME,
                CodePermission.FULL,
                ComputerPermission.FULL,
                NetworkAccess.FULL,
                LfccPermission.WRITE,
            ),
            (300_000, 1 * _GB, 50 * _MB, 10),
        ),
        "developer": _preset(
            (SandboxType.NONE, NetworkAccess.FULL, FsIsolation.NONE),
            (
                BashPermission.FULL,
                FilePermission.FULL,
                CodePermission.FULL,
                ComputerPermission.FULL,
                NetworkAccess.FULL,
                LfccPermission.ADMIN,
            ),
            (600_000, 2 * _GB, 100 * _MB, 20),
        ),
    }
)
"""The named security presets, least to most privileged: ``safe``, ``balanced``, ``power``, ``developer``."""

DEFAULT_SECURITY_PRESET = "balanced"
"""The preset used when none is named."""


def security_preset(name: str) -> SecurityPolicy:
    """Return the security preset called `name`.

    Args:
        name: One of ``safe``, ``balanced``, ``power``, ``developer``.

    Raises:
        ConfigurationError: `name` is not a preset; the message lists the valid names.
    """
    try:
        return SECURITY_PRESETS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown security preset {name!r}; valid presets: {', '.join(SECURITY_PRESETS)}", setting="preset"
        ) from None
