"""The simulated run's report: ``SIM_REPORT.md`` plus four PNG plots, from its ``result.json``.

::

    python -m edged_sim.report out/sim-20250101-120000      # re-draw the report of a run folder

Plots (matplotlib, Agg backend):

* ``fps.png`` -- frames processed per second over the run, broker outage shaded;
* ``latency.png`` -- per-stage latency histograms (one panel per stage, p50/p95 marked);
* ``timeline.png`` -- one row per object: when it was in view, when its best images were taken
  (immediate or cached) and whether they arrived at once or were held (e.g. by the outage);
* ``outbox.png`` -- outbox backlog per destination through the outage and the final drain.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edged.core.progname import prog_name

STAGE_ORDER = ("capture", "detect", "track", "select", "privacy", "health", "package", "pipeline total", "sink")
STATUS_MARK = {"pass": "PASS", "fail": "**FAIL**", "n/a": "n/a"}
COLORS = {"ops": "#1f77b4", "func.face": "#d62728", "func.plate": "#2ca02c"}


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _down_spans(series: dict[str, Any], key: str = "wall_s") -> list[tuple[float, float]]:
    """Stretches of ``key`` time during which the broker was down."""
    spans, start = [], None
    xs, up = series.get(key, []), series.get("broker_up", [])
    for x, u in zip(xs, up, strict=False):
        if not u and start is None:
            start = x
        elif u and start is not None:
            spans.append((start, x))
            start = None
    if start is not None and xs:
        spans.append((start, xs[-1]))
    return spans


def _outage_scene_span(data: dict[str, Any]) -> tuple[float, float] | None:
    events = data["series"].get("events", [])
    stop = next((e for e in events if e["event"] == "broker stopped"), None)
    start = next((e for e in events if e["event"].startswith("broker started")), None)
    if stop is None:
        return None
    return stop["scene_s"], (start["scene_s"] if start else data.get("scene_end_s", stop["scene_s"]))


def _shade(ax: Any, spans: list[tuple[float, float]], label: str = "broker down") -> None:
    for i, (a, b) in enumerate(spans):
        ax.axvspan(a, b, color="#999999", alpha=0.25, lw=0, label=label if i == 0 else None)


# ------------------------------------------------------------------------------------------- plots
def plot_fps(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    s = data["series"]
    wall, proc, phase = np.array(s["wall_s"]), np.array(s["processed"]), s["phase"]
    run = np.array([p == "run" for p in phase])
    fig, ax = plt.subplots(figsize=(10, 4.0), dpi=110)
    if run.sum() >= 2:
        w, p = wall[run], proc[run]
        window = max(1.0, (w[-1] - w[0]) / 120)  # seconds: ~120 independent points over the run
        idx = np.searchsorted(w, w - window)
        dt = w - w[idx]
        fps = np.where(dt > 0, (p - p[idx]) / np.where(dt > 0, dt, 1), np.nan)
        ax.plot(w, fps, color="#1f77b4", lw=1.4, label=f"processed frames/s ({window:.0f} s window)")
        mean = data["run"]["fps"]
        ax.axhline(mean, color="#1f77b4", ls=":", lw=1, label=f"run mean {mean:.1f} fps")
    cam = data["settings"]["fps"]
    ax.axhline(cam, color="#2ca02c", ls="--", lw=1, label=f"camera rate {cam:g} fps")
    ax.axhline(25, color="#d62728", ls="--", lw=1, label="T/AI 110.2: 25 fps")
    _shade(ax, _down_spans(s))
    ax.set_xlabel("wall-clock seconds since start")
    ax.set_ylabel("frames / s")
    paced = data["settings"]["realtime"]
    mode = "capture paced at the camera rate" if paced else "as fast as the pipeline runs, no frame dropped"
    ax.set_title(f"Frames processed per second over the run: {mode}", fontsize=11)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=8, ncol=5, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    timings = {k: v for k, v in data["timings_ms"].items() if len(v)}
    stages = [s for s in STAGE_ORDER if s in timings] + [s for s in timings if s not in STAGE_ORDER]
    n = len(stages)
    cols = 5 if n > 8 else 4
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.5 * rows + 0.6), dpi=110, squeeze=False)
    floor = 0.001  # 1 us: shorter times are drawn in the first bin
    every = np.concatenate([np.asarray(timings[s], dtype=float) for s in stages]) if stages else np.ones(1)
    hi = max(float(every.max()), floor * 10)
    bins = np.geomspace(floor, hi * 1.01, 48)
    for ax, stage in zip(axes.flat, stages, strict=False):
        v = np.clip(np.asarray(timings[stage], dtype=float), floor, None)
        ax.hist(v, bins=bins, color="#4c72b0", alpha=0.85)
        p50, p95 = np.percentile(v, [50, 95])
        ax.axvline(p50, color="k", lw=1.2)
        ax.axvline(p95, color="#d62728", lw=1.2, ls="--")
        ax.set_xscale("log")
        ax.set_title(f"{stage}: p50 {_ms(p50)}, p95 {_ms(p95)}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Per-frame latency by stage (ms, log scale; black line p50, red dashed p95; frames counted up the "
                 "y axis)", fontsize=10)
    fig.supxlabel("milliseconds per frame (capture: rendering the fake frame; sink: outbox commit and checks)",
                  fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _ms(v: float) -> str:
    return f"{v:.3f} ms" if v < 0.1 else f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"


def _scene_at(data: dict[str, Any], wall: float) -> float:
    """Scene time reached at wall-clock ``wall`` (the scene end once the scene is over)."""
    s = data["series"]
    if not s["wall_s"]:
        return wall
    return float(np.interp(wall, s["wall_s"], s["scene_s"]))


def plot_timeline(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    objects = data["objects"]
    need = next((c["figures"].get("objects_in_view_min_s", 1.0) for c in data["checks"]
                 if c["name"] == "best image per object"), 1.0)
    end = max(data.get("scene_end_s", 1.0), 1.0)
    row_in, top_in, bottom_in = 0.15, 0.5, 1.25
    height = top_in + bottom_in + row_in * max(len(objects), 8)
    fig, ax = plt.subplots(figsize=(12, height), dpi=100)
    span = _outage_scene_span(data)
    if span:
        ax.axvspan(*span, color="#999999", alpha=0.25, lw=0)
    realtime = data["settings"]["realtime"]  # otherwise wall-clock waits do not map onto scene time
    for row, obj in enumerate(objects):
        y = len(objects) - 1 - row
        counted = obj["in_view_s"] >= need
        missed = counted and not obj["deliveries"]
        colour = "#d62728" if missed else ("#4c72b0" if counted else "#8c8c8c")
        for a, b in obj.get("partly", []):
            ax.plot([a, max(b, a + 0.1)], [y, y], color=colour, lw=1.0, alpha=0.6, solid_capstyle="butt")
        for a, b in obj["intervals"]:
            ax.plot([a, max(b, a + 0.1)], [y, y], color=colour, lw=4.0, alpha=0.45, solid_capstyle="butt")
        for d in obj["deliveries"]:
            if realtime and d.get("arrived_wall_s") is not None:
                arrived = _scene_at(data, d["arrived_wall_s"])
                if arrived - d["scene_s"] > 0.3:
                    ax.plot([d["scene_s"], arrived], [y, y], color="#2ca02c", lw=0.8, alpha=0.5)
                    ax.plot(min(arrived, end), y, marker=">" if arrived >= end - 1e-6 else "|", color="#2ca02c",
                            ms=4, alpha=0.8)
            ax.plot(d["scene_s"], y, marker="o", ms=5.5, mfc="#2ca02c" if d["immediate"] else "white", mec="#2ca02c",
                    mew=1.4, ls="none", zorder=3)
        if missed:
            ax.plot(obj["intervals"][-1][1] + 0.5, y, marker="x", color="#d62728", ms=7, mew=2)
    ax.set_yticks(range(len(objects)))
    ax.set_yticklabels([f"{o['class']} {o['id']}" for o in objects][::-1], fontsize=7)
    ax.set_ylim(-0.7, max(len(objects), 1) - 0.3)
    ax.set_xlim(0, end + 1)
    ax.set_xlabel("scene seconds")
    ax.grid(axis="x", alpha=0.3)
    legend: list[Artist] = [
        Line2D([], [], color="#4c72b0", lw=4, alpha=0.45, label=f"in view (half visible or more) >= {need:g} s"),
        Line2D([], [], color="#8c8c8c", lw=4, alpha=0.45, label=f"in view < {need:g} s (not required)"),
        Line2D([], [], color="#4c72b0", lw=1, alpha=0.6, label="partly in view"),
        Line2D([], [], color="#d62728", lw=4, alpha=0.45, marker="x", mec="#d62728",
               label="required, but no best image at ops"),
        Line2D([], [], marker="o", ls="none", mfc="#2ca02c", mec="#2ca02c", label="best image sent immediately"),
        Line2D([], [], marker="o", ls="none", mfc="white", mec="#2ca02c", mew=1.4,
               label="best image via the cached queue"),
    ]
    if realtime:
        legend.append(Line2D([], [], color="#2ca02c", lw=0.8, marker="|", ms=6,
                             label="waited until | it arrived at ops (> : after the scene ended)"))
    if span:
        legend.append(Patch(color="#999999", alpha=0.25, label="broker down"))
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=8, frameon=False)
    ax.set_title("Best images per object (dots at the capture time of each best image delivered to ops)", fontsize=10)
    fig.subplots_adjust(left=0.09, right=0.98, top=1 - top_in / height, bottom=bottom_in / height)
    fig.savefig(path)
    plt.close(fig)


def plot_outbox(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    s = data["series"]
    wall = np.array(s["wall_s"])
    fig, ax = plt.subplots(figsize=(10, 3.8), dpi=110)
    for dest, counts in sorted(s["backlog"].items()):
        ax.plot(wall[: len(counts)], counts, lw=1.5, color=COLORS.get(dest), label=f"{dest} backlog")
    _shade(ax, _down_spans(s))
    drain_at = next((w for w, p in zip(s["wall_s"], s["phase"], strict=False) if p == "drain"), None)
    if drain_at is not None:
        ax.axvline(drain_at, color="k", ls=":", lw=1, label="scene ended: outbox reopened and drained")
    ax.set_xlabel("wall-clock seconds since start")
    ax.set_ylabel("messages waiting in the outbox")
    ax.set_title("Outbox depth: messages pile up while the broker is down, then drain", fontsize=11)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- markdown
def _stage_rows(data: dict[str, Any]) -> list[str]:
    rows = ["| stage | p50 ms | p95 ms | mean ms | frames |", "|---|---:|---:|---:|---:|"]
    timings = data["timings_ms"]
    for stage in [s for s in STAGE_ORDER if s in timings] + [s for s in timings if s not in STAGE_ORDER]:
        v = np.array(timings[stage])
        if len(v):
            p50, p95 = np.percentile(v, [50, 95])
            rows.append(f"| {stage} | {p50:.3f} | {p95:.3f} | {v.mean():.3f} | {len(v)} |")
    rows += ["", "capture: rendering the fake frame (a camera's job on a device); pipeline total: the stages from "
             "detect to package; sink: storing the messages in the outbox (one fsynced commit) and the simulation's "
             "bookkeeping (last 2048 frames)."]
    return rows


def _cached_note(data: dict[str, Any]) -> str:
    """How fast cached packages were made against the rate the cached queue may send them."""
    st, sent = data["settings"], data["run"].get("sent_by_kind", {})
    period, scene = st.get("cached_period_s"), data.get("scene_end_s") or st["seconds"]
    cached = sent.get("ops/package/cached", 0)
    if not period or not scene or not st["realtime"]:
        return ""
    made, allowed = cached / scene, 1.0 / period
    verdict = ("so the cached queue keeps up" if made <= allowed else
               "so the cached queue falls further behind the longer the run (ops backlog between the outage and "
               "the end)")
    return (f" Cached packages were made at {made:.2f}/s of scene; the cached queue sends at most "
            f"{allowed:.2f}/s (`select.cached_period_s` = {period:g} s), {verdict}.")


def _pace_note(st: dict[str, Any], run: dict[str, Any]) -> str:
    if not st["realtime"]:
        return " (unpaced: as fast as the pipeline, in lockstep with it, no frame dropped)."
    if run["fps"] < 0.95 * st["fps"]:
        return (f" (paced at {st['fps']:g} fps, but the pipeline managed only {run['fps']:.1f}: the scene ran "
                f"{st['fps'] / max(run['fps'], 0.01):.1f}x slower than real time, no frame dropped).")
    return " (paced at the camera rate)."


def markdown(data: dict[str, Any]) -> str:
    st, run = data["settings"], data["run"]
    statuses = [c["status"] for c in data["checks"]]
    verdict = "FAIL" if "fail" in statuses else "PASS"
    outage = st.get("outage")
    out = [
        "# Simulated end-to-end run",
        "",
        f"**{verdict}**: {sum(s == 'pass' for s in statuses)} checks passed, {statuses.count('fail')} failed, "
        f"{statuses.count('n/a')} not applicable.",
        "",
        f"{st['seconds']:g} s of the fake road scene (seed {st['seed']}, {st['width']}x{st['height']} at "
        f"{st['fps']:g} fps, {st['frames']} frames), detector: {st['detector']}"
        + (f" ({', '.join(m['name'] for m in st['models'])})" if st['detector'] == 'models' and st['models'] else "")
        + (f"; broker stopped at scene {outage['start_s']:g} s for {outage['length_s']:g} s" if outage
           else "; no outage")
        + f". Wall time {run['wall_s']:.1f} s, {run['fps']:.1f} fps" + _pace_note(st, run),
        "",
        "| check | result | what was measured |",
        "|---|---|---|",
    ]
    out += [f"| {c['name']} | {STATUS_MARK.get(c['status'], c['status'])} | {c['summary']} |" for c in data["checks"]]
    if st.get("models_missing"):
        out += ["", f"Configured models not found (run without them): {', '.join(st['models_missing'])}."]
    out += ["", "## Throughput", "",
            "Frames processed per second (1 s window); the grey band is the broker outage, which must not slow "
            "the pipeline (messages wait in the outbox).", "", "![fps](fps.png)", "", "## Latency per stage", "",
            *_stage_rows(data), "", "![latency](latency.png)", "", "## Best-image selection", "",
            "One row per person or vehicle. Thick bar: in view (blue: must get a best image; red with x: it did "
            "not); dots: best images delivered to ops at their capture time (filled immediate, hollow cached)"
            + ("; thin line: until it arrived." if st["realtime"] else "."), ""]
    delivery = next((c for c in data["checks"] if c["name"] == "best image per object"), None)
    if delivery:
        per = delivery["figures"].get("per_class", {})
        if per:
            out += ["| class | objects in view >= 1 s | with a best image at ops |", "|---|---:|---:|"]
            out += [f"| {k} | {v['objects']} | {v['delivered']} |" for k, v in per.items()]
            out.append("")
        if delivery["figures"].get("missing_ids"):
            out += [f"Objects without a best image: {', '.join(map(str, delivery['figures']['missing_ids']))}.", ""]
    out += ["![timeline](timeline.png)", "", "## Outbox through the outage", ""]
    drain = run.get("drain", {})
    ups = run.get("uplinks", {})
    out += [
        f"At the end of the scene {drain.get('left_at_scene_end', 0)} messages were still waiting; the reopened outbox "
        f"drained them in {drain.get('drain_s', 0):.1f} s. Uplink sessions: "
        + ", ".join(f"{d} {u['sessions']}" for d, u in sorted(ups.items()))
        + " (run phase). Immediate packages out of order at ops: "
        + f"{run['immediate_order']['out_of_order_steps']} of {run['immediate_order']['arrived']}."
        + _cached_note(data),
        "",
        "Messages waiting in the outbox per destination: they pile up while the broker is down (grey) and "
        "drain when it is back; the dotted line is the end of the scene, after which the outbox is reopened "
        "and drained.",
        "",
        "![outbox](outbox.png)",
        "",
        "## Messages",
        "",
        "| destination/kind/priority | stored |",
        "|---|---:|",
    ]
    out += [f"| {k} | {v} |" for k, v in run.get("sent_by_kind", {}).items()]
    out += ["", "| receiver | received | stored | duplicates dropped | connects |", "|---|---:|---:|---:|---:|"]
    out += [f"| {d} | {r['received']} | {r['stored']} | {r['duplicates']} | {r['connects']} |"
            for d, r in sorted(run.get("receivers", {}).items())]
    det = run.get("detection_vs_ground_truth") or {}
    if det.get("classes"):
        out += ["", "## Detection vs ground truth (IoU 0.5)", "",
                "| class | ground truth | detections | recall | precision |", "|---|---:|---:|---:|---:|"]
        for k, v in det["classes"].items():
            out.append(f"| {k} | {v['ground_truth']} | {v['detections']} | {v['recall']} | {v['precision']} |")
    out += ["", "## Check details", ""]
    for c in data["checks"]:
        figs = {k: v for k, v in c["figures"].items() if k not in ("problems", "missing_ids", "lost_ids") or v}
        out.append(f"- **{c['name']}** ({c['status']}): `{json.dumps(figs, default=str)}`")
    return "\n".join(out) + "\n"


def write_report(data: dict[str, Any], folder: Path) -> Path:
    """Write the four plots and ``SIM_REPORT.md`` into ``folder``; returns the Markdown path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_fps(data, folder / "fps.png")
    plot_latency(data, folder / "latency.png")
    plot_timeline(data, folder / "timeline.png")
    plot_outbox(data, folder / "outbox.png")
    path = folder / "SIM_REPORT.md"
    path.write_text(markdown(data), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=prog_name("edged_sim.report"),
                                description="Draw a simulated run's report from its result.json.")
    p.add_argument("folder", type=Path, help="run folder holding result.json")
    args = p.parse_args(argv)
    try:
        data = json.loads((args.folder / "result.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"report: cannot read {args.folder / 'result.json'}: {err}", file=sys.stderr)
        return 2
    print(f"report: wrote {write_report(data, args.folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
