"""The HTTP API of Agent Runtime (``agent-runtime serve``): runs, their events as Server-Sent Events, approvals.

```python
from runtime_facade import load_config
from runtime_facade.api import serve

serve(load_config())  # blocks; http://127.0.0.1:8321 by default
```

It needs the ``server`` extra (FastAPI, uvicorn, the Prometheus exporter):
``pip install 'runtime-facade[server]'``. docs/http-api.md describes every route.
"""

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
    from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"the HTTP API needs the 'server' extra ({error.name} is missing): pip install 'runtime-facade[server]'"
    ) from error

from runtime_facade.api.app import create_app
from runtime_facade.api.metrics import PrometheusExport
from runtime_facade.api.models import (
    AgentSource,
    ApprovalList,
    CancelRequest,
    CreateRunRequest,
    ErrorBody,
    ErrorDetail,
    ErrorType,
    EventList,
    ForkRequest,
    Health,
    Problem,
    ReplayRequest,
    ResolveApprovalRequest,
    ResumeRequest,
    RunList,
)
from runtime_facade.api.server import resolve_token, serve

__all__ = [
    # application
    "create_app",
    "serve",
    "resolve_token",
    "PrometheusExport",
    # requests
    "AgentSource",
    "CreateRunRequest",
    "CancelRequest",
    "ResumeRequest",
    "ForkRequest",
    "ReplayRequest",
    "ResolveApprovalRequest",
    # responses
    "RunList",
    "EventList",
    "ApprovalList",
    "Health",
    # errors
    "ErrorBody",
    "ErrorDetail",
    "ErrorType",
    "Problem",
]
