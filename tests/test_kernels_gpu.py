"""The CUDA AMSU kernel (amsu_cuda_forward, via build/plugins/libamsu_kernels_cuda_test.so and ctypes)
against the float64 reference on CPU: odd widths and head counts, decode and long prefill, B > 1,
non-zero initial state, fp32 and fp16 inputs, separate and aliased state buffers.

Needs an NVIDIA GPU and torch with CUDA; plugins/scripts/gpu_check.sh builds the library and runs this.
"""

from __future__ import annotations

import numpy as np
import pytest

from astroedge.bench.amsu_case import EPS, THRESHOLD, AmsuCase, random_inputs, reference
from astroedge.bench.amsu_ctypes import BUFFER_NAMES, KERNEL_LIBRARY, AmsuKernels

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
    pytest.mark.skipif(not KERNEL_LIBRARY.is_file(), reason=f"{KERNEL_LIBRARY.name} not built (plugins/scripts/gpu_check.sh builds it)"),
]

STATE_RTOL = 1e-5
DRIVE_TOL = 1e-5

CASES = [
    (AmsuCase(batch=3, seq=1, dim=200, heads=5), False),
    (AmsuCase(batch=3, seq=1, dim=40, heads=5), True),
    (AmsuCase(batch=3, seq=7, dim=200, heads=5, dtype="float16"), False),
    (AmsuCase(batch=3, seq=1000, dim=40, heads=5), True),
    (AmsuCase(batch=3, seq=1000, dim=200, heads=5, dtype="float16"), True),
    (AmsuCase(batch=2, seq=64, dim=256, heads=4), False),
    (AmsuCase(batch=2, seq=33, dim=96, heads=3, dtype="float16"), False),  # head width 32
    (AmsuCase(batch=2, seq=33, dim=256, heads=2), True),  # head width 128: the widest register tile
    (AmsuCase(batch=2, seq=20, dim=160, heads=1), True),  # head width 160: state in shared memory, > 48 KiB opt-in
    (AmsuCase(batch=1, seq=100, dim=128, heads=2), True),  # chunkwise prefill, last chunk partial
    (AmsuCase(batch=1, seq=512, dim=256, heads=4, dtype="float16"), False),  # chunkwise prefill, the sample's shape
    (AmsuCase(batch=40, seq=70, dim=32, heads=4), False),  # 160 (stream, head) pairs: sequential kernel
]


def run_cuda(
    case: AmsuCase, feeds: dict[str, np.ndarray], alias: bool, workspace: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One call; with workspace=True the caller provides the scratch, as TensorRT does."""
    kernels = AmsuKernels()
    dev = {k: torch.from_numpy(v).cuda() for k, v in feeds.items()}
    s = torch.empty(dev["x"].shape, dtype=dev["x"].dtype, device="cuda")
    h_out = dev["h_in"] if alias else torch.empty_like(dev["h_in"])
    u_out = dev["u_in"] if alias else torch.empty_like(dev["u_in"])
    pointers = {k: t.data_ptr() for k, t in dev.items()} | {"s": s.data_ptr(), "h_out": h_out.data_ptr(), "u_out": u_out.data_ptr()}
    stream = torch.cuda.current_stream().cuda_stream
    shape = (case.batch, case.seq, case.dim, case.heads)
    scratch = torch.empty(kernels.workspace_bytes(shape), dtype=torch.uint8, device="cuda") if workspace else None
    ws = (scratch.data_ptr(), scratch.numel()) if scratch is not None else None
    kernels.cuda_forward(shape, THRESHOLD, EPS, case.dtype, pointers, stream, ws)
    torch.cuda.synchronize()
    return s.cpu().numpy(), h_out.cpu().numpy(), u_out.cpu().numpy()


def max_rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))


@pytest.mark.parametrize(
    ("case", "alias"), CASES, ids=lambda v: v.describe().replace(" ", "-") if isinstance(v, AmsuCase) else f"alias={v}"
)
def test_cuda_matches_reference(case: AmsuCase, alias: bool) -> None:
    feeds = random_inputs(case, seed=case.seq + case.dim)
    ref = reference(feeds, case.heads)
    s, h, u = run_cuda(case, feeds, alias)
    assert s.dtype == np.dtype(case.dtype)
    assert set(np.unique(s).tolist()) <= {0.0, 1.0}
    assert max_rel(h, ref.h) < STATE_RTOL
    assert max_rel(u, ref.u) < STATE_RTOL
    flips = s.astype(np.float64) != ref.s
    assert np.all(np.abs(ref.drive[flips]) < DRIVE_TOL), f"{flips.sum()} flips, |drive| up to {np.abs(ref.drive[flips]).max()}"


def test_caller_workspace_gives_the_same_result() -> None:
    """The chunkwise prefill with TensorRT-style caller scratch == with its own stream-ordered scratch."""
    case = AmsuCase(batch=2, seq=300, dim=256, heads=4)
    feeds = random_inputs(case, seed=5)
    own, given = run_cuda(case, feeds, False), run_cuda(case, feeds, False, workspace=True)
    for a, b in zip(own, given, strict=True):
        np.testing.assert_array_equal(a, b)


def test_workspace_size_is_monotone_and_zero_where_unused() -> None:
    kernels = AmsuKernels()
    assert kernels.workspace_bytes((4, 1, 256, 4)) == 0  # decode
    assert kernels.workspace_bytes((1, 63, 256, 4)) == 0  # short prompt: sequential kernel
    assert kernels.workspace_bytes((1, 256, 256, 2)) == 0  # head width 128: sequential kernel
    sizes = [kernels.workspace_bytes((b, s, 256, 4)) for b, s in ((1, 64), (1, 512), (2, 512), (64, 512))]
    assert 0 < sizes[0] < sizes[1] < sizes[2] < sizes[3]


def test_cuda_rejects_bad_shape() -> None:
    """D = 10 is not divisible by NH = 3: an error code, checked before any pointer is touched."""
    kernels = AmsuKernels()
    with pytest.raises(RuntimeError, match="invalid argument"):
        kernels.cuda_forward((1, 1, 10, 3), THRESHOLD, EPS, "float32", dict.fromkeys(BUFFER_NAMES, 0))
