"""`astroedge quantize`: an fp32 package -> an fp16, int8 or int4 package, judged by held-out perplexity.

Host side (uses onnx and onnxruntime.quantization). The AMSU nodes are never quantised: the op
contract keeps their state, decays and read-out weight float32, so only the ordinary ops around
them (the projections, the FFN and the head) change precision. See docs/quantize.md.
"""
