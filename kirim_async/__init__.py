"""kirim-async: an async-first client for the Kirim chat API.

Example::

    async with KirimClient() as client:  # the token comes from KIRIM_API_TOKEN
        label = await client.labels.create("bug", color="red")
"""

from ._client import KirimClient, LabelResponse, Labels
from ._config import RetryPolicy
from ._events import Hooks, RequestEvent, ResponseEvent, RetryEvent
from ._version import __version__
from .bulk import (
    BulkResult,
    ExistsReason,
    LabelOutcome,
    OutcomeStatus,
    SkipReason,
    bulk_create_labels,
    iter_bulk_create_labels,
)
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BulkError,
    ClientClosedError,
    DuplicateLabelError,
    InvalidParameterError,
    InvalidRequestError,
    KirimError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    PoolTimeoutError,
    ProxyError,
    RateLimitError,
    ServerError,
)
from .models import CreateLabel, Label, LabelColor

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BulkError",
    "BulkResult",
    "ClientClosedError",
    "CreateLabel",
    "DuplicateLabelError",
    "ExistsReason",
    "Hooks",
    "InvalidParameterError",
    "InvalidRequestError",
    "KirimClient",
    "KirimError",
    "Label",
    "LabelColor",
    "LabelOutcome",
    "LabelResponse",
    "Labels",
    "MalformedResponseError",
    "NotFoundError",
    "OutcomeStatus",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "ProxyError",
    "RateLimitError",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "SkipReason",
    "__version__",
    "bulk_create_labels",
    "iter_bulk_create_labels",
]
