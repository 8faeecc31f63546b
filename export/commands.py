"""The `export`, `inspect` and `check` commands, registered on the CLI app by astroedge/cli.py.

Thin typer wrappers: the work is in export/package.py, export/inspect_package.py and export/check.py,
imported inside each command so that loading the CLI costs no torch or onnx import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint to export (model.pt)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="package directory to write (model.aepkg)")],
    force: Annotated[bool, typer.Option("--force", help="replace an existing package")] = False,
    dense: Annotated[bool, typer.Option("--dense", help="keep W_O and W_2 as dense MatMul instead of SpikeMatMul (comparison)")] = False,
) -> None:
    """Export a checkpoint to a package: fp32 ONNX (AMSU + 2 SpikeMatMul nodes per layer, fallbacks), manifest, tokenizer."""
    from astroedge.export.package import export_package
    from astroedge.progress import progress

    with progress(f"exporting {checkpoint}"):
        path = export_package(checkpoint, output, force=force, dense=dense)
    typer.echo(f"wrote {path}")


def inspect(
    package: Annotated[Path, typer.Argument(help="package directory (model.aepkg)")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Layers, parameters, state bytes per stream, op histogram, custom nodes, precision and file sizes."""
    from astroedge.export.inspect_package import inspect_package, print_inspect

    print_inspect(inspect_package(package), json_out)


def check(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint the package was exported from (model.pt)")],
    package: Annotated[Path, typer.Argument(help="package directory (model.aepkg)")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    tokens: Annotated[int, typer.Option(help="tokens per stream (and greedy tokens) to compare")] = 32,
    tol_logits: Annotated[float, typer.Option(help="max |dlogits| / max(1, |logits|) before the first tie")] = 1e-4,
    tol_state: Annotated[float, typer.Option(help="max |dstate| / max(1, |state|) allowed")] = 1e-3,
    max_flip_rate: Annotated[float, typer.Option(help="spike flips beyond the tie tolerance / spikes compared allowed")] = 0.0,
    min_greedy_match: Annotated[float, typer.Option(help="fraction of judged positions whose argmax must match")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the random tokens and states")] = 0,
    long: Annotated[int, typer.Option(help="also teacher-force N tokens of --text from a non-zero state (10000 is thorough)")] = 0,
    text: Annotated[Path | None, typer.Option(help="text for --long (default: the bundled sample's held-out 10%)")] = None,
    tie_tolerance: Annotated[float | None, typer.Option(help="|float64 drive| up to which a flip is a tie (default: dtype's)")] = None,
    tol_perplexity: Annotated[float, typer.Option(help="--long: max |perplexity / reference's - 1|")] = 1e-3,
) -> None:
    """Every spike and logit vs a float64 PyTorch reference (native library and fallback); exit 1 on an error, not on a rounding tie."""
    from astroedge.export.check import Tolerances, check_package, print_check
    from astroedge.progress import progress

    with progress(f"checking {package} against {checkpoint}"):
        tol = Tolerances(tol_logits, tol_state, max_flip_rate, min_greedy_match, tol_perplexity, tie_tolerance)
        report = check_package(checkpoint, package, tokens, tol, seed, long, text)
    print_check(report, json_out)
    if not report["passed"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(export)
    app.command()(inspect)
    app.command()(check)
