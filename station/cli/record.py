"""``station record``: a site's own cameras (or the live simulator) into a recording every version replays.

The command is a thin shell around :func:`station.acquire.record.record`: it turns the options into a request,
prints the closing line, and maps the outcome to an exit code (0 for a limit or a signal, 1 for a fault,
said in one line). The capture, the limits and the closing are in :mod:`station.acquire.record`, which has no
click in it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from station.cli.group import CONTEXT
from station.errors import StationError


def _seconds(text: str | None) -> float | None:
    """``--seconds`` read here rather than by click, so a typo is one line like every other bad input."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise StationError(f"--seconds {text!r}: expected a positive number of seconds, such as 600")
    return value


@click.command("record", context_settings=CONTEXT)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--thermal", "thermal_spec", metavar="SRC",
              help="lepton, boson, uvc:N, a device index, or sim:SEED (the live simulator).")
@click.option("--visible", "visible_spec", metavar="SRC",
              help="A device index, a URL, a video file, or sim:SEED; leave out for a thermal-only recording.")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Profile to keep as calibration.toml [default: the technicians' active profile].")
@click.option("--seconds", "seconds_text", metavar="N", help="Stop after N seconds of frames.")
@click.option("--max-size", "max_size_text", metavar="SIZE",
              help="Stop before the recording exceeds SIZE on disk (500M, 2G; 1024-based).")
@click.option("--video", default="avi", show_default=True, type=click.Choice(["avi", "mkv", "mp4"]),
              help="avi: lossless HuffYUV, cheap to encode and decode; mkv: lossless FFV1, ~20% smaller, "
                   "~8x dearer to encode; mp4: MPEG-4, small but LOSSY.")
@click.option("--overwrite", is_flag=True, help="Replace the recording in OUT if it holds one.")
def record_command(out: Path, thermal_spec: str | None, visible_spec: str | None, calibration: Path | None,
                   seconds_text: str | None, max_size_text: str | None, video: str, overwrite: bool) -> None:
    """Record live cameras (or the live simulator) into recording directory OUT (format version 1).

    Every frame the cameras deliver is kept, with its own time (the first frame at t = 0) and the UTC
    time it was taken (recorded_at); the calibration profile in effect is copied beside them. A progress
    line on stderr shows the time, frames, size on disk and frames dropped once a second. --seconds,
    --max-size, Ctrl-C and SIGTERM all stop it cleanly (exit 0); a camera lost or a full disk stops it
    too, keeping what was written (exit 1). Replay it with `station run --recording OUT`.

    \b
    Examples:
      station record /data/rec/entrance-1 --thermal lepton --visible 0 --seconds 600
      station record /data/rec/door-2 --thermal lepton:1 --visible 2 --max-size 20G --video mkv
      station record /tmp/sim --thermal sim:1 --visible sim:1 --seconds 30
    """
    from station.acquire.record import RecordRequest, parse_size, record

    try:
        if thermal_spec is None:
            raise StationError("no thermal source: give --thermal SRC (lepton, boson, uvc:N, a device index, "
                               "sim:SEED)")
        request = RecordRequest(
            out=out, thermal=thermal_spec, visible=visible_spec, calibration=calibration,
            seconds=_seconds(seconds_text),
            max_bytes=None if max_size_text is None else parse_size(max_size_text),
            video=video, overwrite=overwrite)
        result = record(request, status=sys.stderr)
    except StationError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # OUT unwritable from the start (read-only, full), a file that vanished
        where = exc.filename if exc.filename is not None else out
        raise click.ClickException(f"{where}: {exc.strerror or exc}") from None
    if result.exit_code:
        raise click.ClickException(f"{result.detail}; kept {result.frames_text()} "
                                   f"({result.duration_s:.1f} s) in {result.path}"
                                   + ("" if result.closed else " (not closed cleanly)"))
    click.echo(result.line())
