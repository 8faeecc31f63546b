"""The `astroedge` command. Each command is a thin typer wrapper; the work lives in the modules
named for it. Heavy imports (torch, onnx) happen inside the commands so that `astroedge run` works
on a device without torch.

A UserError becomes one line on stderr and exit code 2: no traceback, nothing half-written.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Annotated

import typer

from astroedge.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, export, run and profile AM-SNet spiking language models on edge devices.",
)


@app.command()
def train(
    text: Annotated[Path, typer.Argument(help="UTF-8 training text; the last 10% is held out")],
    output: Annotated[Path, typer.Option("-o", "--output", help="checkpoint to write (model.pt)")],
    config: Annotated[str, typer.Option(help="preset (tiny, sample, bench) or FILE.json ('astroedge config show')")] = "sample",
    d_model: Annotated[int | None, typer.Option(help="width D (overrides --config)")] = None,
    n_heads: Annotated[int | None, typer.Option(help="astrocyte heads; D / n_heads must be even")] = None,
    n_layers: Annotated[int | None, typer.Option(help="layers")] = None,
    ffn_mult: Annotated[float | None, typer.Option(help="FFN hidden width / D")] = None,
    firing_target: Annotated[float | None, typer.Option(help="penalise firing rates above this (e.g. 0.1): fewer spikes")] = None,
    firing_weight: Annotated[float, typer.Option(help="weight of the --firing-target penalty")] = 1.0,
    minutes: Annotated[float | None, typer.Option(help="train for this long")] = None,
    steps: Annotated[int | None, typer.Option(help="train for this many steps")] = None,
    seed: Annotated[int, typer.Option(help="seed: same seed, same data order and init")] = 0,
    batch_size: Annotated[int, typer.Option(help="sequences per step")] = 16,
    seq_len: Annotated[int, typer.Option(help="tokens per sequence")] = 256,
    lr: Annotated[float, typer.Option(help="peak learning rate (AdamW, cosine decay)")] = 3e-3,
    device: Annotated[str, typer.Option(help="torch device: cpu or cuda")] = "cpu",
    resume: Annotated[bool, typer.Option("--resume", help="continue from --output")] = False,
    tokenizer: Annotated[Path | None, typer.Option(help="HuggingFace tokenizers JSON (default: bytes)")] = None,
) -> None:
    """Train AM-SNet on a text file (chunkwise form, surrogate gradients)."""
    from astroedge.train import TrainOptions, run_training

    overrides = {"d_model": d_model, "n_heads": n_heads, "n_layers": n_layers, "ffn_mult": ffn_mult}
    run_training(
        TrainOptions(
            text,
            output,
            config,
            minutes,
            steps,
            seed,
            batch_size,
            seq_len,
            lr,
            device,
            resume,
            tokenizer,
            overrides=overrides,
            firing_target=firing_target,
            firing_weight=firing_weight,
        )
    )


config_app = typer.Typer(no_args_is_help=True, help="Model configs: presets and JSON files.")
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(name: Annotated[str, typer.Argument(help="preset (tiny, sample, bench) or FILE.json to validate")]) -> None:
    """Print a config as JSON (every field), to edit and pass to 'astroedge train --config FILE.json'."""
    import json

    from astroedge.config import load_config

    print(json.dumps(load_config(name).to_dict(), indent=2))


@app.command()
def generate(
    model: Annotated[Path, typer.Argument(help="checkpoint (model.pt)")],
    prompt: Annotated[str, typer.Option(help="text to continue")],
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 200,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.8,
    top_k: Annotated[int, typer.Option(help="keep the k most likely tokens (0 = all)")] = 0,
    top_p: Annotated[float, typer.Option(help="nucleus sampling mass (1 = off)")] = 1.0,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
) -> None:
    """Continue a prompt with the step form (memory constant in the output length), streaming text."""
    from astroedge.errors import check_sampling, check_utf8
    from astroedge.generate import generate_text

    check_utf8(prompt, "--prompt")
    check_sampling(max_new_tokens, temperature, top_k, top_p, seed)

    for piece in generate_text(model, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


@app.command("eval")
def evaluate(
    model: Annotated[Path, typer.Argument(help="checkpoint (model.pt)")],
    text: Annotated[Path, typer.Argument(help="UTF-8 text to score")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    max_tokens: Annotated[int, typer.Option(help="score at most this many tokens (0 = all)")] = 0,
) -> None:
    """Loss in nats/byte, bits per byte, perplexity and firing rates on a text."""
    from astroedge.evaluate import evaluate_file, print_report

    print_report(evaluate_file(model, text, max_tokens), json_out)


# --- registered commands of the other pipeline stages (each adds its own line below) ---
from astroedge.runtime.cli_run import run as run_command  # noqa: E402  (device side: typer only, no torch)

app.command("run")(run_command)
from astroedge.export.commands import register as register_export  # noqa: E402  (export, inspect, check; lazy torch/onnx)

register_export(app)
from astroedge.quantize.commands import register as register_quantize  # noqa: E402  (quantize; lazy onnx)

register_quantize(app)
from astroedge.bench.commands import register as register_bench  # noqa: E402  (bench; lazy torch/onnx)

register_bench(app)


# Host-side commands and the modules of the `host` extra each one imports. A device-only install
# (astroedge[cpu] or [gpu]: no torch, no onnx) refuses them up front in one line instead of dying on a
# ModuleNotFoundError traceback half-way through; `run` and `inspect` stay device-side.
HOST_EXTRA = "pip install 'astroedge[host]'"
HOST_COMMANDS: dict[str, tuple[str, ...]] = {
    "train": ("torch",),
    "generate": ("torch",),
    "eval": ("torch",),
    "export": ("torch", "onnx", "onnxscript"),
    "check": ("torch", "onnx"),
    "quantize": ("onnx",),
    "bench": ("torch", "onnx"),
}
_HOST_MODULES = frozenset({"torch", "onnx", "onnxscript", "tokenizers", "matplotlib"})


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (import blocked)
        return False


def require_host(command: str) -> None:
    """Refuse a host-side command when the `host` extra is missing, naming the extra to install."""
    missing = [m for m in HOST_COMMANDS.get(command, ()) if not _installed(m)]
    if missing:
        raise UserError(f"astroedge {command} is a host-side command and needs {', '.join(missing)}: {HOST_EXTRA}")


def _command_name(args: list[str]) -> str | None:
    """The sub-command of a command line (the first word that is not an option); None for --help."""
    if "--help" in args:
        return None
    return next((a for a in args if not a.startswith("-")), None)


def main() -> None:
    command = _command_name(sys.argv[1:])
    try:
        if command is not None:
            require_host(command)
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        # Backstop for an optional host module imported deeper than the table above says.
        if (exc.name or "").split(".")[0] not in _HOST_MODULES:
            raise
        print(f"error: astroedge {command} needs {exc.name}, which this install lacks: {HOST_EXTRA}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
