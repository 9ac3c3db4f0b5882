"""The batch stage: `score-csv` over files of any size (streaming, resumable), locally or on Ray.

Torch-free: it needs the core, ONNX Runtime, pandas and pyarrow only.
"""
