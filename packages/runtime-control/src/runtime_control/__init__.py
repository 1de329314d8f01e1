"""Control plane of Agent Runtime.

Governance: the policy engine and presets, policy files, approvals, tool error recovery, the event
bus, the model catalog and cost, token estimation and secret redaction (budget arithmetic lives on
`runtime_core.BudgetState`; the message bus, agent lineage and quotas follow). Depends on `runtime_core`
and `runtime_telemetry`.
"""

from importlib.metadata import version as _version

from runtime_control.approvals import DEFAULT_APPROVAL_TIMEOUT_S, TIMEOUT_RESOLVER, ApprovalBroker, ApprovalRule
from runtime_control.bus import (
    BusEvent,
    BusStats,
    EventBus,
    EventFilter,
    EventHandler,
    EventStream,
    OverflowPolicy,
    Priority,
    Subscription,
)
from runtime_control.catalog import Capability, LongContextPricing, ModelCatalog, ModelInfo
from runtime_control.config_files import ConfigFormat, Location, locate, read_document, validation_problems
from runtime_control.exceptions import (
    CatalogError,
    ConfigFileError,
    ConfigProblem,
    PolicyFileError,
    StreamOverflowError,
    UnknownModelError,
)
from runtime_control.policy import (
    DEFAULT_INTERACTIVE_APPROVAL,
    DEFAULT_SECURITY_PRESET,
    SECURITY_PRESETS,
    BashPermission,
    CodePermission,
    ComputerPermission,
    FilePermission,
    FsIsolation,
    LfccPermission,
    NetworkAccess,
    PolicyFile,
    PolicyFormat,
    ResourceLimits,
    RulePolicyEngine,
    SafetyChecker,
    SafetyVerdict,
    SandboxConfig,
    SandboxType,
    SecurityPolicy,
    ToolPermissions,
    load_policy,
    parse_policy,
    security_preset,
)
from runtime_control.recovery import ErrorCategory, ErrorRecovery
from runtime_control.redaction import DEFAULT_PATTERNS, MIN_SECRET_LENGTH, Redactor, SecretPattern, redaction_marker
from runtime_control.tokens import (
    DEFAULT_ENCODING,
    HeuristicTokenCounter,
    TiktokenCounter,
    estimate_tokens,
)

__version__ = _version("runtime-control")

__all__ = [
    # metadata
    "__version__",
    # policy engine
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
    # approvals
    "DEFAULT_APPROVAL_TIMEOUT_S",
    "TIMEOUT_RESOLVER",
    "ApprovalBroker",
    "ApprovalRule",
    # event bus
    "BusEvent",
    "BusStats",
    "EventBus",
    "EventFilter",
    "EventHandler",
    "EventStream",
    "OverflowPolicy",
    "Priority",
    "Subscription",
    # model catalog and cost
    "Capability",
    "LongContextPricing",
    "ModelCatalog",
    "ModelInfo",
    # token estimation
    "DEFAULT_ENCODING",
    "HeuristicTokenCounter",
    "TiktokenCounter",
    "estimate_tokens",
    # tool error recovery
    "ErrorCategory",
    "ErrorRecovery",
    # secret redaction
    "DEFAULT_PATTERNS",
    "MIN_SECRET_LENGTH",
    "Redactor",
    "SecretPattern",
    "redaction_marker",
    # configuration files
    "ConfigFormat",
    "Location",
    "locate",
    "read_document",
    "validation_problems",
    # errors
    "CatalogError",
    "PolicyFileError",
    "ConfigFileError",
    "ConfigProblem",
    "StreamOverflowError",
    "UnknownModelError",
]
