"""The rooms of the code base import only what their place allows (read from the source, not assumed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"edged": ROOT / "edged", "edged_sim": ROOT / "edged-sim" / "edged_sim",
            "edged_platform": ROOT / "edged-platform" / "edged_platform"}

ALLOWED: dict[str, set[str]] = {
    "edged.core": set(),
    "edged.config": {"edged.core"},
    "edged.hal": {"edged.core"},
    "edged.link": {"edged.core", "edged.config"},
    "edged.stages": {"edged.core", "edged.config", "edged.link"},
    "edged.remote": {"edged.core", "edged.config", "edged.link", "edged.runtime"},
    "edged.runtime": {"edged.core", "edged.config", "edged.link", "edged.stages", "edged.hal"},
}
"""Each room of the device package and the other rooms it may import (the CLI, at the top, may use all)."""

NOT_ON_THE_DEVICE = {"edged_sim", "edged_platform", "tools", "hal", "scipy", "PIL", "matplotlib", "trackers",
                     "skimage", "tensorflow", "sqlite_utils", "onnxruntime"}
"""What the device package must never import: the other packages, dev scripts and dev-only libraries."""


def imports(path: Path) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (lazy imports included)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
    return names


def modules(package: str) -> list[tuple[str, Path]]:
    """``(dotted name, file)`` of every module of one package."""
    base = PACKAGES[package]
    return [(".".join((package, *f.relative_to(base).with_suffix("").parts)).removesuffix(".__init__"), f)
            for f in sorted(base.rglob("*.py"))]


def room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_rule_table_names_every_room_of_the_device_package() -> None:
    rooms = {room(m) for m, _ in modules("edged")} - {"edged", "edged.cli"}
    assert rooms == set(ALLOWED)


@pytest.mark.parametrize("module,path", modules("edged"), ids=lambda v: v if isinstance(v, str) else "")
def test_device_rooms_import_only_what_they_may(module: str, path: Path) -> None:
    here = room(module)
    for name in imports(path):
        top = name.split(".")[0]
        assert top not in NOT_ON_THE_DEVICE, f"{module} imports {name}, which a device does not install"
        if top != "edged" or here in ("edged", "edged.cli"):
            continue
        other = room(name)
        assert other == here or other in ALLOWED[here], f"{module} ({here}) imports {name} ({other})"


@pytest.mark.parametrize("package", ["edged_sim", "edged_platform"])
def test_the_other_packages_do_not_depend_on_dev_scripts(package: str) -> None:
    """The simulation runs the platforms' side too; the platforms never need the simulation."""
    banned = {"tools", "hal"} | ({"edged_sim"} if package == "edged_platform" else set())
    found = [(m, n) for m, f in modules(package) for n in imports(f) if n.split(".")[0] in banned]
    assert found == []


PLATFORM_MAY_IMPORT = {"edged.core", "edged.link"}
"""What the platforms use of the device package: keys and ids, the wire and sealed-record formats (never a stage)."""


def test_the_platforms_use_only_the_device_packages_core_and_link() -> None:
    found = [(m, n) for m, f in modules("edged_platform") for n in imports(f)
             if n.split(".")[0] == "edged" and room(n) not in PLATFORM_MAY_IMPORT]
    assert found == []


def test_only_a_stage_module_and_the_runtime_touch_the_frame_bundle() -> None:
    touching = {m for m, f in modules("edged") if "FrameWork" in f.read_text()}
    stray = {m for m in touching
             if not (m.endswith(".stage") or m == "edged.stages.pipeline" or m.startswith("edged.runtime."))}
    assert stray == set()
