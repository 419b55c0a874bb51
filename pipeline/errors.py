"""Errors that the command line turns into one clear line and exit code 2.

Anything a user can fix by changing their input or their config raises one of these; every
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class UserFacingError(Exception):
    """An error whose message alone tells the user what went wrong and what to do."""


class ConfigError(UserFacingError):
    """The configuration file or a command-line override is invalid."""


class InsufficientHistoryError(UserFacingError):
    """The data is valid but holds too little purchase history for a model to be fitted."""


class OutputError(UserFacingError):
    """An output location cannot be used: replacing it would harm files, or it cannot be written."""

    def __init__(self, target: str, problem: str, hint: str = "") -> None:
        self.target, self.problem, self.hint = target, problem, hint
        super().__init__(f"{target}: {problem}. {hint}" if hint else f"{target}: {problem}")


class LockedError(Exception):
    """Another training holds the lock; this one must not start."""


@dataclass
class InputError(UserFacingError):
    """A data file cannot be used as it is.

    Parameters
    ----------
    source
        The file (or named data set) the problem is in.
    problem
        What is wrong, in a few words.
    hint
        What the user can do about it.
    column
        The offending column, when there is one.
    row
        The 1-based data row (the header is not counted), when there is one.
    count
        How many rows have the same problem, when that helps.
    check
        The check that found it, when rows found by one check in several parts of a file are
        counted together.
    """

    source: str
    problem: str
    hint: str = ""
    column: str | None = None
    row: int | None = None
    count: int | None = None  # how many rows share the problem, when that helps
    check: str | None = None  # which check found it: counts of one check are added up

    def __str__(self) -> str:
        where = [self.source]
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        problem = self.problem if self.count is None else f"{self.problem} ({self.count} such rows)"
        message = f"{', '.join(where)}: {problem}"
        return f"{message}. {self.hint}" if self.hint else message


# An error message is one line a person reads: a value from the data is quoted up to this many
# characters (a 200 MB line was once echoed whole into the message).
MAX_QUOTED = 80


def quote(value: object, limit: int = MAX_QUOTED) -> str:
    """``value`` as text for a message: at most ``limit`` characters, control characters escaped."""
    text = str(value)
    cut = text[:limit]
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    if len(text) > limit:
        escaped += f"... ({len(text):,} characters)"
    return escaped


class TrackingError(Exception):
    """MLflow could not record a training whose model was fitted: outputs and bundle are kept.

    The command line prints the message in one line and exits with its own code
    (``EXIT_NOT_TRACKED``), so a scheduler can tell it from bad input.
    """
