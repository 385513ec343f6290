"""The local Triton Inference Server on the CPU, its model repository and weights."""
