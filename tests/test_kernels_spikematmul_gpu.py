"""The CUDA SpikeMatMul kernel (spikematmul_cuda_forward, via build/plugins/libspikematmul_kernels_cuda_test.so and
ctypes) against the float64 reference of the op contract: the gather kernel (up to 4 rows: batch-1 decode) and
the dense kernel (prefill), every weight format, fp32 and fp16 spikes, firing rates 0 to 1, odd K and N,
more fired inputs than one shared-memory pass holds, non-0/1 values.

Needs an NVIDIA GPU and torch with CUDA; plugins/scripts/gpu_check.sh builds the library and runs this.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from astroedge.contract.spikematmul import FORMATS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
from spikematmul_ctypes import CUDA_TEST_LIBRARY, SpikeMatMulKernels  # noqa: E402
from test_kernels_spikematmul import RATES, check_close, make_case  # noqa: E402

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
    pytest.mark.skipif(
        not CUDA_TEST_LIBRARY.is_file(), reason=f"{CUDA_TEST_LIBRARY.name} not built (plugins/scripts/gpu_check.sh builds it)"
    ),
]


def run_cuda(case: dict, with_bias: bool = True) -> np.ndarray:
    kernels = SpikeMatMulKernels(CUDA_TEST_LIBRARY)
    dev = {k: torch.from_numpy(np.ascontiguousarray(case[k])).cuda() for k in ("spikes", "weight", "scale", "bias") if case[k] is not None}
    if not with_bias:
        dev.pop("bias")
    b, t, k = case["spikes"].shape
    y = torch.empty((b, t, case["n"]), dtype=dev["spikes"].dtype, device="cuda")
    pointers = {name: tensor.data_ptr() for name, tensor in dev.items()} | {"y": y.data_ptr()}
    kernels.cuda_forward(
        (b, t, k, case["n"], case["bs"]), str(case["spikes"].dtype), case["fmt"], pointers, torch.cuda.current_stream().cuda_stream
    )
    torch.cuda.synchronize()
    return y.cpu().numpy()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rate", RATES)
def test_cuda_gather_and_dense_match_reference(fmt: str, rate: float) -> None:
    rng = np.random.default_rng(int(rate * 100) + len(fmt))
    for b, t, k, n in [(1, 1, 4099, 769), (2, 2, 301, 131), (3, 70, 257, 131)]:  # gather (> 2048 fired: two passes), gather B*T=4, dense
        case = make_case(rng, b, t, k, n, rate, fmt, bs=16)
        check_close(run_cuda(case), case)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cuda_fp16_general_values_no_bias(fmt: str) -> None:
    rng = np.random.default_rng(5)
    for b, t in [(1, 1), (5, 13)]:
        case = make_case(rng, b, t, 333, 97, 0.3, fmt, act="float16", bs=6, general=True)
        case["bias"] = np.zeros(97, np.float32)
        check_close(run_cuda(case, with_bias=False), case)
