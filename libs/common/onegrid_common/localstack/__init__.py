"""The local stack: the whole system on one machine without Docker (`onegrid dev`).

Also used by the pytest harness (`onegrid_common.testing`) for the broker and, when the
configured ones do not answer, PostgreSQL and Redis.
"""

from onegrid_common.localstack.components import ComponentError
from onegrid_common.localstack.procs import ProcessRecord, free_port
from onegrid_common.localstack.services import SERVICES, ServiceSpec
from onegrid_common.localstack.stack import ComponentStatus, LocalStack, StackConfig, UpResult
from onegrid_common.localstack.state import StateDir, repo_root

__all__ = [
    "SERVICES",
    "ComponentError",
    "ComponentStatus",
    "LocalStack",
    "ProcessRecord",
    "ServiceSpec",
    "StackConfig",
    "StateDir",
    "UpResult",
    "free_port",
    "repo_root",
]
