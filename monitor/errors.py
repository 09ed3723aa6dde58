"""The package's exceptions: one base class, each subclass mapped to an exit code by the CLI."""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of every error registry-monitor raises on purpose.

    ``exit_code`` is what the command line exits with when it reports this error.
    """

    exit_code = 2


class ConfigError(MonitorError):
    """The configuration (or a watchlist file it names) is invalid."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        where = ""
        if file is not None:
            where = file if line is None else f"{file}:{line}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join([*parts, message]))


class UsageError(MonitorError):
    """A command was called with arguments that cannot work (bad date, unknown revision...)."""


class RepoError(MonitorError):
    """The git repository is missing, unusable, or a push failed."""


class InconclusiveRun(MonitorError):
    """Too few resolvers were up to say anything about the watchlist; nothing was written."""

    exit_code = 4


class SnapshotError(MonitorError):
    """A snapshot file could not be read."""


class FileError(MonitorError):
    """A file or directory could not be written: ``PATH: REASON``, naming the path a person can
    act on (the file that is not a directory, the directory that refused) and the system's
    reason."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class LabError(MonitorError):
    """A lab responder could not bind its loopback port or start serving."""

    exit_code = 1
