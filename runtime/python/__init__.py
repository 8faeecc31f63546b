"""astroedge.runtime: run an astroedge package without torch (device side).

    from astroedge.runtime import Engine
    engine = Engine("model.aepkg", device="cpu")
    stream = engine.create_stream()
    for token, text in stream.generate("ROMEO:", max_new_tokens=100):
        print(text, end="", flush=True)

See docs/runtime.md for the API, the threading rules and the state file format.
"""

from astroedge.runtime.engine import Engine, Stream
from astroedge.runtime.package import Package, StateSpec, load_package

__all__ = ["Engine", "Package", "StateSpec", "Stream", "load_package"]
