"""PNG plots of a bench report: decode latency and peak memory against context length, TTFT and prefill.

matplotlib's Agg backend (no display needed). Context axis in powers of two labelled as a person
says them (128, 1k, 8k, 64k); decode latency is the p50 line with a band up to p99, and one floor per
precision (dense dashed, sparse dotted, in that precision's colour). Every figure carries the machine,
the versions and the command in its caption, so a PNG read on its own says where it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astroedge.fileio import atomic_file

PRECISION_COLOURS = {"fp32": "tab:blue", "fp16": "tab:purple", "int8": "tab:green", "int4": "tab:orange"}


def tokens_label(n: float) -> str:
    """128 -> '128', 1024 -> '1k', 65536 -> '64k', 1048576 -> '1M'."""
    n = int(n)
    for size, suffix in ((1 << 20, "M"), (1 << 10, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def caption(report: dict[str, Any]) -> str:
    m = report["machine"]
    v = m["versions"]
    model = report["model"]
    return (
        f"{m['cpu']}, {m['cores']} cores, load {m['load_at_start'][0]:.1f} at start; read bandwidth {m['bandwidth_gbs']:.1f} GB/s; "
        f"onnxruntime {v['onnxruntime']}, torch {v['torch']}, numpy {v['numpy']}, Python {v['python']}\n"
        f"L={model['n_layers']} D={model['d_model']} ({model['parameters']:,} params), weights: {report['weights']}; "
        f"batch 1, {report['device']}; command: {report['command']}"
    )


def _series(report: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    keys = list(dict.fromkeys((r["impl"], r["precision"]) for r in report["rows"]))
    return [(impl, p, [r for r in report["rows"] if r["impl"] == impl and r["precision"] == p]) for impl, p in keys]


BASELINE_COLOURS = {"torch-eager": "black", "transformer-ort": "tab:red"}


def _style(impl: str, precision: str) -> dict[str, Any]:
    """Colour = precision for library rows (matching that precision's floors); baselines get their own."""
    if impl.startswith("ort-library"):
        colour = PRECISION_COLOURS.get(precision, "gray")
    else:
        colour = BASELINE_COLOURS.get(impl, "tab:gray")
    line = "-" if "sparse" in impl else "--" if impl.startswith(("ort-library-dense", "transformer")) else "-."
    return {"color": colour, "linestyle": line}


def _context_axis(ax: Any, contexts: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(contexts)
    ax.set_xticklabels([tokens_label(c) for c in contexts])
    ax.minorticks_off()
    ax.set_xlabel("context length N (tokens before the measured step)")


def _save(fig: Any, report: dict[str, Any], folder: Path, name: str) -> Path:
    fig.text(0.01, 0.005, caption(report), fontsize=6.5, va="bottom", ha="left", wrap=True)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    with atomic_file(folder / name) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return folder / name


def write_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    contexts = list(report["contexts"])
    paths = []

    fig, ax = plt.subplots(figsize=(10, 6.5))
    for impl, p, rows in _series(report):
        pts = sorted((r["context"], r["decode_p50_ms"], r["decode_p99_ms"]) for r in rows if r["decode_p50_ms"] is not None)
        if not pts:
            continue
        xs = [x for x, _, _ in pts]
        (line,) = ax.plot(xs, [y for _, y, _ in pts], marker="o", label=f"{impl} {p}", **_style(impl, p))
        ax.fill_between(xs, [y for _, y, _ in pts], [z for _, _, z in pts], color=line.get_color(), alpha=0.15, linewidth=0)
    for p, f in report.get("floors", {}).items():
        colour = PRECISION_COLOURS.get(p, "gray")
        ax.axhline(f["dense_floor_ms"], color=colour, linestyle=(0, (6, 3)), linewidth=0.9, alpha=0.8, label=f"dense floor {p}")
        ax.axhline(f["sparse_floor_ms"], color=colour, linestyle=":", linewidth=1.2, alpha=0.8, label=f"sparse floor {p}")
    _context_axis(ax, contexts)
    ax.set_yscale("log")
    ax.set_ylabel("decode ms/token: p50 line, band to p99 (log scale)")
    ax.set_title("decode latency, batch 1, vs the read-bandwidth floors", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    paths.append(_save(fig, report, folder, "decode_latency.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 6))
    for impl, p, rows in _series(report):
        mem = sorted((r["context"], r["peak_rss_mib"]) for r in rows if r["peak_rss_mib"] is not None)
        if mem:
            ax.plot([x for x, _ in mem], [y for _, y in mem], marker="o", label=f"{impl} {p}", **_style(impl, p))
    _context_axis(ax, contexts)
    ax.set_yscale("log")
    ax.set_ylabel("peak process memory, MiB (log scale)")
    ax.set_title("peak resident memory of the decoding process", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    paths.append(_save(fig, report, folder, "peak_memory.png"))
    plt.close(fig)

    for key, label, name, title in (
        ("ttft_ms", "time to first token, ms", "ttft.png", f"time to first token, {report['prompt_tokens']}-token prompt"),
        ("prefill_tokens_per_s", "prefill tokens/s", "prefill.png", f"prefill throughput, {report['prefill_tokens']} tokens"),
    ):
        bars = [(f"{impl} {p}", rows[0][key], _style(impl, p)["color"]) for impl, p, rows in _series(report) if rows and rows[0][key]]
        fig, ax = plt.subplots(figsize=(10, 1.5 + 0.35 * max(len(bars), 1)))
        ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] or "gray" for b in bars])
        for i, (_, value, _) in enumerate(bars):
            ax.text(value, i, f" {value:,.0f}" if value >= 100 else f" {value:.1f}", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        paths.append(_save(fig, report, folder, name))
        plt.close(fig)
    return paths
