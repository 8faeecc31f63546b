"""`astroedge train`: AdamW on random windows of the text, chunkwise AMSU form, surrogate gradients.

Deterministic for a seed on a given machine (one generator drives init and batch order), held-out
loss on the last 10% of the text, checkpoints written atomically, and --resume continues the
optimizer, schedule and data order where they stopped. The shape comes from a preset or a JSON file
(--config) with --d-model/--n-heads/... on top, validated by ModelConfig. --firing-target R adds a
penalty on every layer's (AMSU, FFN) firing rate above R: fewer spikes means fewer columns read by the
event-driven W_O / W_2 products at decode, for a little loss. The optimizer state goes to a sidecar file
(`model.pt.resume`) so the checkpoint that ships stays the size of the weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from astroedge.checkpoint import load, load_train_state, resume_path, save, save_train_state
from astroedge.config import load_config
from astroedge.corpus import load_tokens, read_text, split_held_out
from astroedge.errors import UserError
from astroedge.evaluate import score
from astroedge.fileio import check_parent
from astroedge.model import AMSNet
from astroedge.tokenizer import ByteTokenizer, HFTokenizer, Tokenizer

CHECKPOINT_EVERY_S = 300.0


@dataclass
class TrainOptions:
    text: Path
    output: Path
    config: str = "sample"
    minutes: float | None = None
    steps: int | None = None
    seed: int = 0
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 3e-3
    device: str = "cpu"
    resume: bool = False
    tokenizer: Path | None = None
    warmup: int = 100
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields set on the command line (--d-model ...)
    firing_target: float | None = None  # penalise firing rates above this (0..1); None = no penalty
    firing_weight: float = 1.0  # weight of that penalty against the cross-entropy (nats/token)

    def validate(self) -> None:
        if self.minutes is None and self.steps is None:
            raise UserError("give the training budget: --minutes N or --steps N")
        if self.minutes is not None and not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise UserError(f"--minutes {self.minutes}: must be a positive number")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"--steps {self.steps}: must be a positive integer")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be a positive integer")
        if self.seq_len < 2:
            raise UserError(f"--seq-len {self.seq_len}: must be at least 2")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr {self.lr}: must be a positive number")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {self.device}: torch sees no CUDA GPU here; use --device cpu")
        if self.device not in ("cpu",) and not self.device.startswith("cuda"):
            raise UserError(f"--device {self.device}: choose cpu or cuda")
        if self.output.is_dir():
            raise UserError(f"-o {self.output}: is a folder; give a file path such as model.pt")
        check_parent(self.output)
        if self.resume and not self.output.is_file():
            raise UserError(f"--resume: {self.output} does not exist; train without --resume first")
        if self.firing_target is not None and not 0 <= self.firing_target < 1:
            raise UserError(f"--firing-target {self.firing_target}: must be a spike rate in [0, 1), e.g. 0.1")
        if not (self.firing_weight > 0 and math.isfinite(self.firing_weight)):
            raise UserError(f"--firing-weight {self.firing_weight}: must be a positive number")
        if self.resume and any(v is not None for v in self.overrides.values()):
            given = next(k for k, v in self.overrides.items() if v is not None)
            raise UserError(f"--resume with --{given.replace('_', '-')}: a resumed model keeps its checkpoint's shape; drop the option")
        if self.resume and not resume_path(self.output).is_file():
            raise UserError(f"--resume: {resume_path(self.output)} (optimizer state) does not exist; train without --resume")


def _lr_at(progress: float, step: int, opts: TrainOptions) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak over the budget (progress in [0, 1])."""
    warm = min(1.0, (step + 1) / opts.warmup)
    return opts.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def run_training(opts: TrainOptions) -> None:
    opts.validate()
    cfg = None if opts.resume else load_config(opts.config, opts.overrides)  # a bad shape is refused before any work
    read_text(opts.text)  # clear errors for a missing or non-UTF-8 file before anything else
    torch.manual_seed(opts.seed)
    tokenizer: Tokenizer = HFTokenizer.from_file(opts.tokenizer) if opts.tokenizer else ByteTokenizer()
    state: dict | None = None
    if opts.resume:
        ckpt = load(opts.output)
        model, tokenizer = ckpt.model, ckpt.tokenizer
        state = load_train_state(resume_path(opts.output))
    else:
        assert cfg is not None
        if tokenizer.vocab_size != cfg.vocab_size:
            from dataclasses import replace

            cfg = replace(cfg, vocab_size=tokenizer.vocab_size).validate()
        model = AMSNet(cfg)
    ids = load_tokens(opts.text, tokenizer, min_tokens=10 * (opts.seq_len + 1))
    n_bytes = len(read_text(opts.text).encode("utf-8"))
    train_ids, held_ids = split_held_out(ids)
    held_bytes = int(n_bytes * len(held_ids) / len(ids))
    device = torch.device(opts.device)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen = torch.Generator().manual_seed(opts.seed)
    step, trained_s = 0, 0.0
    if state:
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, trained_s = int(state["step"]), float(state["trained_s"])
    budget_steps = opts.steps
    budget_s = opts.minutes * 60 if opts.minutes is not None else None
    train_t = torch.from_numpy(train_ids)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    console.print(
        f"AM-SNet {model.cfg.n_layers}x{model.cfg.d_model}, {model.num_parameters():,} parameters, "
        f"{len(train_ids):,} training / {len(held_ids):,} held-out tokens, device {device}"
    )
    start_step, t0, last_ckpt = step, time.monotonic(), time.monotonic()
    total = budget_steps if budget_steps is not None else None
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=total if total is not None else budget_s, completed=step if total else 0, info="")
        loss_ema = None
        fire_ema: torch.Tensor | None = None
        while True:
            elapsed = time.monotonic() - t0
            if budget_steps is not None and step >= budget_steps:
                break
            if budget_s is not None and elapsed >= budget_s:
                break
            if budget_steps is not None:
                progress_frac = step / budget_steps
            else:
                assert budget_s is not None  # TrainOptions.validate: --steps or --minutes is always given
                progress_frac = elapsed / budget_s
            for g in opt.param_groups:
                g["lr"] = _lr_at(progress_frac, step, opts)
            starts = torch.randint(0, len(train_t) - opts.seq_len - 1, (opts.batch_size,), generator=gen)
            window = torch.stack([train_t[s : s + opts.seq_len + 1] for s in starts.tolist()]).to(device)
            out = model(window[:, :-1])
            ce = F.cross_entropy(out.logits.flatten(0, 1).float(), window[:, 1:].flatten())
            loss = ce
            if opts.firing_target is not None:  # one-sided: rates below the target cost nothing
                loss = ce + opts.firing_weight * F.relu(out.firing - opts.firing_target).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            loss_ema = ce.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * ce.item()
            rates = out.firing.detach().mean(0)
            fire_ema = rates if fire_ema is None else 0.95 * fire_ema + 0.05 * rates
            fire_amsu, fire_ffn = fire_ema.tolist()
            tok_s = (step - start_step) * opts.batch_size * opts.seq_len / max(time.monotonic() - t0, 1e-9)
            progress.update(
                task,
                completed=step if total else min(time.monotonic() - t0, budget_s or 0),
                info=f"step {step} loss {loss_ema:.3f} firing {fire_amsu:.3f}/{fire_ffn:.3f} {tok_s:,.0f} tok/s",
            )
            if time.monotonic() - last_ckpt > CHECKPOINT_EVERY_S:
                _save(opts, model, tokenizer, opt, gen, step, trained_s + time.monotonic() - t0, None)
                last_ckpt = time.monotonic()
    trained_s += time.monotonic() - t0
    report = score(model, held_ids, held_bytes)
    meta = {
        "held_out_nats_per_byte": round(report.nats_per_byte, 4),
        "held_out_bits_per_byte": round(report.bits_per_byte, 4),
        "steps": step,
        "train_seconds": round(trained_s, 1),
        "tokens_seen": step * opts.batch_size * opts.seq_len,
        "batch_size": opts.batch_size,
        "seq_len": opts.seq_len,
        "seed": opts.seed,
        "device": str(device),
        "parameters": model.num_parameters(),
        "firing_amsu": report.firing_amsu,
        "firing_ffn": report.firing_ffn,
        "firing_target": opts.firing_target,
        "firing_weight": opts.firing_weight if opts.firing_target is not None else None,
    }
    _save(opts, model, tokenizer, opt, gen, step, trained_s, meta)
    console.print(
        f"held-out loss {report.nats_per_byte:.4f} nats/byte ({report.bits_per_byte:.3f} bits/byte) after {step} steps, "
        f"{trained_s / 60:.1f} min; wrote {opts.output}"
    )
    console.print(
        "held-out firing rate per layer: AMSU "
        + " ".join(f"{x:.3f}" for x in report.firing_amsu)
        + ", FFN "
        + " ".join(f"{x:.3f}" for x in report.firing_ffn)
    )


def _save(
    opts: TrainOptions,
    model: AMSNet,
    tokenizer: Tokenizer,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    step: int,
    trained_s: float,
    meta: dict | None,
) -> None:
    train_state = {"optimizer": opt.state_dict(), "generator": gen.get_state(), "step": step, "trained_s": trained_s}
    save_train_state(resume_path(opts.output), train_state)
    save(opts.output, model, tokenizer, meta)
