"""TensorRT side: native library build/discovery and (TensorRT-family) engine building."""
