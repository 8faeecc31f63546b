"""Run statistics for `astroedge run --stats`: latency, throughput, memory.

Memory is read without psutil (a device may lack it): the process's peak resident set from
/proc/self/status (VmHWM), and on a Jetson, where CPU and GPU share the same RAM, the board's used
RAM from one line of `tegrastats`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_TEGRA_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")


def proc_status_kib(field_name: str, status: Path = Path("/proc/self/status")) -> int | None:
    """A `kB` field of /proc/self/status (VmHWM = peak RSS, VmRSS = current RSS), or None off Linux."""
    try:
        text = status.read_text()
    except OSError:
        return None
    m = re.search(rf"^{field_name}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def parse_tegrastats(line: str) -> tuple[int, int] | None:
    """(used MiB, total MiB) from a tegrastats line such as 'RAM 2345/7620MB (lfb 4x4MB) ...'."""
    m = _TEGRA_RAM.search(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


def tegrastats_ram(timeout: float = 3.0) -> tuple[int, int] | None:
    """Board RAM in use on a Jetson (CPU + GPU share it), read from the first line tegrastats prints."""
    exe = shutil.which("tegrastats")
    if exe is None:
        return None
    try:
        proc = subprocess.Popen([exe, "--interval", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            parsed = parse_tegrastats(line)
            if parsed:
                return parsed
        return None
    finally:
        proc.kill()
        proc.wait()


@dataclass
class RunStats:
    """Timestamps of one generation: call start, then one per yielded token."""

    start: float = field(default_factory=time.perf_counter)
    prompt_tokens: int = 0
    token_times: list[float] = field(default_factory=list)

    def mark(self) -> None:
        self.token_times.append(time.perf_counter())

    @property
    def ttft_s(self) -> float | None:
        return self.token_times[0] - self.start if self.token_times else None

    def intervals_s(self) -> np.ndarray:
        return np.diff(np.asarray(self.token_times))

    def summary(self, state_bytes: int, device: str) -> dict[str, float | int | str | None]:
        gaps = self.intervals_s()
        hwm = proc_status_kib("VmHWM")
        decode_time = float(gaps.sum()) if gaps.size else 0.0
        out: dict[str, float | int | str | None] = {
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": len(self.token_times),
            "time_to_first_token_ms": None if self.ttft_s is None else 1e3 * self.ttft_s,
            "latency_p50_ms": float(np.percentile(gaps, 50)) * 1e3 if gaps.size else None,
            "latency_p99_ms": float(np.percentile(gaps, 99)) * 1e3 if gaps.size else None,
            "tokens_per_s": gaps.size / decode_time if decode_time > 0 else None,
            "peak_rss_mib": None if hwm is None else hwm / 1024,
            "state_bytes_per_stream": state_bytes,
        }
        if device == "jetson":
            ram = tegrastats_ram()
            out["jetson_ram_used_mib"] = None if ram is None else ram[0]
        return out
