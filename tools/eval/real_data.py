"""Real evaluation photographs and video from Debian packages, with hand-made labels.

    python -m tools.eval.real_data [--cache DIR]            # fetch (if needed) and list what is there
    python -m tools.eval.real_data --write-subset DIR       # rebuild the committed subset (tests/data/real)

The media come from two Debian (bookworm) binary packages, fetched with ``apt-get download`` (run as
root on Debian; needs the package lists, i.e. a prior ``apt-get update``) and unpacked with
``dpkg-deb --fsys-tarfile``; only the files below are kept, in ``~/.cache/edged/real`` (or
``$EDGED_REAL_DATA``, or the ``cache_dir`` argument). Every file is checked against its SHA-256, so
the labels always refer to the same pixels; another package version with other bytes is refused.

Provenance and licences (from each package's ``/usr/share/doc/<pkg>/copyright``):

- ``opencv-doc`` 4.6.0+dfsg-12 (source ``opencv``, https://opencv.org), files from
  ``/usr/share/doc/opencv-doc/examples/data/`` (upstream ``samples/data/``): ``vtest.avi``
  (768x576, 10 fps, 795 frames of pedestrians on a campus road, fixed camera), ``Megamind.avi``
  (720x528, animated film clip), ``messi5.jpg`` (football match photograph), ``basketball1.png`` and
  ``basketball2.png`` (two consecutive grey frames of two people with a ball, an optical-flow
  sample), ``licenseplate_motion.jpg`` (motion-blurred rear of a car with its plate, a deblurring
  sample). The copyright file covers them only by its catch-all ``Files: *`` stanza: Copyright
  2000-2022 Intel Corporation, Willow Garage, NVIDIA, AMD, OpenCV Foundation, Itseez, Xperience AI,
  Shenzhen Institute of AI and Robotics for Society and the OpenCV contributors; licence
  ``Apache-2.0 AND BSD-3-Clause``. It states no separate origin, author or licence for any of
  these sample media (its only statement about sample images is that ``samples/data/lena.jpg``
  and other Lena copies were removed from the Debian source as non-free). The photographs and
  clips were made by third parties (the football photograph carries a "WEEKmedia" watermark;
  Megamind is a DreamWorks film): treat them as evaluation material redistributed by OpenCV and
  Debian, not as media whose copyright holders have been identified.
- ``darknet`` 0.0.0+git20180914.61c9d02e-2+b4 (source https://github.com/pjreddie/darknet), files
  from ``/usr/share/darknet/data/``: ``person.jpg``, ``dog.jpg``, ``kite.jpg``, ``horses.jpg``.
  Copyright 2018 Joseph Redmon, licence ``GPL-3.0+ or MIT or WTFPL`` (upstream's "YOLO licence"
  is a public-domain-style grant; Debian records it as this choice); ``debian/*`` GPL-3.0+.
  The copyright file states no separate origin for the sample images.
- scikit-image's bundled data (``skimage.data.astronaut`` and others, used by
  ``tools/eval/face_photos.py``) is another offline source of real photographs; it is not repeated here.

Labels (``tools/eval/real_labels.json``) were drawn by eye on these exact files, as
``{"<image name>" or "<video>#<frame, 4 digits>": [{"cls", "box": [x1, y1, x2, y2], "note"?,
"ignore"?}]}``, pixel edges (``x2``/``y2`` exclusive, up to the image size). Classes: person, face,
car, truck, bus, bicycle, motorcycle, plate. Person boxes are tight around the visible body (a
carried bag is left out); face boxes run from hairline/forehead to chin and ear to ear (nose tip to
ear in profile). ``"ignore": true`` marks a box that should count neither as a miss nor, when a
detection overlaps it, as a false positive: faces under about 9 px tall, faces seen from behind or
turned away (back of head, hood), plates under about 6 px tall, people under about 12 px tall or
too uncertain to call, and blurred spectators in the background. An empty list (``horses.jpg``)
means no object of these classes. Video frames are decoded with OpenCV and counted from 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LABELS = Path(__file__).resolve().parent / "real_labels.json"
SUBSET_DIR = ROOT / "tests" / "data" / "real"
CLASSES = ("person", "face", "car", "truck", "bus", "bicycle", "motorcycle", "plate")
PACKAGES = ("opencv-doc", "darknet", "opencv-data")

_OPENCV = "usr/share/doc/opencv-doc/examples/data/"
_DARKNET = "usr/share/darknet/data/"
_OPENCV_LICENCE = ("OpenCV sample data (opencv-doc 4.6.0+dfsg-12): Apache-2.0 AND BSD-3-Clause per the "
                   "package copyright file; no separate origin stated")
_DARKNET_LICENCE = ("darknet sample data (darknet 0.0.0+git20180914.61c9d02e-2+b4): GPL-3.0+ or MIT or WTFPL "
                    "(YOLO licence, public-domain style); no separate origin stated")


@dataclass(frozen=True)
class _Source:
    package: str
    member: str
    sha256: str


FILES: dict[str, _Source] = {
    "person.jpg": _Source("darknet", _DARKNET + "person.jpg",
                          "cdcbab947e46110fc2b77784ac54ddbbab2640f1e44cb5e91fc8984a9793a7d1"),
    "dog.jpg": _Source("darknet", _DARKNET + "dog.jpg",
                       "5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866"),
    "kite.jpg": _Source("darknet", _DARKNET + "kite.jpg",
                        "87410f52f79cc256c3949b48a3548632c07c8e9943468ef8caa6250f6643be8e"),
    "horses.jpg": _Source("darknet", _DARKNET + "horses.jpg",
                          "c8f0a677a1356569e2ce71d2fa88c1030c0ae57ecf5e14170e02d9a86a20dcb4"),
    "messi5.jpg": _Source("opencv-doc", _OPENCV + "messi5.jpg",
                          "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9"),
    "basketball1.png": _Source("opencv-doc", _OPENCV + "basketball1.png",
                               "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6"),
    "basketball2.png": _Source("opencv-doc", _OPENCV + "basketball2.png",
                               "b3047772e0dc6c9d83c26f64894ca1a897f799f855c5574ac24b2ef934c2978e"),
    "licenseplate_motion.jpg": _Source("opencv-doc", _OPENCV + "licenseplate_motion.jpg",
                                       "ea6fa9cea75df91bec656d1d3b903111a9c0708c6a3b88f405a5156de38ff9d6"),
    "pexels_double_decker_bus.jpg": _Source(
        "opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/pexels_double_decker_bus.jpg",
        "e4c4dd62995cbe30501798f86fcf5973c7abe3ff9f7711fdb72c6d1f7f304484"),
    "vtest.avi": _Source("opencv-doc", _OPENCV + "vtest.avi",
                         "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"),
    "Megamind.avi": _Source("opencv-doc", _OPENCV + "Megamind.avi",
                            "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5"),
    "haarcascade_russian_plate_number.xml": _Source(
        "opencv-data", "usr/share/opencv4/haarcascades/haarcascade_russian_plate_number.xml",
        "814cb5954682af570e58361f9e5f8b5b513a4112776bb9ecacef9f0e4ca6c2d7"),
}
"""Cache file name -> package, path inside the package, SHA-256 of its bytes (the plate cascade is
OpenCV's real-data plate baseline, not an image)."""

COPYRIGHTS = {"opencv-doc": "usr/share/doc/opencv-doc/copyright", "darknet": "usr/share/doc/darknet/copyright",
              "opencv-data": "usr/share/doc/opencv-data/copyright"}
"""Each package's copyright file, kept in the cache as ``<package>.copyright``."""

VIDEOS = ("vtest.avi", "Megamind.avi")

SUBSET: dict[str, str] = {
    "person.jpg": "person.jpg",
    "dog.jpg": "dog.jpg",
    "messi5.jpg": "messi5.jpg",
    "vtest_0000.jpg": "vtest.avi#0000",
    "vtest_0300.jpg": "vtest.avi#0300",
}
"""Committed subset (``tests/data/real``) file name -> label key in ``tools/eval/real_labels.json``."""
SUBSET_JPEG_QUALITY = 85
SUBSET_VERBATIM = ("messi5.jpg",)
"""Subset files copied byte for byte; the others are re-encoded as JPEG at SUBSET_JPEG_QUALITY."""


class RealDataError(RuntimeError):
    """The real data could not be fetched or read; the message is one line, fit for a user."""


@dataclass(frozen=True)
class RealImage:
    name: str
    path: Path
    package: str
    licence: str


@dataclass(frozen=True)
class Box:
    cls: str
    box: tuple[int, int, int, int]
    """x1, y1, x2, y2 in pixels."""
    note: str = ""
    ignore: bool = False


# ------------------------------------------------------------------------------------------ fetching
def cache_path(cache_dir: Path | None = None, folder: str = "real") -> Path:
    """``cache_dir``, else ``$EDGED_REAL_DATA``, else ``~/.cache/edged/<folder>``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("EDGED_REAL_DATA")
    return Path(env) if env else Path.home() / ".cache" / "edged" / folder


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _complete(cache: Path) -> bool:
    return all((cache / name).is_file() for name in FILES) and all(
        (cache / f"{pkg}.copyright").is_file() for pkg in PACKAGES)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as e:
        raise RealDataError(f"{' '.join(cmd)} timed out after {e.timeout:.0f} s") from None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _extract(deb: Path, members: dict[str, Path]) -> None:
    """Copy ``members`` (paths inside ``deb``'s data archive) to their destinations, via dpkg-deb."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    wanted = {"./" + m: dst for m, dst in members.items()}
    found: set[str] = set()
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                dst = wanted.get(info.name)
                if dst is None or not info.isfile():
                    continue
                src = tar.extractfile(info)
                assert src is not None
                tmp = dst.with_name(dst.name + ".part")
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
                tmp.replace(dst)
                found.add(info.name)
    except tarfile.TarError as e:
        raise RealDataError(f"cannot read {deb.name}: {e}") from None
    finally:
        if proc.stdout:
            proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        rc = proc.wait()
    if rc != 0:
        raise RealDataError(f"dpkg-deb --fsys-tarfile {deb.name} failed: {_last_line(err)}")
    missing = sorted(set(wanted) - found)
    if missing:
        raise RealDataError(f"{deb.name} lacks {', '.join(m[2:] for m in missing)}")


def fetch(cache_dir: Path | None = None) -> Path:
    """The cache directory, holding every file of :data:`FILES` (fetched from Debian if missing).

    Raises :class:`RealDataError` (one-line message) when apt-get/dpkg-deb are missing, the download
    fails, or a file's SHA-256 differs from the one the labels were made on.
    """
    cache = cache_path(cache_dir)
    if not _complete(cache):
        for tool in ("apt-get", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise RealDataError(
                    f"real evaluation data is not in {cache} and {tool} is not available to fetch it "
                    f"(needs Debian: apt-get download {' '.join(PACKAGES)}); set EDGED_REAL_DATA to a "
                    "directory that holds the files")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edged-real-") as tmp:
            work = Path(tmp)
            got = _run(["apt-get", "download", *PACKAGES], work)
            if got.returncode != 0:
                raise RealDataError(f"apt-get download {' '.join(PACKAGES)} failed: {_last_line(got.stderr)}"
                                    " (as root on Debian, after apt-get update)")
            for pkg in PACKAGES:
                debs = sorted(work.glob(f"{pkg}_*.deb"))
                if not debs:
                    raise RealDataError(f"apt-get download left no {pkg}_*.deb in {work}")
                members = {src.member: cache / name for name, src in FILES.items() if src.package == pkg}
                members[COPYRIGHTS[pkg]] = cache / f"{pkg}.copyright"
                _extract(debs[0], members)
    for name, src in FILES.items():
        digest = sha256_of(cache / name)
        if digest != src.sha256:
            raise RealDataError(f"{cache / name} has SHA-256 {digest[:12]}..., not {src.sha256[:12]}... "
                                f"(another {src.package} version?); the labels would not apply")
    return cache


# ------------------------------------------------------------------------------------------ access
def images(cache_dir: Path | None = None) -> list[RealImage]:
    """The labelled still images (fetched if needed)."""
    cache = fetch(cache_dir)
    return [RealImage(name, cache / name, src.package,
                      _DARKNET_LICENCE if src.package == "darknet" else _OPENCV_LICENCE)
            for name, src in FILES.items() if name not in VIDEOS and not name.endswith(".xml")]


def videos(cache_dir: Path | None = None) -> dict[str, Path]:
    """Video name -> path (``vtest.avi``: pedestrians, labelled frames; ``Megamind.avi``: unlabelled)."""
    cache = fetch(cache_dir)
    return {name: cache / name for name in VIDEOS}


def check_boxes(entries: object, shape: tuple[int, int] | None = None) -> list[str]:
    """Problems in one image's label list (``[]`` when fine); ``shape`` is ``(height, width)``."""
    if not isinstance(entries, list):
        return [f"expected a list of boxes, got {type(entries).__name__}"]
    problems = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            problems.append(f"#{i}: not an object")
            continue
        extra = set(e) - {"cls", "box", "note", "ignore"}
        if extra:
            problems.append(f"#{i}: unknown keys {sorted(extra)}")
        if e.get("cls") not in CLASSES:
            problems.append(f"#{i}: unknown class {e.get('cls')!r}")
        b = e.get("box")
        if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in b)):
            problems.append(f"#{i}: box must be 4 integers, got {b!r}")
            continue
        x1, y1, x2, y2 = b
        if not (x1 < x2 and y1 < y2):
            problems.append(f"#{i}: box {b} is empty or reversed")
        if min(b) < 0 or (shape is not None and (x2 > shape[1] or y2 > shape[0])):
            problems.append(f"#{i}: box {b} outside the image {shape[1] if shape else '?'}x{shape[0] if shape else '?'}")
        if "ignore" in e and not isinstance(e["ignore"], bool):
            problems.append(f"#{i}: ignore must be true or false")
        if "note" in e and not isinstance(e["note"], str):
            problems.append(f"#{i}: note must be a string")
    return problems


def load_label_file(path: Path) -> dict[str, list[Box]]:
    """Parse and check a label file in the format above; ValueError lists every problem."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of image name -> boxes")
    problems = [f"{key} {p}" for key, entries in raw.items() for p in check_boxes(entries)]
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return {key: [Box(e["cls"], tuple(e["box"]), e.get("note", ""), bool(e.get("ignore", False)))
                  for e in entries] for key, entries in raw.items()}


def labels(path: Path = LABELS) -> dict[str, list[Box]]:
    """Hand labels of the real images and video frames (keys like ``"dog.jpg"``, ``"vtest.avi#0100"``)."""
    return load_label_file(path)


def split_key(key: str) -> tuple[str, int | None]:
    """``"vtest.avi#0100"`` -> ``("vtest.avi", 100)``; ``"dog.jpg"`` -> ``("dog.jpg", None)``."""
    name, sep, frame = key.partition("#")
    return (name, int(frame)) if sep else (name, None)


def read_frame(video: Path, index: int) -> np.ndarray:
    """Frame ``index`` (from 0, decoded in order, not by seeking) of ``video`` as BGR."""
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise RealDataError(f"cannot open {video}")
        for _ in range(index):
            if not cap.grab():
                raise RealDataError(f"{video} has fewer than {index + 1} frames")
        ok, frame = cap.read()
        if not ok:
            raise RealDataError(f"{video} has fewer than {index + 1} frames")
        return frame
    finally:
        cap.release()


def read(key: str, cache_dir: Path | None = None) -> np.ndarray:
    """The BGR pixels a label key refers to."""
    cache = fetch(cache_dir)
    name, frame = split_key(key)
    if name not in FILES:
        raise KeyError(key)
    if frame is None:
        img = cv2.imread(str(cache / name), cv2.IMREAD_COLOR)
        if img is None:
            raise RealDataError(f"cannot decode {cache / name}")
        return img
    return read_frame(cache / name, frame)


def video_frames(name: str, every: int = 1, limit: int | None = None, start: int = 0,
                 cache_dir: Path | None = None) -> list[tuple[int, np.ndarray]]:
    """``(index, BGR frame)`` for every ``every``-th frame of a cached video from ``start``."""
    cap = cv2.VideoCapture(str(fetch(cache_dir) / name))
    out: list[tuple[int, np.ndarray]] = []
    try:
        index = 0
        while limit is None or len(out) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if index >= start and (index - start) % every == 0:
                out.append((index, frame))
            index += 1
    finally:
        cap.release()
    return out


def calibration_frames(limit: int = 120, cache_dir: Path | None = None) -> list[np.ndarray]:
    """Real frames for int8 calibration, none of them a labelled evaluation frame: vtest.avi frames
    20, 60, 100+20, ... (labels sit on multiples of 100) and Megamind.avi frames, alternating."""
    street = [f for _, f in video_frames("vtest.avi", every=40, start=20, cache_dir=cache_dir)]
    film = [f for _, f in video_frames("Megamind.avi", every=15, cache_dir=cache_dir)]
    mixed = [f for pair in zip(street, film) for f in pair] + street[len(film):] + film[len(street):]
    return mixed[:limit]


def write_subset(dest: Path = SUBSET_DIR, cache_dir: Path | None = None) -> dict[str, int]:
    """Rebuild the committed subset and its ``labels.json`` in ``dest``; returns file name -> bytes."""
    dest.mkdir(parents=True, exist_ok=True)
    cache = fetch(cache_dir)
    all_labels = json.loads(LABELS.read_text())
    sizes = {}
    for out_name, key in SUBSET.items():
        target = dest / out_name
        if out_name in SUBSET_VERBATIM:
            shutil.copyfile(cache / key, target)
        else:
            ok, buf = cv2.imencode(".jpg", read(key, cache), [cv2.IMWRITE_JPEG_QUALITY, SUBSET_JPEG_QUALITY])
            if not ok:
                raise RealDataError(f"cannot encode {out_name}")
            target.write_bytes(buf.tobytes())
        sizes[out_name] = target.stat().st_size
    subset_labels = {out_name: all_labels[key] for out_name, key in SUBSET.items()}
    (dest / "labels.json").write_text(json.dumps(subset_labels, indent=1) + "\n")
    return sizes


def counts(lab: dict[str, list[Box]]) -> dict[str, tuple[int, int]]:
    """Class -> (boxes that count, ignored boxes) over ``lab``."""
    out: dict[str, list[int]] = {c: [0, 0] for c in CLASSES}
    for boxes in lab.values():
        for b in boxes:
            out[b.cls][1 if b.ignore else 0] += 1
    return {c: (n, k) for c, (n, k) in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="cache directory (default $EDGED_REAL_DATA or ~/.cache/edged/real)")
    ap.add_argument("--write-subset", type=Path, metavar="DIR", help="rebuild the committed test subset in DIR")
    args = ap.parse_args(argv)
    try:
        cache = fetch(args.cache)
        lab = labels()
        for img in images(cache):
            h, w = cv2.imread(str(img.path)).shape[:2]
            print(f"{img.name:24s} {w}x{h} {img.package:10s} {len(lab.get(img.name, []))} boxes")
        for name, path in videos(cache).items():
            n = sum(1 for k in lab if split_key(k)[0] == name)
            print(f"{name:24s} {path.stat().st_size} bytes, {n} labelled frames")
        for c, (n, k) in counts(lab).items():
            print(f"  {c:10s} {n:3d} counted, {k:3d} ignored")
        if args.write_subset:
            sizes = write_subset(args.write_subset, cache)
            print(f"subset in {args.write_subset}: {sum(sizes.values())} bytes in {len(sizes)} files")
    except RealDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
