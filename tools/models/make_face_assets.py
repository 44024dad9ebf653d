"""Extract the fake camera's face photographs into ``edged-sim/edged_sim/assets/faces/`` (run offline, once).

    python -m tools.models.make_face_assets

Sources are real photographs that ship inside installed packages and may be redistributed
(see ``SOURCES``); each crop box was chosen by eye once and is fixed here, so the output is
reproducible byte for byte from the same package versions. Each face is written as an RGBA PNG
(``FACE_HEIGHT`` px high) whose alpha is a feathered ellipse inscribed in the crop box; the fake
camera pastes it on a pedestrian's head, and the ground-truth face box is that ellipse.
``faces.json`` records per face: file, source, whether it is frontal, and a hair colour sampled
above the face in the photo (the renderer draws hair of that colour around the ellipse).
``PROVENANCE.md`` is rewritten with sources, licences and SHA-256 of every file.

This tool needs scikit-image and matplotlib (dev extras); the runtime fake camera does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parents[2] / "edged-sim" / "edged_sim" / "assets"
FACES = ASSETS / "faces"
FACE_HEIGHT = 160
"""Stored face height in px: larger than the biggest face the scene draws (~140 px), so the
renderer only ever shrinks."""
FEATHER = 0.06
"""Width of the soft alpha edge as a fraction of the ellipse radius."""


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    path_in_package: str
    box: tuple[int, int, int, int]
    """Crop box ``x1, y1, x2, y2`` in the source image; the face ellipse is inscribed in it."""
    hair_box: tuple[int, int, int, int]
    """Region of the photo whose median colour is the person's hair (or headwear)."""
    frontal: bool
    who: str
    licence: str


SOURCES = (
    Source(
        name="astronaut",
        package="scikit-image",
        path_in_package="skimage/data/astronaut.png",
        box=(181, 72, 271, 186),
        hair_box=(170, 30, 280, 60),
        frontal=True,
        who="Eileen Collins, NASA astronaut; NASA portrait (Great Images in NASA).",
        licence="Public domain (NASA photograph; scikit-image: 'No known copyright restrictions, "
        "released into the public domain').",
    ),
    Source(
        name="hopper",
        package="matplotlib",
        path_in_package="matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        box=(165, 128, 372, 345),
        hair_box=(180, 60, 360, 110),
        frontal=True,
        who="Rear Admiral Grace M. Hopper, US Navy official portrait (1984).",
        licence="Public domain (work of the US Navy / US federal government), shipped as "
        "matplotlib sample data.",
    ),
    Source(
        name="cameraman",
        package="scikit-image",
        path_in_package="skimage/data/camera.png",
        box=(172, 98, 262, 206),
        hair_box=(180, 70, 250, 95),
        frontal=False,
        who="Man with a camcorder, profile view (scikit-image 'camera', grey-level).",
        licence="CC0 (scikit-image: 'No copyright restrictions. CC0 by the photographer (Lav "
        "Varshney)').",
    ),
)


def source_file(src: Source) -> Path:
    """Path of the photo inside the installed package."""
    if src.package == "scikit-image":
        import skimage

        root = Path(skimage.__file__).resolve().parent.parent
    elif src.package == "matplotlib":
        import matplotlib

        root = Path(matplotlib.__file__).resolve().parent.parent
    else:
        raise ValueError(f"unknown package {src.package!r}")
    path = root / src.path_in_package
    if not path.is_file():
        raise FileNotFoundError(f"{src.name}: {path} not found (is {src.package} installed?)")
    return path


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot decode {path}")
    return image


def ellipse_alpha(height: int, width: int) -> np.ndarray:
    """``uint8`` alpha: 255 inside the inscribed ellipse, falling to 0 over ``FEATHER`` at its rim."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ny = (yy + 0.5 - height / 2) / (height / 2)
    nx = (xx + 0.5 - width / 2) / (width / 2)
    r = np.sqrt(nx * nx + ny * ny)
    alpha = np.clip((1.0 - r) / FEATHER + 0.5, 0.0, 1.0)
    return np.round(alpha * 255).astype(np.uint8)


def extract(src: Source) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The RGBA-as-BGRA face crop and the hair colour (BGR)."""
    image = read_bgr(source_file(src))
    x1, y1, x2, y2 = src.box
    crop = image[y1:y2, x1:x2]
    scale = FACE_HEIGHT / crop.shape[0]
    width = round(crop.shape[1] * scale)
    face = cv2.resize(crop, (width, FACE_HEIGHT), interpolation=cv2.INTER_AREA)
    bgra = np.dstack([face, ellipse_alpha(FACE_HEIGHT, width)])
    hx1, hy1, hx2, hy2 = src.hair_box
    hair = np.median(image[hy1:hy2, hx1:hx2].reshape(-1, 3), axis=0)
    return bgra, (int(hair[0]), int(hair[1]), int(hair[2]))


def provenance(entries: list[dict], digests: dict[str, str]) -> str:
    lines = [
        "# Provenance of the fake camera's assets",
        "",
        "Written by `python -m tools.models.make_face_assets`; do not edit by hand.",
        "",
        "## faces/",
        "",
        "Real photographs of faces, cropped to an ellipse around the face and resized to "
        f"{FACE_HEIGHT} px high. Only {len(entries)} distinct photographs could be found whose "
        "licence allows redistribution and that ship offline in installed packages, so the scene "
        "varies the *people* (mirror image, skin/colour shift, hair, clothes, height, gait), "
        f"not the underlying identities: every pedestrian's face is one of these {len(entries)}.",
        "One of them (`cameraman`) is a profile view; detectors trained on frontal faces may miss it.",
        "",
        "| file | photograph | taken from | licence | sha256 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        lines.append(
            f"| `faces/{e['file']}` | {e['who']} | `{e['package']}`: `{e['path_in_package']}` "
            f"crop {tuple(e['box'])} | {e['licence']} | `{digests[e['file']][:16]}...` |"
        )
    lines += [
        "",
        "## Other resources the renderer uses (not stored here)",
        "",
        "- Plate text font: Pillow's bundled default TrueType font (Aileron Regular, by Sora Sagano, "
        "released to the public domain / CC0), loaded with `PIL.ImageFont.load_default(size=...)`.",
        "- Everything else in the scene (road, buildings, vehicles, bodies) is drawn procedurally.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    FACES.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    digests: dict[str, str] = {}
    for src in SOURCES:
        bgra, hair = extract(src)
        name = f"{src.name}.png"
        ok, png = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError(f"cannot encode {name}")
        (FACES / name).write_bytes(png.tobytes())
        digests[name] = hashlib.sha256(png.tobytes()).hexdigest()
        entries.append(
            {
                "file": name,
                "frontal": src.frontal,
                "hair_bgr": list(hair),
                "package": src.package,
                "path_in_package": src.path_in_package,
                "box": list(src.box),
                "who": src.who,
                "licence": src.licence,
            }
        )
        print(f"{name}: {bgra.shape[1]}x{bgra.shape[0]}, {len(png)} bytes, hair {hair}")
    index = [{k: e[k] for k in ("file", "frontal", "hair_bgr")} for e in entries]
    (FACES / "faces.json").write_text(json.dumps(index, indent=1) + "\n")
    (ASSETS / "PROVENANCE.md").write_text(provenance(entries, digests))
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    print(f"assets total {total} bytes")


if __name__ == "__main__":
    main()
