"""Movie-review sentiment: LoRA fine-tuning, ONNX export, and serving on ONNX Runtime."""

__version__ = "0.1.0"
