"""Third-party warnings are counted, not printed: one log line per kind, one summary per run.

scikit-learn's ConvergenceWarning or lifetimes' RuntimeWarnings can arrive dozens of times in
one training; printed, they bury the one line that matters (a result, or an error). The
command line installs :func:`capture_warnings` once per command: each kind of warning (its
category and the package it comes from) is logged the first time at INFO (shown with
``--verbose``), every occurrence is counted, and the run records the counts
(``warnings.json``); the command prints one summary line.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("pipeline.warnings")


@dataclass
class WarningKind:
    category: str
    package: str
    count: int = 0
    first_message: str = ""


@dataclass
class WarningCounter:
    """Every warning shown since :meth:`reset`, counted by kind (category, package)."""

    kinds: dict[tuple[str, str], WarningKind] = field(default_factory=dict)
    # (logger, message template) of the log warnings already shown once
    templates: set[tuple[str, str]] = field(default_factory=set)

    def reset(self) -> None:
        self.kinds.clear()
        self.templates.clear()

    def show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        """A drop-in for :func:`warnings.showwarning` that counts instead of printing."""
        key = (category.__name__, package_of(filename))
        kind = self.kinds.get(key)
        if kind is None:
            text = " ".join(str(message).split())
            kind = self.kinds[key] = WarningKind(*key, first_message=text)
            log.info("%s from %s: %s (repeats are counted, not shown)", *key, text)
        kind.count += 1

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{"ConvergenceWarning (sklearn)": {"count": 30, "first_message": ...}, ...}``."""
        return {
            f"{kind.category} ({kind.package})": {
                "count": kind.count,
                "first_message": kind.first_message,
            }
            for kind in self.kinds.values()
        }

    def summary_line(self) -> str | None:
        """One line naming each kind with its count, or None when nothing was warned."""
        if not self.kinds:
            return None
        kinds = ", ".join(
            f"{kind.count} x {kind.category} ({kind.package})"
            for kind in sorted(self.kinds.values(), key=lambda k: -k.count)
        )
        return f"warnings: {kinds}; each kind shown or logged (-v) once, counts in the run"


COUNTER = WarningCounter()


class RepeatedLogFilter(logging.Filter):
    """Lets the first WARNING of each message template through and counts its repeats.

    A check inside a model that is fitted once per candidate (Gamma-Gamma's independence
    check) would otherwise log the same sentence once per fit.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or record.name == log.name:
            return True
        # One decision per record, however many handlers (each with this filter) it reaches.
        decided = getattr(record, "_shown_once", None)
        if decided is None:
            decided = record._shown_once = self._first_of_its_template(record)
        return decided

    @staticmethod
    def _first_of_its_template(record: logging.LogRecord) -> bool:
        key = ("log warning", record.name)
        kind = COUNTER.kinds.get(key)
        template = str(record.msg)
        if kind is None:
            COUNTER.kinds[key] = WarningKind(*key, count=1, first_message=record.getMessage())
            COUNTER.templates.add((record.name, template))
            return True
        kind.count += 1
        if (record.name, template) in COUNTER.templates:
            return False
        COUNTER.templates.add((record.name, template))
        return True


def package_of(filename: str) -> str:
    """The top-level package a warning was raised in (``sklearn``, ``lifetimes``), from its file."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            if rest:
                return Path(rest[0]).stem
    if "pipeline" in parts:
        return "pipeline"
    return Path(filename).stem or "unknown"


def capture_warnings() -> WarningCounter:
    """From now on in this process, warnings that pass the filters are counted, not printed,
    and a WARNING log line repeated with the same template is shown once (the root logger's
    handlers filter repeats).

    Every occurrence reaches the counter (``always`` is appended, so explicit ``ignore``
    filters set before still win); the counter starts empty.
    """
    warnings.filterwarnings("always", append=True)
    warnings.showwarning = COUNTER.show
    COUNTER.reset()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatedLogFilter) for f in handler.filters):
            handler.addFilter(RepeatedLogFilter())
    return COUNTER


def release_log_filter() -> None:
    """Take :class:`RepeatedLogFilter` off the root handlers again, when the command ends.

    Handlers can outlive a command run in process (a notebook's, a test runner's capture
    handlers): kept on them, the filter would hide a later command's first warning of a
    template an earlier one had shown.
    """
    for handler in logging.getLogger().handlers:
        handler.filters[:] = [f for f in handler.filters if not isinstance(f, RepeatedLogFilter)]


def captured_warnings() -> dict[str, dict[str, Any]]:
    """The counts of this process's run so far (empty when nothing warned)."""
    return COUNTER.as_dict()


def warnings_summary() -> str | None:
    """The one summary line for the command's output, or None."""
    return COUNTER.summary_line()
