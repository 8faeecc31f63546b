"""Bad-input scenarios for the custom-op library, run in a child process (shared by the op tests).

Why a child process: a custom op that crashes on bad input (segfault, abort) must fail the test with
its stderr, not take pytest down with it. Each op's test supplies only its scenarios: a script body
that builds models, calls ``attempt(model, feeds)`` (which returns the ONNX Runtime error as text, or
"no error") and binds the outcomes to ``results``; ``run_bad_inputs`` returns that dict.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from os import PathLike

_PRELUDE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import onnxruntime as ort

    def attempt(model, feeds):
        opts = ort.SessionOptions()
        opts.register_custom_ops_library(sys.argv[1])
        try:
            ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"]).run(None, feeds)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "no error"
    """
)


def run_bad_inputs(body: str, library: str | PathLike[str] | None) -> dict[str, str]:
    """Runs ``body`` (dedented) after the prelude with the library path as argv[1]; returns its ``results``.

    ``library`` may be None only for the type checker's sake: callers skip when the library is not built.
    """
    assert library is not None, "the custom-op library is not built (make plugins)"
    script = _PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(results))\n"
    proc = subprocess.run([sys.executable, "-c", script, str(library)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"crashed (rc {proc.returncode}): {proc.stderr[-2000:]}"
    results: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results
