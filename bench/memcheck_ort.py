"""Plugin-graph sessions on onnxruntime-gpu's CUDA provider with libvim_ort_ops.so, for compute-sanitizer:
vim_tiny fp16 (unfused, fused, fused with the conv + add-norm ops, and the --ort-optimized graph: padded tokens)
at batch 1 and 3, and a long single scan (L = 6085, chunked: the workspace comes from ORT's allocator).

    compute-sanitizer --tool memcheck --error-exitcode 9 python3 bench/memcheck_ort.py [ort-optimized]

With ``ort-optimized``: only that graph (batch 1 and 3) and the 1248 px one; ``--no-1248`` leaves the
1248 px session out (under memcheck it takes minutes).
"""

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from vim_deploy.export import ExportConfig, export_onnx  # noqa: E402
from vim_deploy.export.forms import PRESETS, GraphForm  # noqa: E402
from vim_deploy.ort import create_session  # noqa: E402

rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as tmp:
    graphs = {"plain": PRESETS["plain"], "fused": PRESETS["fused"],
              "fused+convop": GraphForm(fuse_bidirectional=True, conv_impl="op", norm_impl="op"),
              "ort-optimized": PRESETS["ort-optimized"]}
    names = ["ort-optimized"] if "ort-optimized" in sys.argv[1:] else list(graphs)
    for name in names:
        path = os.path.join(tmp, f"{name}.onnx")
        export_onnx(ExportConfig(model="vim_tiny", output=path, precision="fp16", form=graphs[name]))
        sess = create_session(path, "cuda")
        for b in (1, 3):
            y = sess.run(None, {"input": rng.standard_normal((b, 3, 224, 224), dtype=np.float32)})[0]
            assert np.isfinite(y).all(), (name, b)
            print(f"{name} batch={b}: ok", flush=True)
    if "--no-1248" in sys.argv[1:]:
        sys.exit(0)
    path = os.path.join(tmp, "g.onnx")
    export_onnx(ExportConfig(model="vim_tiny", output=path, precision="fp16", img_size=1248,
                             form=PRESETS["ort-optimized"]))
    y = create_session(path, "cuda").run(None, {"input": rng.standard_normal((1, 3, 1248, 1248), dtype=np.float32)})[0]
    assert np.isfinite(y).all()
    print("1248px batch 1 (L = 6085, chunked scan): ok")
