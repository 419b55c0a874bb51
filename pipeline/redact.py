"""Credentials never leave the process: one function redacts them from any text.

A tracking URI such as ``https://user:secret@mlflow.example.com`` or a data location such as
``https://host/sales.csv?token=abc`` carries a secret. Everything that records or prints text
(run parameters and tags, the bundle's stored config, logs, error lines) goes through
:func:`redact`, which replaces the user-info of a URL and the values of secret-looking query
parameters with ``***``. Paths and URIs without credentials are returned unchanged.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from pipeline.config import Config

MASK = "***"

# scheme://user:password@host or scheme://token@host: everything between "//" and the last "@"
# before the host's end is user-info (RFC 3986 section 3.2.1), a credential.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<info>[^/\s?#@]+)@")
# Query parameters whose value is a secret by name (access_token, api_key, X-Amz-Signature, ...);
# a value ends before punctuation that closes a sentence ("...?token=abc: refused").
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;][^=&;#\s]*(?:token|key|secret|password|passwd|pwd|signature|sig|credential|auth)"
    r"[^=&;#\s]*=)(?P<value>[^&;#\s'\"<>)]+?)(?=[:,.]?(?:[&;#\s'\"<>)]|$))",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with URL credentials (user-info and secret query values) replaced by ``***``.

    Examples
    --------
    >>> redact("postgresql://bob:hunter2@db:5432/mlflow")
    'postgresql://***@db:5432/mlflow'
    >>> redact("https://host/a.csv?sv=1&token=abc")
    'https://host/a.csv?sv=1&token=***'
    >>> redact("sqlite:///mlflow.db")
    'sqlite:///mlflow.db'
    """
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_values(mapping: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` with every text value redacted (for run params and tags)."""
    return {
        key: redact(value) if isinstance(value, str) else value for key, value in mapping.items()
    }


def redacted_config(config: Config) -> Config:
    """``config`` with its locations (tracking URI, transactions) redacted, for storing in a bundle.

    Only the settings that name a location can hold a credential; a bundle never needs the
    credential (it is given the tracking URI again when it is loaded).
    """
    uri, source = config.tracking.tracking_uri, config.data.transactions
    update: dict[str, Any] = {}
    if uri is not None and redact(uri) != uri:
        update["tracking"] = config.tracking.model_copy(update={"tracking_uri": redact(uri)})
    if source is not None and redact(source) != source:
        update["data"] = config.data.model_copy(update={"transactions": redact(source)})
    return config.model_copy(update=update) if update else config


class RedactingFilter(logging.Filter):
    """Redacts every record a handler emits (message, arguments and exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def install_excepthook() -> None:
    """Redact the traceback of an unexpected error (a bug) before it is printed."""
    import sys
    import traceback

    def hook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))

    sys.excepthook = hook


class RedactingConsole(Console):
    """A rich console whose printed text is redacted (error lines name URIs and paths)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 - rich's name
        super().print(*(redact(o) if isinstance(o, str) else o for o in objects), **kwargs)
