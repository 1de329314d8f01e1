"""The policy engine: security presets, rules, safety checkers and policy files.

`RulePolicyEngine` implements `runtime_core.PolicyEngine` in the spec's evaluation order; presets and
`SecurityPolicy` drive its base permission checker; `load_policy` and `parse_policy` read policy files.
"""

from runtime_control.policy.engine import DEFAULT_INTERACTIVE_APPROVAL, RulePolicyEngine, SafetyChecker, SafetyVerdict
from runtime_control.policy.files import PolicyFile, PolicyFormat, load_policy, parse_policy
from runtime_control.policy.presets import (
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
    SandboxConfig,
    SandboxType,
    SecurityPolicy,
    ToolPermissions,
    security_preset,
)

__all__ = [
    # engine
    "DEFAULT_INTERACTIVE_APPROVAL",
    "RulePolicyEngine",
    "SafetyChecker",
    "SafetyVerdict",
    # policy files
    "PolicyFile",
    "PolicyFormat",
    "load_policy",
    "parse_policy",
    # security policies and presets
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
