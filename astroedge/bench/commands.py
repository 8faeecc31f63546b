"""The `bench` command, registered on the CLI app by astroedge/cli.py (thin typer wrapper, lazy imports)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def bench(
    package: Annotated[Path | None, typer.Argument(help="fp32 package (model.aepkg); or use --config")] = None,
    config: Annotated[str | None, typer.Option(help="bench a seeded random-weight model of this preset (e.g. bench: L=12, D=768)")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    contexts: Annotated[str, typer.Option(help="context lengths before the measured decode steps")] = "128,1024,8192,65536",
    precisions: Annotated[str, typer.Option(help="library rows: precisions made from the package on the fly")] = "fp32,fp16,int8,int4",
    decode_steps: Annotated[int, typer.Option(help="decode steps timed per context")] = 32,
    prompt_tokens: Annotated[int, typer.Option(help="prompt length for time to first token")] = 128,
    prefill_tokens: Annotated[int, typer.Option(help="tokens for the prefill throughput")] = 1024,
    threads: Annotated[int, typer.Option(help="intra-op threads (0 = library default)")] = 0,
    no_baselines: Annotated[bool, typer.Option("--no-baselines", help="only the library rows")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON report")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="also write the JSON report to this file")] = None,
    plot: Annotated[Path | None, typer.Option(help="write PNG plots to this folder")] = None,
) -> None:
    """Decode latency p50/p99, time to first token, prefill tokens/s, peak memory and state bytes vs the baselines."""
    from astroedge.bench.model import PRECISIONS, BenchOptions, parse_contexts, parse_list, print_bench, run_bench
    from astroedge.errors import UserError
    from astroedge.fileio import atomic_file

    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: bench runs on cpu or cuda")
    for name, value in (("decode-steps", decode_steps), ("prompt-tokens", prompt_tokens), ("prefill-tokens", prefill_tokens)):
        if value < 1:
            raise UserError(f"--{name} {value}: must be at least 1")
    opts = BenchOptions(
        package,
        config,
        device,
        parse_contexts(contexts),
        parse_list(precisions, "precisions", PRECISIONS),
        decode_steps,
        prompt_tokens,
        prefill_tokens,
        threads,
        not no_baselines,
    )
    report = run_bench(opts, "astroedge bench " + shlex.join(sys.argv[2:]))
    if output is not None:
        with atomic_file(output) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    if plot is not None:
        from astroedge.bench.plots import write_plots

        report["plots"] = [str(p) for p in write_plots(report, plot)]
    print_bench(report, json_out)


def register(app: typer.Typer) -> None:
    app.command()(bench)
