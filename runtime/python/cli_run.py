"""`astroedge run`: generate text from a package on a device, streaming it live.

Lives with the runtime (not in astroedge/cli.py) because it is device-side: it imports typer and,
inside the command, the torch-free runtime; nothing here may import torch. Option defaults are the
sampling defaults of libastroedge (astroedge.sampling mirrors them; a test checks they agree).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from astroedge.errors import UserError, check_sampling, check_utf8
from astroedge.sampling import DEFAULTS


def run(
    package: Annotated[Path, typer.Argument(help="model package (*.aepkg directory)")],
    prompt: Annotated[str, typer.Option(help="text to continue (may be empty with --load-state)")] = "",
    device: Annotated[str, typer.Option(help="cpu | cuda | tensorrt | jetson")] = "cpu",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = DEFAULTS.max_new_tokens,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = DEFAULTS.temperature,
    top_k: Annotated[int, typer.Option(help="keep the k most likely tokens (0 = all)")] = DEFAULTS.top_k,
    top_p: Annotated[float, typer.Option(help="nucleus sampling mass (1 = off)")] = DEFAULTS.top_p,
    repetition_penalty: Annotated[
        float, typer.Option(help="> 1 discourages repeats, < 1 encourages them (1 = off)")
    ] = DEFAULTS.repetition_penalty,
    seed: Annotated[int, typer.Option(help="sampling seed (same seed, same tokens as the C API)")] = DEFAULTS.seed,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="end once the text ends with this (repeatable)")] = None,
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads (0 = default)")] = 0,
    library: Annotated[
        str | None,
        typer.Option(help='AMSU custom-op library ("" = the ONNX fallback; default: $ASTROEDGE_ORT_LIBRARY, then the bundled/built one)'),
    ] = None,
    stats: Annotated[bool, typer.Option("--stats", help="print latency, throughput and memory after the text")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object (text, tokens, stats) instead of streaming text")] = False,
    load_state: Annotated[Path | None, typer.Option(help="resume from a state file saved by --save-state (or the C API)")] = None,
    save_state: Annotated[Path | None, typer.Option(help="save the stream's state here afterwards (libastroedge state file)")] = None,
) -> None:
    """Run a package with the torch-free runtime: prefill the prompt, then decode token by token."""
    from astroedge.runtime.engine import Engine
    from astroedge.runtime.stats import RunStats

    check_run_options(prompt, stop or [], max_new_tokens, temperature, top_k, top_p, seed, repetition_penalty, threads, save_state)
    engine = Engine(package, device=device, threads=threads, library=library)
    stream = engine.create_stream()
    if load_state is not None:
        stream.load_state(load_state)
    prompt_ids = engine.tokenizer.encode(prompt)
    record = RunStats(prompt_tokens=len(prompt_ids))
    text_in = (prompt or None) if load_state else prompt  # with a loaded state, an empty prompt continues it
    tokens = stream.generate(text_in, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop or ())
    out = sys.stdout
    if not json_out:
        out.write(prompt)
        out.flush()
    generated: list[int] = []
    pieces: list[str] = []
    for token, piece in tokens:
        record.mark()
        generated.append(token)
        pieces.append(piece)
        if not json_out:
            out.write(piece)
            out.flush()
    if save_state is not None:
        stream.save_state(save_state)
    summary = record.summary(engine.state_bytes, device)
    if json_out:
        result = {"text": "".join(pieces), "tokens": generated, "prompt_tokens": prompt_ids, "position": stream.position, "stats": summary}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    out.write("\n")
    if stats:
        print_stats(summary, engine.describe())


MAX_THREADS = 1024  # onnxruntime takes an int; more threads than this is a typo, not a machine


def check_run_options(
    prompt: str,
    stop: list[str],
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    seed: int,
    repetition_penalty: float,
    threads: int,
    save_state: Path | None,
) -> None:
    """Refuse, in one line naming the option, values that would otherwise surface as a traceback or a C-side overflow."""
    check_utf8(prompt, "--prompt")
    for text in stop:
        check_utf8(text, "--stop")
    check_sampling(max_new_tokens, temperature, top_k, top_p, seed, repetition_penalty)
    if not 0 <= threads <= MAX_THREADS:
        raise UserError(f"--threads {threads}: must be in 0..{MAX_THREADS} (0 = onnxruntime's default)")
    if save_state is not None and save_state.is_dir():
        raise UserError(f"--save-state {save_state}: is a folder; give a file path such as {save_state / 'stream.aestate'}")


def print_stats(summary: dict[str, float | int | str | None], where: str) -> None:
    """A small rich table on stderr, so that stdout stays the generated text."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="astroedge run", show_header=False)
    for key, value in summary.items():
        shown = "n/a" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
        table.add_row(key.replace("_", " "), shown)
    console = Console(stderr=True)
    console.print(table)
    console.print(where, soft_wrap=True)
