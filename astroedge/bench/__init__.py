"""Benchmarks of astroedge's pieces. ``amsu``: the AMSU op alone on CPU (PyTorch, ONNX fallback,
native library); ``amsu_cuda``: the CUDA kernel on a GPU against the memory-bandwidth roofline."""
