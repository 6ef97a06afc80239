"""The click group every ``station`` command group uses: the station's own errors as one line, exit 1.

Its own module so that command groups defined beside the command line (``station body-model``) can
use it without importing ``station.cli.main``, which imports them.
"""

from __future__ import annotations

from typing import Any

import click

from station.errors import StationError

#: Every command's context: ``-h`` as well as ``--help``, and help text up to 100 columns wide.
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class StationGroup(click.Group):
    """A click group that turns the station's own errors into one-line messages with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StationError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # a full disk, a read-only directory, a file that vanished
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None
