"""TensorRT side: the TensorRT-family package (backend.py), engine building (engine_build.py), the plan's
sidecar (sidecar.py), the trtexec / polygraphy command lines (recipes.py) and per-JetPack targets (jetpack.py).
Running an engine is a runtime: vim_deploy.runtimes.tensorrt."""
