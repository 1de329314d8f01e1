"""Security presets, the base permission checker on the built-in tools, and child-run narrowing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from runtime_control.policy import (
    DEFAULT_SECURITY_PRESET,
    SECURITY_PRESETS,
    BashPermission,
    CodePermission,
    ComputerPermission,
    FilePermission,
    FsIsolation,
    LfccPermission,
    NetworkAccess,
    ResourceLimits,
    RulePolicyEngine,
    SandboxConfig,
    SandboxType,
    SecurityPolicy,
    ToolPermissions,
    security_preset,
)
from runtime_core import (
    ConfigurationError,
    Escalation,
    PolicyAction,
    PolicyContext,
    PolicyOutcome,
    PolicyRule,
    ToolCall,
    ToolSpec,
)

MB = 1024 * 1024
GB = 1024 * MB
CONTEXT = PolicyContext(run_id="run", agent_id="agent")

# The spec's table: sandbox / net / fs; bash, file, code, computer, network, lfcc; time, memory, output, concurrency.
SPEC_TABLE = {
    "safe": (
        ("process", "none", "workspace"),
        ("disabled", "read", "disabled", "disabled", "none", "read"),
        (30_000, 256 * MB, 1 * MB, 3),
    ),
    "balanced": (
        ("process", "allowlist", "workspace"),
        ("sandbox", "workspace", "sandbox", "control", "allowlist", "write"),
        (120_000, 512 * MB, 10 * MB, 5),
    ),
    "power": (
        ("none", "full", "none"),
        ("confirm", "home", "full", "full", "full", "write"),
        (300_000, 1 * GB, 50 * MB, 10),
    ),
    "developer": (
        ("none", "full", "none"),
        ("full", "full", "full", "full", "full", "admin"),
        (600_000, 2 * GB, 100 * MB, 20),
    ),
}


@pytest.mark.parametrize("name", list(SPEC_TABLE))
def test_presets_match_the_spec_table(name: str) -> None:
    sandbox, permissions, limits = SPEC_TABLE[name]
    preset = security_preset(name)
    assert (preset.sandbox.type, preset.sandbox.network_access, preset.sandbox.fs_isolation) == sandbox
    got = preset.permissions
    assert (got.bash, got.file, got.code, got.computer, got.network, got.lfcc) == permissions
    assert (
        preset.limits.max_execution_time_ms,
        preset.limits.max_memory_bytes,
        preset.limits.max_output_bytes,
        preset.limits.max_concurrent_calls,
    ) == limits


def test_presets_are_listed_least_privileged_first_and_balanced_is_the_default() -> None:
    assert list(SECURITY_PRESETS) == ["safe", "balanced", "power", "developer"]
    assert DEFAULT_SECURITY_PRESET == "balanced"
    assert SecurityPolicy() == SECURITY_PRESETS["balanced"]
    assert RulePolicyEngine().security == SECURITY_PRESETS["balanced"]


def test_unknown_preset_names_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as raised:
        security_preset("unsafe")
    assert str(raised.value) == "unknown security preset 'unsafe'; valid presets: safe, balanced, power, developer"
    assert raised.value.setting == "preset"


def test_policies_are_frozen_and_strict() -> None:
    policy = SecurityPolicy()
    with pytest.raises(ValidationError):
        policy.permissions.bash = BashPermission.FULL  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        ToolPermissions.model_validate({"bash": "full", "typo": 1})
    with pytest.raises(ValidationError):
        ToolPermissions(bash="sometimes")
    with pytest.raises(ValidationError):
        ResourceLimits(max_concurrent_calls=0)
    assert SecurityPolicy.model_validate_json(policy.model_dump_json()) == policy


def test_levels_are_ordered_least_to_most() -> None:
    assert [level.rank for level in BashPermission] == [0, 1, 2, 3]
    assert FilePermission.READ.rank < FilePermission.WORKSPACE.rank < FilePermission.HOME.rank
    assert NetworkAccess.NONE.rank < NetworkAccess.ALLOWLIST.rank < NetworkAccess.FULL.rank
    assert FsIsolation.NONE.rank < FsIsolation.FULL.rank
    assert CodePermission.DISABLED.rank == ComputerPermission.DISABLED.rank == LfccPermission.NONE.rank == 0


# -- the base permission checker on the built-in tools -------------------------------------------------------

A, C, D = "allow", "allow_with_confirm", "deny"
BUILTIN_TOOLS = ("file:read", "file:list", "file:search", "file:info", "file:write", "file:edit", "shell:run")
EXPECTED = {
    #            read list search info write edit shell
    "safe": (A, A, A, A, D, D, D),
    "balanced": (A, A, A, A, A, A, A),
    "power": (A, A, A, A, A, A, C),
    "developer": (A, A, A, A, A, A, A),
}


@pytest.mark.parametrize("preset", list(EXPECTED))
def test_permissions_on_the_builtin_tools(preset: str) -> None:
    engine = RulePolicyEngine(security=preset, interactive_approval=())
    got = tuple(
        engine.evaluate(
            ToolCall(id="c", name=name), ToolSpec(name=name, description=name), CONTEXT
        ).policy_decision.value
        for name in BUILTIN_TOOLS
    )
    assert got == EXPECTED[preset]


@pytest.mark.parametrize(
    ("permissions", "tool", "expected", "escalation"),
    [
        ({"file": "none"}, "file:read", D, Escalation(permission="file", level="read", resource="a.txt")),
        ({"file": "read"}, "file:read", A, None),
        ({"file": "read"}, "file:edit", D, Escalation(permission="file", level="workspace", resource="a.txt")),
        ({"file": "read"}, "file:delete", D, Escalation(permission="file", level="workspace", resource="a.txt")),
        ({"file": "home"}, "file:write", A, None),
        ({"bash": "disabled"}, "shell:run", D, Escalation(permission="bash", level="confirm")),
        ({"bash": "confirm"}, "shell:run", C, None),
        ({"bash": "sandbox"}, "shell:run", A, None),
        ({"bash": "full"}, "bash:execute", A, None),
        ({"bash": "disabled"}, "bash:execute", D, Escalation(permission="bash", level="confirm")),
        ({"network": "none"}, "web:fetch", D, Escalation(permission="network", level="allowlist")),
        ({"network": "none"}, "http:get", D, Escalation(permission="network", level="allowlist")),
        ({"network": "allowlist"}, "net:connect", C, None),
        ({"network": "full"}, "web:fetch", A, None),
        ({"code": "disabled"}, "code:run", D, Escalation(permission="code", level="sandbox")),
        ({"code": "sandbox"}, "code:run", A, None),
        ({"bash": "disabled", "file": "none", "network": "none", "code": "disabled"}, "demo:echo", A, None),
    ],
)
def test_permission_levels(
    permissions: dict[str, str], tool: str, expected: str, escalation: Escalation | None
) -> None:
    engine = RulePolicyEngine(security=SecurityPolicy(permissions=ToolPermissions.model_validate(permissions)))
    decision = engine.evaluate(
        ToolCall(id="c", name=tool, arguments={"path": "a.txt"}), ToolSpec(name=tool, description=tool), CONTEXT
    )
    assert decision.policy_decision.value == expected
    assert decision.escalation == escalation
    if expected != A:
        permission = decision.policy_rule_id
        assert permission is not None
        assert permission.startswith("permission:")
        assert decision.reason_code == permission


# -- child runs ------------------------------------------------------------------------------------------------------


def test_child_keeps_the_parent_policy_when_it_asks_for_nothing() -> None:
    for preset in SECURITY_PRESETS.values():
        assert preset.for_child() == preset


def test_child_never_gains_a_permission_the_parent_lacks() -> None:
    child = SECURITY_PRESETS["safe"].for_child(SECURITY_PRESETS["developer"])
    assert child.permissions == SECURITY_PRESETS["safe"].permissions
    assert child.limits == SECURITY_PRESETS["safe"].limits
    assert child.sandbox.type is SandboxType.PROCESS  # the parent's sandbox stays
    assert child.sandbox.network_access is NetworkAccess.NONE
    assert child.sandbox.fs_isolation is FsIsolation.WORKSPACE


def test_child_may_drop_privileges() -> None:
    assert SECURITY_PRESETS["developer"].for_child(SECURITY_PRESETS["safe"]) == SECURITY_PRESETS["safe"]


def test_child_takes_the_lesser_level_per_permission() -> None:
    parent = SecurityPolicy(permissions=ToolPermissions(bash="full", file="read", network="allowlist"))
    requested = SecurityPolicy(permissions=ToolPermissions(bash="confirm", file="full", network="full"))
    child = parent.for_child(requested).permissions
    assert (child.bash, child.file, child.network) == ("confirm", "read", "allowlist")


def test_explicit_grants_are_the_only_elevation() -> None:
    safe = SECURITY_PRESETS["safe"]
    granted = safe.for_child(SECURITY_PRESETS["developer"], grants={"bash": "sandbox"})
    assert granted.permissions.bash is BashPermission.SANDBOX
    assert granted.permissions.file is FilePermission.READ  # not granted: still the parent's
    assert safe.for_child(grants={"file": "workspace"}).permissions.file is FilePermission.WORKSPACE


def test_invalid_grants_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="unknown permission") as raised:
        SecurityPolicy().for_child(grants={"root": "yes"})
    assert raised.value.setting == "grants.root"
    with pytest.raises(ConfigurationError, match="invalid grant bash='always'") as raised:
        SecurityPolicy().for_child(grants={"bash": "always"})
    assert raised.value.setting == "grants.bash"


def test_child_sandbox_narrows() -> None:
    parent = SecurityPolicy(
        sandbox=SandboxConfig(
            type="none",
            network_access="allowlist",
            allowed_hosts=("api.example.com", "pypi.org"),
            allowed_roots=("/work",),
            fs_isolation="none",
        )
    )
    requested = SecurityPolicy(
        sandbox=SandboxConfig(
            type="docker",
            network_access="full",
            allowed_roots=("/work/project", "/etc"),
            fs_isolation="temp",
            working_directory="/work/project",
        )
    )
    sandbox = parent.for_child(requested).sandbox
    assert sandbox.type is SandboxType.DOCKER  # a child may add a sandbox
    assert sandbox.network_access is NetworkAccess.ALLOWLIST
    assert sandbox.allowed_hosts == ("api.example.com", "pypi.org")
    assert sandbox.allowed_roots == ("/work/project",)
    assert sandbox.fs_isolation is FsIsolation.TEMP
    assert sandbox.working_directory == "/work/project"
    both = SandboxConfig(network_access="allowlist", allowed_hosts=("pypi.org", "evil.example"))
    assert parent.for_child(SecurityPolicy(sandbox=both)).sandbox.allowed_hosts == ("pypi.org",)
    sandboxed = SecurityPolicy(sandbox=SandboxConfig(type="wasm"))
    assert sandboxed.for_child(SecurityPolicy(sandbox=SandboxConfig(type="none"))).sandbox.type is SandboxType.WASM


PERMISSIONS = st.builds(
    ToolPermissions,
    bash=st.sampled_from(list(BashPermission)),
    file=st.sampled_from(list(FilePermission)),
    code=st.sampled_from(list(CodePermission)),
    computer=st.sampled_from(list(ComputerPermission)),
    network=st.sampled_from(list(NetworkAccess)),
    lfcc=st.sampled_from(list(LfccPermission)),
)
LIMITS = st.builds(
    ResourceLimits,
    max_execution_time_ms=st.integers(1, 10**6),
    max_memory_bytes=st.integers(1, 10**10),
    max_output_bytes=st.integers(1, 10**9),
    max_concurrent_calls=st.integers(1, 50),
)
POLICIES = st.builds(SecurityPolicy, permissions=PERMISSIONS, limits=LIMITS)


@given(POLICIES, POLICIES)
def test_a_child_is_never_more_privileged_than_its_parent_or_its_request(
    parent: SecurityPolicy, requested: SecurityPolicy
) -> None:
    child = parent.for_child(requested)
    for name in ToolPermissions.model_fields:
        level = getattr(child.permissions, name)
        assert level.rank == min(getattr(parent.permissions, name).rank, getattr(requested.permissions, name).rank)
    for name in ResourceLimits.model_fields:
        assert getattr(child.limits, name) == min(getattr(parent.limits, name), getattr(requested.limits, name))
    assert child.for_child(parent) == child  # narrowing again by the parent changes nothing


def test_child_engine_keeps_the_parent_restrictions() -> None:
    rules = [PolicyRule(id="no-push", action=PolicyAction.DENY, tools=("shell:*",), min_depth=1)]
    parent = RulePolicyEngine(rules, security="power", denied_tools=["web:*"], requires_approval=["file:write"])
    child = parent.for_child(security="developer")
    assert child.security == SECURITY_PRESETS["power"]
    assert (child.rules, child.denied_tools, child.requires_approval) == (parent.rules, ("web:*",), ("file:write",))

    def decide(engine: RulePolicyEngine, name: str, depth: int) -> tuple[PolicyOutcome, str | None]:
        context = PolicyContext(run_id="run", agent_id="agent", depth=depth)
        decision = engine.evaluate(ToolCall(id="c", name=name), ToolSpec(name=name, description=name), context)
        return decision.policy_decision, decision.policy_rule_id

    # The parent (depth 0) may run commands after confirmation; its child (depth 1) may not, by the depth rule.
    assert decide(parent, "shell:run", 0) == (PolicyOutcome.ALLOW_WITH_CONFIRM, "permission:bash")
    assert decide(child, "shell:run", 1) == (PolicyOutcome.DENY, "no-push")
    assert decide(child, "file:write", 1) == (PolicyOutcome.ALLOW_WITH_CONFIRM, "builtin:requires_approval")
    assert decide(child, "web:fetch", 1) == (PolicyOutcome.DENY, "builtin:denylist")


def test_child_engine_elevation_needs_a_grant() -> None:
    parent = RulePolicyEngine(security="safe")
    spec = ToolSpec(name="shell:run", description="run")
    child_context = PolicyContext(run_id="child", agent_id="helper", depth=1)
    asked = parent.for_child(security="developer")
    assert asked.evaluate(ToolCall(id="c", name="shell:run"), spec, child_context).policy_rule_id == "permission:bash"
    granted = parent.for_child(security="developer", grants={"bash": "sandbox"})
    assert granted.evaluate(ToolCall(id="c", name="shell:run"), spec, child_context).allowed
    with pytest.raises(ConfigurationError, match="valid presets"):
        parent.for_child(security="root")
