"""``station import``: another station's recording (CPTV, FLIR SEQ) as a recording the station replays."""

from __future__ import annotations

from pathlib import Path

import click

from station.cli.group import CONTEXT
from station.errors import StationError


@click.command("import", context_settings=CONTEXT)
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "cptv", "seq"]), default="auto", show_default=True,
              help="What SRC is; auto decides by its first bytes, never by its name.")
@click.option("--rotate", type=click.Choice(["0", "90", "180", "270"]), default=None,
              help="Turn every frame clockwise by this many degrees [default: 90 for CPTV, whose kiosk "
                   "Leptons are mounted on their side; 0 for SEQ].")
@click.option("--overwrite", is_flag=True, help="Replace the recording in OUT if it holds one.")
def import_command(src: Path, out: Path, fmt: str, rotate: str | None, overwrite: bool) -> None:
    """Convert SRC (a CPTV or FLIR SEQ file) into a thermal-only recording in directory OUT.

    CPTV (Cacophony fever kiosks, Lepton 3.5) becomes tlinear-centikelvin, turned upright; FLIR SEQ
    becomes raw-counts with the camera's Planck constants. Frame times come from the file, on a clock
    starting at 0; the source's header and calibration are kept under "import" in meta.json.

    \b
    Examples:
      station import ../shared/data/kiosk-cptv/20210323-215851.cptv /tmp/kiosk
      station import ../shared/data/radiometry/SampleSEQ.seq /tmp/seq --overwrite
    """
    from station.acquire.importers import import_file

    try:
        summary = import_file(src, out, format=fmt, overwrite=overwrite,  # type: ignore[arg-type]
                              rotate_cw=None if rotate is None else int(rotate))
    except StationError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # a full disk, a read-only directory, a file that vanished
        # The importers name the path themselves; should an OSError still get here without a file name
        # (a write on a full disk has none), it came from writing OUT, so OUT is named.
        where = exc.filename if exc.filename is not None else out
        raise click.ClickException(f"{where}: {exc.strerror or exc}") from None
    click.echo(summary.line())
