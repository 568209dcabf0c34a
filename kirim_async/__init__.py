"""kirim-async: an async-first client for the Kirim chat API.

Example::

    async with KirimClient() as client:  # the token comes from KIRIM_API_TOKEN
        label = await client.labels.create("bug", color="red")
"""

from ._client import KirimClient, LabelResponse, Labels
from ._config import RetryPolicy
from ._events import Hooks, RequestEvent, ResponseEvent, RetryEvent
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    DuplicateLabelError,
    InvalidParameterError,
    InvalidRequestError,
    KirimError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from .models import CreateLabel, Label, LabelColor

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "CreateLabel",
    "DuplicateLabelError",
    "Hooks",
    "InvalidParameterError",
    "InvalidRequestError",
    "KirimClient",
    "KirimError",
    "Label",
    "LabelColor",
    "LabelResponse",
    "Labels",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestEvent",
    "ResponseEvent",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "__version__",
]
