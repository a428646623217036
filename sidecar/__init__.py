"""The EdgeInfer sidecar: serves a released TCN-VAE encoder over HTTP on ONNX Runtime or HailoRT."""

__version__ = "0.1.0"
