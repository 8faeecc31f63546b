"""PNG plots of a bench report: decode latency and peak memory against context length.

matplotlib's Agg backend (no display needed). Log-scaled context axis: AM-SNet's lines stay flat while
the Transformer's KV cache makes its lines climb.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astroedge.fileio import atomic_file


def write_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    impls = list(dict.fromkeys(r["impl"] for r in report["rows"]))
    model = report["model"]
    title = f"L={model['n_layers']} D={model['d_model']} ({model['parameters']:,} params), {report['machine']['cpu']}"
    paths = []
    for key, label, name in (("decode_p50_ms", "decode latency p50 (ms/token)", "decode_latency.png"),
                             ("peak_rss_mib", "peak process memory (MiB)", "peak_memory.png")):
        fig, ax = plt.subplots(figsize=(8, 5))
        for impl in impls:
            pts = [(r["context"], r[key]) for r in report["rows"] if r["impl"] == impl and r[key] is not None]
            if pts:
                style = "--" if impl.startswith("transformer") else "-"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=impl)
        if key == "decode_p50_ms":
            floor = [(r["context"], r["floor_ms"]) for r in report["rows"] if r["impl"] == "ort-library-fp32" and r["floor_ms"]]
            if floor:
                ax.plot([p[0] for p in floor], [p[1] for p in floor], ":", color="gray", label="bandwidth floor (fp32)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length (tokens before the measured step)")
        ax.set_ylabel(label)
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic_file(folder / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        paths.append(folder / name)
    return paths
