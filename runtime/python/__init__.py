"""astroedge.runtime: run an astroedge package without torch (device side), over libastroedge.

    from astroedge.runtime import Engine
    engine = Engine("model.aepkg", device="cpu")
    stream = engine.create_stream()
    for token, text in stream.generate("ROMEO:", max_new_tokens=100):
        print(text, end="", flush=True)

A thin ctypes binding: streams, batching, state, state files, the generation loop and package checks are the C
library's (runtime/include/astroedge.h). See docs/runtime.md for the API and the threading rules.
"""

from astroedge.runtime.engine import Engine, Stream
from astroedge.runtime.package import Package, StateSpec, load_package

__all__ = ["Engine", "Package", "StateSpec", "Stream", "load_package"]
