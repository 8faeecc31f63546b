"""astroedge: deploy AM-SNet, the astrocyte-modulated spiking language model, to edge devices.

The package root imports nothing heavy: the device side (``astroedge.runtime``) must load on a
machine without torch, so torch is imported only by the host-side modules that need it
(``astroedge.model``, ``astroedge.train``, ``astroedge.export``...).
"""

__version__ = "0.1.0"

# onnxruntime-extensions' convention: SessionOptions.register_custom_ops_library(astroedge.get_library_path()).
# astroedge.native imports only the standard library and astroedge.errors, so this stays light.
from astroedge.native import get_library_path  # noqa: E402

__all__ = ["__version__", "get_library_path"]
