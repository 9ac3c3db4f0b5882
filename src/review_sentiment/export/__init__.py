"""The export stage: a trained model to a verified, self-describing ONNX folder (optionally optimized and quantized).

int8 is the CPU serving path (ONNX Runtime runs integer kernels on CPU only); fp16 is the GPU serving
path; fp32 runs anywhere and is what the checks compare against. Needs the [export] extra.
"""
