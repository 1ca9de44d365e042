"""Exceptions that carry the exit code the command line reports them with.

Exit codes (``rtqa check`` and ``rtqa batch``): 0 all per protocol, 1 a deviation, 2 usage or
constraint-file error, 3 input unreadable, 4 not fully evaluable and nothing deviated,
5 internal error, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DEVIATION = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
EXIT_NOT_EVALUABLE = 4
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130
#: Exit status after SIGTERM (scancel, timeout, systemd): 128 + 15, as a shell reports it.
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by ``rtqa batch``'s handler so that a batch stops as
    on Ctrl-C (workers stopped, the summary of what is done written) and exits 143."""


class RtqaError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = EXIT_INTERNAL


class UsageError(RtqaError):
    """The command was called with arguments that cannot work."""

    exit_code = EXIT_USAGE


class ConstraintFileError(RtqaError):
    """A constraint (protocol) file is malformed: the message names file, line and key."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str, message: str, line: int | None = None, key: str | None = None):
        self.path = path
        self.line = line
        self.key = key
        where = f"{path}:{line}" if line is not None else str(path)
        what = f" (key '{key}')" if key else ""
        super().__init__(f"{where}{what}: {message}")


class InputError(RtqaError):
    """Input could not be read or is inconsistent: the message names the file and attribute."""

    exit_code = EXIT_UNREADABLE

    def __init__(self, message: str, path: str | None = None, attribute: str | None = None):
        self.path = path
        self.attribute = attribute
        self.reason = message
        where = f"{path}: " if path else ""
        attr = f" [{attribute}]" if attribute else ""
        super().__init__(f"{where}{message}{attr}")


class DicomError(InputError):
    """A DICOM file breaks what the standard promises (or what rtqa supports)."""
