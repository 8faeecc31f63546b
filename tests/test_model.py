"""The reference model: its three AMSU forms compute one function, gradients are right, RoPE is exact."""

from __future__ import annotations

import math

import pytest
import torch

from astroedge.config import ModelConfig, preset
from astroedge.errors import UserError
from astroedge.model import (
    FORMS,
    AMSNet,
    AMSUParams,
    amsu_chunkwise_form,
    amsu_parallel_form,
    amsu_step_form,
    rope_cos_sin,
    rope_inv_freq,
    rope_tables,
)


def random_amsu_case(b: int, t: int, d: int, nh: int, seed: int = 0) -> tuple[list[torch.Tensor], AMSUParams]:
    """Random float64 inputs with a NON-ZERO initial state and a threshold near the drive's centre."""
    g = torch.Generator().manual_seed(seed)
    hd = d // nh
    x, q, k, v = (torch.randn(b, t, d, generator=g, dtype=torch.float64) for _ in range(4))
    k = k / math.sqrt(hd)
    h = torch.randn(b, nh, hd, hd, generator=g, dtype=torch.float64)
    u = torch.rand(b, d, generator=g, dtype=torch.float64)
    w_o = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    gamma = torch.tensor(ModelConfig(d_model=d, n_heads=nh).gammas(), dtype=torch.float64)
    beta = torch.rand(d, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return [x, q, k, v, h, u], AMSUParams(w_o, gamma, beta, 0.5, 1e-5, 1.0)


@pytest.mark.parametrize("t", [1, 7, 64, 257])
@pytest.mark.parametrize("d,nh", [(200, 5), (40, 5), (16, 1)])
def test_step_parallel_chunkwise_agree(t: int, d: int, nh: int) -> None:
    inputs, p = random_amsu_case(2, t, d, nh, seed=t + d)
    ref = amsu_step_form(*inputs, p)
    for name, out in (("parallel", amsu_parallel_form(*inputs, p)), ("chunkwise", amsu_chunkwise_form(*inputs, p, chunk=24))):
        torch.testing.assert_close(out.h, ref.h, rtol=1e-10, atol=1e-10, msg=f"{name}: h")
        torch.testing.assert_close(out.u, ref.u, rtol=1e-10, atol=1e-10, msg=f"{name}: u")
        torch.testing.assert_close(out.drive, ref.drive, rtol=1e-9, atol=1e-9, msg=f"{name}: drive")
        # spikes are compared separately: a flip is allowed only where the drive sits within rounding of 0
        flips = out.s != ref.s
        assert int(flips.sum()) == 0 or bool((ref.drive[flips].abs() < 1e-9).all()), f"{name}: {int(flips.sum())} spike flips"
        assert set(out.s.unique().tolist()) <= {0.0, 1.0}


def test_state_continuation_is_exact() -> None:
    """Two calls that carry the state == one call over the concatenation."""
    inputs, p = random_amsu_case(3, 50, 40, 5, seed=1)
    x, q, k, v, h, u = inputs
    whole = amsu_parallel_form(*inputs, p)
    first = amsu_parallel_form(x[:, :20], q[:, :20], k[:, :20], v[:, :20], h, u, p)
    second = amsu_step_form(x[:, 20:], q[:, 20:], k[:, 20:], v[:, 20:], first.h, first.u, p)
    torch.testing.assert_close(second.h, whole.h, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.cat([first.drive, second.drive], 1), whole.drive, rtol=1e-9, atol=1e-9)


def test_parallel_gradients_match_finite_differences() -> None:
    """The continuous outputs (state, drive) of the parallel form have exact gradients."""
    inputs, p = random_amsu_case(1, 5, 8, 2, seed=3)
    x, q, k, v, h, u = (a.requires_grad_() for a in inputs)
    w_o = p.w_o.clone().requires_grad_()

    def f(x, q, k, v, h, u, w_o):  # noqa: ANN001, ANN202
        out = amsu_parallel_form(x, q, k, v, h, u, p._replace(w_o=w_o))
        return out.h, out.u, out.drive

    assert torch.autograd.gradcheck(f, (x, q, k, v, h, u, w_o), eps=1e-6, atol=1e-6)


def test_surrogate_gradient_flows_through_spikes() -> None:
    model = AMSNet(preset("tiny"))
    out = model(torch.randint(0, 256, (2, 9)))
    out.logits.sum().backward()
    grad = model.layers[0].amsu.in_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("position", [0, 12_345, 10**7, 4 * 10**9])
def test_rope_angles_exact_for_long_streams(position: int) -> None:
    """RoPE's cos/sin at huge positions match float64 to ~1e-6 (a plain float32 product is off by ~0.1)."""
    hd = 64
    pos = torch.tensor([[position, position + 1]])
    cos, sin = rope_cos_sin(pos, rope_tables(hd, 10000.0))
    angle = torch.remainder(pos.double().unsqueeze(-1) * rope_inv_freq(hd, 10000.0), 2 * math.pi)
    assert (cos.double() - angle.cos()).abs().max() < 2e-6
    assert (sin.double() - angle.sin()).abs().max() < 2e-6


def test_model_forms_agree_and_continue_state() -> None:
    """Whole model: prefill of n tokens == n single steps, from a non-zero state at a large position."""
    torch.manual_seed(0)
    model = AMSNet(preset("tiny")).double().eval()
    tokens = torch.randint(0, 256, (2, 19))
    state = model.init_state(2)
    state.h = [torch.randn_like(h, dtype=torch.float64) for h in state.h]
    state.u = [torch.rand_like(u, dtype=torch.float64) for u in state.u]
    state.position += 3_000_000_000
    with torch.no_grad():
        prefill = model(tokens, state, form="chunkwise")
        s = state
        logits = []
        for i in range(tokens.shape[1]):
            out = model(tokens[:, i : i + 1], s, form="step")
            s = out.state
            logits.append(out.logits)
    torch.testing.assert_close(torch.cat(logits, 1), prefill.logits, rtol=1e-9, atol=1e-9)
    for a, b in zip(s.h, prefill.state.h, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert int(s.position[0]) == 3_000_000_019
    assert prefill.firing.shape == (2, 2) and bool(((prefill.firing >= 0) & (prefill.firing <= 1)).all())


def test_form_is_an_argument_and_the_recorder_sees_every_spike() -> None:
    """The form is passed (by name or as the function); a recorder sees AMSU and FFN spikes with their drives."""
    torch.manual_seed(0)
    model = AMSNet(preset("tiny")).eval()
    tokens = torch.randint(0, 256, (2, 9))
    seen: list[tuple[int, str, torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        by_name = model(tokens, form="step", recorder=lambda i, kind, s, drive: seen.append((i, kind, s, drive)))
        by_function = model(tokens, form=FORMS["step"])
    torch.testing.assert_close(by_name.logits, by_function.logits, rtol=0, atol=0)
    cfg = model.cfg
    assert [(i, kind) for i, kind, _, _ in seen] == [(0, "amsu"), (0, "ffn"), (1, "amsu"), (1, "ffn")]
    for i, kind, s, drive in seen:
        assert s.shape == (2, 9, cfg.d_model if kind == "amsu" else cfg.ffn_hidden)
        assert torch.equal(s, (drive > 0).to(s.dtype))
        assert float(by_name.firing[i, 0 if kind == "amsu" else 1]) == pytest.approx(float(s.mean()))
    with pytest.raises(ValueError, match="unknown AMSU form 'onnx'"):
        model(tokens, form="onnx")


def test_parameter_count() -> None:
    cfg = preset("sample")
    d, f, v = cfg.d_model, cfg.ffn_hidden, cfg.vocab_size
    per_layer = 4 * d * d + d * d + d + 2 * d * f + 2 * d
    assert AMSNet(cfg).num_parameters() == 2 * v * d + cfg.n_layers * per_layer + d


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("d_model", 42, "divisible"),
        ("n_heads", 0, "positive"),
        ("tau_n", -1.0, "tau_n"),
        ("tau_a_max", 1.0, "tau_a_max"),
        ("rope_base", 1.0, "rope_base"),
        ("threshold", float("nan"), "threshold"),
        ("ffn_mult", 0.0, "ffn_mult"),
    ],
)
def test_config_validation_names_the_field(field: str, value: object, needle: str) -> None:
    data = preset("tiny").to_dict() | {field: value}
    with pytest.raises(UserError, match=needle):
        ModelConfig.from_dict(data)


def test_config_unknown_field_and_printable_form() -> None:
    with pytest.raises(UserError, match="unknown config field 'dmodel'"):
        ModelConfig.from_dict({"dmodel": 3})
    text = preset("sample").describe()
    assert "d_model" in text and "head_dim         64" in text
