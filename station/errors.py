"""Errors a person can act on.

Every failure that comes from outside the program (a corrupt recording, a missing camera, a wrong
calibration file, a typo on the command line) is raised as a :class:`StationError` whose message is
one line that names the thing at fault. The command line prints that line and exits non-zero; it
never shows a traceback for these.
"""


class StationError(Exception):
    """A fault in the station's inputs or surroundings, described in one line for the operator."""


class RecordingError(StationError):
    """A recording on disk does not follow the recording format; the message names the file."""


class SourceError(StationError):
    """A camera or replay source could not be opened or has failed for good."""


class ProfileError(StationError):
    """A calibration profile is missing, unreadable or fails validation; the message names the key."""


class StorageUnavailable(StationError):
    """The event store exists in principle but cannot be written now: read-only, locked, disk full.

    Unlike a wrong path or a file that is not a database (bad input, fail at once), this is a state of
    the machine that can pass: the engine keeps screening and keeps the rows until it can write them.
    """
