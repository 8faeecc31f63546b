"""astroedge: deploy AM-SNet, the astrocyte-modulated spiking language model, to edge devices.

The package root imports nothing heavy: the device side (``astroedge.runtime``) must load on a
machine without torch, so torch is imported only by the host-side modules that need it
(``astroedge.model``, ``astroedge.train``, ``astroedge.export``...).
"""

__version__ = "0.1.0"
