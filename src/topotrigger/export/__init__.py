"""The `export` stage: saved models to ONNX, checked with onnxruntime."""
