"""Why runs end: terminal reasons and ``error:<code>`` reasons."""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["TerminalReason", "error_reason", "is_valid_reason"]


class TerminalReason(StrEnum):
    """Why a run ended (``error:<code>`` reasons come from `error_reason`)."""

    COMPLETED = "completed"
    NO_COMPLETION = "no_completion"
    RECOVERY_FAILED = "recovery_failed"
    BUDGET_EXHAUSTED = "budget_exhausted"
    POLICY_DENIED = "policy_denied"
    CANCELLED = "cancelled"


_ERROR_REASON = re.compile(r"^error:[A-Za-z0-9_.:-]+$")


def error_reason(code: str) -> str:
    """Return the terminal reason for an error with `code` (``"error:PROVIDER_UNAVAILABLE"``)."""
    reason = f"error:{code}"
    if not _ERROR_REASON.match(reason):
        raise ValueError(f"invalid error code {code!r}: use letters, digits and _.:-")
    return reason


def is_valid_reason(reason: str) -> bool:
    """Whether `reason` is a `TerminalReason` value or an ``error:<code>`` reason."""
    return reason in TerminalReason._value2member_map_ or bool(_ERROR_REASON.match(reason))
