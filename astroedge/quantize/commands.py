"""The `quantize` command, registered on the CLI app by astroedge/cli.py (thin typer wrapper, lazy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from astroedge.errors import UserError


def quantize(
    package: Annotated[Path, typer.Argument(help="fp32 package to quantise (model.aepkg)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="quantised package directory to write")],
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 weights and activations; state stays fp32")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="int8 (weight-only by default; --calib for static QDQ)")] = False,
    int4: Annotated[bool, typer.Option("--int4", help="int4 weight-only (MatMulNBits, blockwise)")] = False,
    precision: Annotated[str | None, typer.Option(help="fp16, int8 or int4 (instead of the flags)")] = None,
    method: Annotated[str | None, typer.Option(help="int8: weight-only (default), dynamic or static-qdq")] = None,
    calib: Annotated[Path | None, typer.Option(help="calibration text for int8 static QDQ (TensorRT)")] = None,
    eval_text: Annotated[Path | None, typer.Option(help="held-out text for the perplexity gate (default: sample's last 10%)")] = None,
    eval_tokens: Annotated[int, typer.Option(help="tokens of held-out text to score")] = 8192,
    calib_tokens: Annotated[int, typer.Option(help="calibration tokens to use at most")] = 4096,
    max_ppl_increase: Annotated[
        float | None, typer.Option(help="refuse beyond this perplexity increase, percent (default: fp16 1, int8 1, int4 5)")
    ] = None,
    block_size: Annotated[int, typer.Option(help="weight-only: weights per quantisation scale")] = 32,
    force: Annotated[bool, typer.Option("--force", help="replace an existing output")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Quantise a package (fp16, int8, int4) and gate it on held-out perplexity against fp32; writes a new package."""
    from astroedge.progress import progress
    from astroedge.quantize.package import print_report, quantize_package

    chosen = [name for name, flag in (("fp16", fp16), ("int8", int8), ("int4", int4)) if flag] + ([precision] if precision else [])
    if len(chosen) != 1:
        raise UserError("choose exactly one precision: --fp16, --int8, --int4 (or --precision NAME)")
    with progress(f"quantising {package} to {chosen[0]}, perplexity gate"):
        report = quantize_package(
            package, output, chosen[0], method, calib, eval_text, eval_tokens, calib_tokens, max_ppl_increase, block_size, force
        )
    print_report(report, json_out)


def register(app: typer.Typer) -> None:
    app.command()(quantize)
