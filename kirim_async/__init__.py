"""kirim-async: an async-first client for the Kirim chat API."""

from ._version import __version__
from .errors import InvalidParameterError, KirimError, MalformedResponseError
from .models import CreateLabel, Label, LabelColor

__all__ = [
    "CreateLabel",
    "InvalidParameterError",
    "KirimError",
    "Label",
    "LabelColor",
    "MalformedResponseError",
    "__version__",
]
