"""`astroedge run`: generate text from a package on a device, streaming it live.

Lives with the runtime (not in astroedge/cli.py) because it is device-side: it imports typer and,
inside the command, the torch-free runtime; nothing here may import torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def run(
    package: Annotated[Path, typer.Argument(help="model package (*.aepkg directory)")],
    prompt: Annotated[str, typer.Option(help="text to continue (may be empty with --load-state)")] = "",
    device: Annotated[str, typer.Option(help="cpu | cuda | tensorrt | jetson")] = "cpu",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 200,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.8,
    top_k: Annotated[int, typer.Option(help="keep the k most likely tokens (0 = all)")] = 0,
    top_p: Annotated[float, typer.Option(help="nucleus sampling mass (1 = off)")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option(help="> 1 discourages repeats (1 = off)")] = 1.0,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads (0 = default)")] = 0,
    stats: Annotated[bool, typer.Option("--stats", help="print latency, throughput and memory after the text")] = False,
    load_state: Annotated[Path | None, typer.Option(help="resume from a state file saved by --save-state")] = None,
    save_state: Annotated[Path | None, typer.Option(help="save the stream's state here afterwards (*.npz)")] = None,
) -> None:
    """Run a package with the torch-free runtime: prefill the prompt, then decode token by token."""
    from astroedge.runtime.engine import Engine
    from astroedge.runtime.stats import RunStats

    engine = Engine(package, device=device, threads=threads)
    stream = engine.create_stream()
    if load_state is not None:
        stream.load_state(load_state)
    record = RunStats(prompt_tokens=len(engine.tokenizer.encode(prompt)))
    text = (prompt or None) if load_state else prompt  # with a loaded state, an empty prompt continues it
    tokens = stream.generate(text, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    for _, piece in tokens:
        record.mark()
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if save_state is not None:
        stream.save_state(save_state)
    if stats:
        print_stats(record.summary(engine.package.state_bytes_per_stream, device), engine.describe())


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
