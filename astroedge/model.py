"""AM-SNet, the astrocyte-modulated spiking language model, in PyTorch: the reference.

Read top to bottom, as nanoGPT's model file: spike function, RoPE, the AMSU recurrence in its three
forms (step, parallel, chunkwise), then the layers, each with its own forward (RMSNorm, AMSU block,
spiking FFN, pre-norm Layer) and the model. The AMSU form is an argument of forward, passed down to
every layer: nothing here is patched from outside. Equations: docs/model.md and the op
contract astroedge/contract/amsu.json. Everything downstream (ONNX fallback, CPU/CUDA kernels,
TensorRT plugin, runtime) is tested against the functions in this file.

Shapes: B streams, T tokens, D = d_model channels, NH heads of width HD = D / NH. Heads are
contiguous channel blocks. State per layer: astrocyte h [B, NH, HD, HD] and membrane u [B, D], both
float32 whatever the weights are; plus one absolute position per stream for RoPE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astroedge.config import ModelConfig

# ----------------------------------------------------------------------------------------------
# Spike: Heaviside forward, triangle surrogate gradient backward.


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, drive: Tensor, width: float) -> Tensor:  # ctx: Any, its stub (FunctionCtx) lacks saved_tensors and width
        ctx.save_for_backward(drive)
        ctx.width = width
        return (drive > 0).to(drive.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (drive,) = ctx.saved_tensors
        w = ctx.width
        return grad * torch.clamp(1.0 - drive.abs() / w, min=0.0) / w, None


def spike(drive: Tensor, width: float = 1.0) -> Tensor:
    """s = 1 where drive > 0 else 0; gradient of a triangle of half-width `width` around 0."""
    return _Spike.apply(drive, width)


# ----------------------------------------------------------------------------------------------
# RoPE with exact angles for positions up to 2**32.
#
# angle = p * w is computed in float64 per radix-256 digit of p (p = sum_l d_l 256**l), and the
# four rotations are composed in float32 by complex multiplication. The error stays ~1e-7 rad for
# any p < 2**32, where the plain float32 product p * w is off by ~0.1 rad at p = 10**7.

ROPE_RADIX = 256
ROPE_LEVELS = 4
ROPE_MAX_POSITION = ROPE_RADIX**ROPE_LEVELS  # positions wrap beyond this (2**32 tokens)


def rope_inv_freq(head_dim: int, base: float) -> Tensor:
    """float64 [HD/2]: the rotation speed of each channel pair."""
    return base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)


def rope_tables(head_dim: int, base: float) -> Tensor:
    """float32 [LEVELS * RADIX, HD] = [cos | sin] of digit * 256**level * inv_freq, exact in float64."""
    inv_freq = rope_inv_freq(head_dim, base)
    digits = torch.arange(ROPE_RADIX, dtype=torch.float64)
    rows = []
    for level in range(ROPE_LEVELS):
        angle = torch.remainder(torch.outer(digits * float(ROPE_RADIX**level), inv_freq), 2 * math.pi)
        rows.append(torch.cat([angle.cos(), angle.sin()], dim=-1))
    return torch.cat(rows, dim=0).to(torch.float32)


def rope_cos_sin(positions: Tensor, tables: Tensor) -> tuple[Tensor, Tensor]:
    """positions int64 [B, T] -> cos, sin float32 [B, T, HD/2]."""
    half = tables.shape[-1] // 2
    cos = sin = None
    for level in range(ROPE_LEVELS):
        digit = torch.remainder(torch.div(positions, ROPE_RADIX**level, rounding_mode="floor"), ROPE_RADIX)
        row = F.embedding(digit + level * ROPE_RADIX, tables)
        c, s = row[..., :half], row[..., half:]
        if cos is None or sin is None:
            cos, sin = c, s
        else:
            cos, sin = cos * c - sin * s, sin * c + cos * s
    assert cos is not None and sin is not None
    return cos, sin


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B, T, NH, HD]; rotates channel i with channel i + HD/2 (the 'rotate half' layout)."""
    half = x.shape[-1] // 2
    c, s = cos.unsqueeze(2).to(x.dtype), sin.unsqueeze(2).to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


# ----------------------------------------------------------------------------------------------
# AMSU: the stateful recurrence (what the custom ONNX op computes), in three equal forms.


class AMSUParams(NamedTuple):
    w_o: Tensor  # [D] per-head RMSNorm weight
    gamma: Tensor  # [NH] astrocyte decay
    beta: Tensor  # [D] membrane decay
    threshold: float
    eps: float
    surrogate_width: float


class AMSUOut(NamedTuple):
    s: Tensor  # spikes [B, T, D]
    h: Tensor  # astrocyte state after the last token [B, NH, HD, HD]
    u: Tensor  # membrane after the last token [B, D]
    drive: Tensor  # u + o_hat - threshold [B, T, D]; s = drive > 0 (for counting spike flips)


def _heads(x: Tensor, n_heads: int) -> Tensor:
    """[B, T, D] -> [B, NH, T, HD]"""
    b, t, d = x.shape
    return x.reshape(b, t, n_heads, d // n_heads).transpose(1, 2)


def _read_out(o: Tensor, u: Tensor, p: AMSUParams) -> tuple[Tensor, Tensor]:
    """o [B, NH, T, HD] (astrocyte read-out), u [B, T, D] -> spikes and drive [B, T, D]."""
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + p.eps)
    b, nh, t, hd = o.shape
    o_hat = o.transpose(1, 2).reshape(b, t, nh * hd) * p.w_o
    drive = u + o_hat - p.threshold
    return spike(drive, p.surrogate_width), drive


def amsu_step_form(x: Tensor, q: Tensor, k: Tensor, v: Tensor, h: Tensor, u: Tensor, p: AMSUParams) -> AMSUOut:
    """One token at a time: the form a decoder runs, constant memory in T."""
    nh = p.gamma.shape[0]
    gamma = p.gamma.view(1, nh, 1, 1)
    spikes, drives = [], []
    for t in range(x.shape[1]):
        qt, kt, vt = (_heads(a[:, t : t + 1], nh)[:, :, 0] for a in (q, k, v))  # [B, NH, HD]
        h = gamma * h + vt.unsqueeze(-1) * kt.unsqueeze(-2)
        o = torch.einsum("bnij,bnj->bni", h, qt).unsqueeze(2)
        u = p.beta * u + (1 - p.beta) * torch.sigmoid(x[:, t])
        s, drive = _read_out(o, u.unsqueeze(1), p)
        spikes.append(s)
        drives.append(drive)
    return AMSUOut(torch.cat(spikes, 1), h, u, torch.cat(drives, 1))


def amsu_parallel_form(x: Tensor, q: Tensor, k: Tensor, v: Tensor, h: Tensor, u: Tensor, p: AMSUParams) -> AMSUOut:
    """All T tokens at once (memory ~ T^2): the unrolled recurrence.

    o_t = sum_{s<=t} gamma^(t-s) (q_t . k_s) v_s + gamma^(t+1) H_0 q_t       (t counted from 0)
    u_t = sum_{s<=t} beta^(t-s) (1-beta) sigmoid(x_s) + beta^(t+1) u_0
    """
    nh = p.gamma.shape[0]
    t_len = x.shape[1]
    qh, kh, vh = _heads(q, nh), _heads(k, nh), _heads(v, nh)
    steps = torch.arange(t_len, device=x.device)
    lag = (steps.view(-1, 1) - steps.view(1, -1)).to(h.dtype)  # [T, T] = t - s
    causal = lag >= 0
    log_gamma = torch.log(p.gamma).view(nh, 1, 1)
    decay = torch.where(causal, torch.exp(lag.clamp(min=0) * log_gamma), torch.zeros((), dtype=h.dtype))
    scores = qh @ kh.transpose(-1, -2) * decay  # [B, NH, T, T]
    carry_in = torch.exp((steps + 1).to(h.dtype).view(1, -1, 1) * log_gamma)  # gamma^(t+1) [NH, T, 1]
    o = scores @ vh + carry_in * torch.einsum("bnij,bntj->bnti", h, qh)
    to_end = torch.exp((t_len - 1 - steps).to(h.dtype).view(1, -1) * log_gamma.view(nh, 1))  # [NH, T]
    h_out = torch.exp(t_len * log_gamma).view(1, nh, 1, 1) * h + torch.einsum("bnsi,bnsj,ns->bnij", vh, kh, to_end)

    log_beta = torch.log(p.beta)  # [D]
    mdecay = torch.where(causal.unsqueeze(-1), torch.exp(lag.clamp(min=0).unsqueeze(-1) * log_beta), torch.zeros((), dtype=u.dtype))
    current = (1 - p.beta) * torch.sigmoid(x)  # [B, T, D]
    u_all = torch.einsum("tsd,bsd->btd", mdecay, current) + torch.exp((steps + 1).to(u.dtype).view(-1, 1) * log_beta) * u.unsqueeze(1)
    s, drive = _read_out(o, u_all, p)
    return AMSUOut(s, h_out, u_all[:, -1], drive)


def amsu_chunkwise_form(x: Tensor, q: Tensor, k: Tensor, v: Tensor, h: Tensor, u: Tensor, p: AMSUParams, chunk: int = 64) -> AMSUOut:
    """Parallel inside chunks of `chunk` tokens, state carried between them (memory ~ T * chunk).

    The structure of a fast kernel and of training on long sequences.
    """
    spikes, drives = [], []
    for start in range(0, x.shape[1], chunk):
        sl = slice(start, start + chunk)
        out = amsu_parallel_form(x[:, sl], q[:, sl], k[:, sl], v[:, sl], h, u, p)
        h, u = out.h, out.u
        spikes.append(out.s)
        drives.append(out.drive)
    return AMSUOut(torch.cat(spikes, 1), h, u, torch.cat(drives, 1))


AMSUForm = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, AMSUParams], AMSUOut]
FORMS: Mapping[str, AMSUForm] = MappingProxyType(
    {"step": amsu_step_form, "parallel": amsu_parallel_form, "chunkwise": amsu_chunkwise_form}
)  # read-only: a caller with another form (the exporter's node) passes the function itself


def resolve_form(form: str | AMSUForm) -> AMSUForm:
    """A form by name ("step", "parallel", "chunkwise") or the function itself."""
    if callable(form):
        return form
    if form not in FORMS:
        raise ValueError(f"unknown AMSU form {form!r}; choose one of {', '.join(FORMS)} or pass a form function")
    return FORMS[form]


class SpikeRecorder(Protocol):
    """Called by each layer with its spikes and their drives (spike = drive > 0), AMSU then FFN.

    How `astroedge check` and the tests observe every spike without patching the model.
    """

    def __call__(self, layer: int, kind: str, spikes: Tensor, drive: Tensor) -> None: ...


# ----------------------------------------------------------------------------------------------
# Layers, each with its own forward.


class RMSNorm(nn.Module):
    """Written out (not nn.RMSNorm) so that it exports as plain ONNX arithmetic on every opset."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class AMSUBlock(nn.Module):
    """Projections and RoPE (stateless, standard ops) around the AMSU recurrence, then W_O."""

    gamma: Tensor  # buffers, declared for the type checker (nn.Module.__getattr__ is typed Tensor | Module)
    beta: Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.in_proj = nn.Linear(d, 4 * d, bias=False)  # W_X, W_Q, W_K, W_V stacked: one GEMM
        self.out_proj = nn.Linear(d, d, bias=False)  # W_O, fed with spikes
        self.w_o = nn.Parameter(torch.full((d,), 0.5))
        self.register_buffer("gamma", torch.tensor(cfg.gammas(), dtype=torch.float32), persistent=False)
        self.register_buffer("beta", torch.full((d,), cfg.beta(), dtype=torch.float32), persistent=False)

    def params(self) -> AMSUParams:
        c = self.cfg
        return AMSUParams(self.w_o, self.gamma, self.beta, c.threshold, c.norm_eps, c.surrogate_width)

    def project(self, z: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """z [B, T, D] -> x, q, k, v [B, T, D] as the op contract wants them."""
        b, t, d = z.shape
        nh, hd = self.cfg.n_heads, self.cfg.head_dim
        x, q, k, v = self.in_proj(z).chunk(4, dim=-1)
        q = apply_rope(q.reshape(b, t, nh, hd), cos, sin).reshape(b, t, d)
        k = apply_rope(k.reshape(b, t, nh, hd), cos, sin).reshape(b, t, d) * (1.0 / math.sqrt(hd))
        return x, q, k, v

    def forward(self, z: Tensor, cos: Tensor, sin: Tensor, h: Tensor, u: Tensor, form: AMSUForm) -> tuple[Tensor, AMSUOut]:
        """z [B, T, D] normalised input, state (h, u) -> W_O s [B, T, D] and the recurrence's output."""
        out = form(*self.project(z, cos, sin), h, u, self.params())
        return self.out_proj(out.s), out


class SpikingFFN(nn.Module):
    """y = W_2 spike(W_1 z - theta_f): channel mixing through binary events."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.up = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z [B, T, D] -> y [B, T, D], spikes and their drive [B, T, ffn_hidden]."""
        drive = self.up(z) - self.cfg.ffn_threshold
        s = spike(drive, self.cfg.surrogate_width)
        return self.down(s), s, drive


class Layer(nn.Module):
    """Pre-norm residual: x + AMSU(norm1 x), then + FFN(norm2 x)."""

    def __init__(self, cfg: ModelConfig, index: int) -> None:
        super().__init__()
        self.index = index
        self.norm1 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.amsu = AMSUBlock(cfg)
        self.norm2 = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = SpikingFFN(cfg)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, h: Tensor, u: Tensor, form: AMSUForm, recorder: SpikeRecorder | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """-> new x, new state (h, u), and the (AMSU, FFN) firing rates [2] of this call.

        The rates keep their (surrogate) gradient so that a training penalty on firing can use them.
        """
        y, amsu = self.amsu(self.norm1(x), cos, sin, h, u, form)
        x = x + y
        y, s_ffn, drive_ffn = self.ffn(self.norm2(x))
        x = x + y
        if recorder is not None:
            recorder(self.index, "amsu", amsu.s, amsu.drive)
            recorder(self.index, "ffn", s_ffn, drive_ffn)
        return x, amsu.h, amsu.u, torch.stack([amsu.s.mean(), s_ffn.mean()])


@dataclass
class StreamState:
    """Everything a stream carries between calls: named fp32 tensors and an int64 position."""

    position: Tensor  # [B] int64, absolute position of the next token
    h: list[Tensor]  # per layer [B, NH, HD, HD] float32
    u: list[Tensor]  # per layer [B, D] float32


class ModelOutput(NamedTuple):
    logits: Tensor  # [B, T, V]
    state: StreamState
    firing: Tensor  # [L, 2] mean spike rate of (AMSU, FFN) per layer in this call; differentiable in training


class AMSNet(nn.Module):
    rope: Tensor  # buffer, declared for the type checker (nn.Module.__getattr__ is typed Tensor | Module)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Layer(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("rope", rope_tables(cfg.head_dim, cfg.rope_base), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        d = self.cfg.d_model
        nn.init.normal_(self.embed.weight, std=1.0)
        for layer in self.blocks():
            nn.init.normal_(layer.amsu.in_proj.weight, std=d**-0.5)
            nn.init.normal_(layer.ffn.up.weight, std=d**-0.5)
            for out in (layer.amsu.out_proj, layer.ffn.down):
                nn.init.normal_(out.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layers))
        nn.init.normal_(self.head.weight, std=0.02)

    def blocks(self) -> list[Layer]:
        """self.layers as the Layer objects they are: nn.ModuleList's items are typed nn.Module."""
        return cast(list[Layer], list(self.layers))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> StreamState:
        """Zero state; float32 always in deployment (dtype=float64 only for the float64 reference of `astroedge check`)."""
        c = self.cfg
        return StreamState(
            position=torch.zeros(batch, dtype=torch.int64, device=device),
            h=[torch.zeros(batch, c.n_heads, c.head_dim, c.head_dim, device=device, dtype=dtype) for _ in range(c.n_layers)],
            u=[torch.zeros(batch, c.d_model, device=device, dtype=dtype) for _ in range(c.n_layers)],
        )

    def forward(
        self, tokens: Tensor, state: StreamState | None = None, form: str | AMSUForm = "chunkwise", recorder: SpikeRecorder | None = None
    ) -> ModelOutput:
        """tokens int64 [B, T] continuing `state` (zero state if None) -> logits and the new state.

        `form` is the AMSU form every layer runs: a name from FORMS or a form function (the exporter
        passes its custom-node form). `recorder`, if given, sees every layer's spikes and drives.
        """
        b, t = tokens.shape
        if state is None:
            state = self.init_state(b, tokens.device, self.embed.weight.dtype)
        amsu = resolve_form(form)
        positions = state.position.unsqueeze(1) + torch.arange(t, device=tokens.device)
        cos, sin = rope_cos_sin(positions, self.rope)
        x = self.embed(tokens)
        new_h, new_u, firing = [], [], []
        for i, layer in enumerate(self.layers):
            x, h, u, rates = layer(x, cos, sin, state.h[i], state.u[i], amsu, recorder)
            new_h.append(h)
            new_u.append(u)
            firing.append(rates)
        logits = self.head(self.norm(x))
        return ModelOutput(logits, StreamState(state.position + t, new_h, new_u), torch.stack(firing))
