"""Load libvim_ort_ops.so into whichever onnxruntime is importable and check one VimSelectiveScan node
(fp32 vs a float64 NumPy scan, fp16 output type, an out-of-range attribute refused at session creation).
Used to try the library across ONNX Runtime releases without this package or torch installed:

    pip install --no-deps --target /tmp/ort-1.16.3 onnxruntime==1.16.3    # in a venv with numpy<2, onnx
    PYTHONPATH=/tmp/ort-1.16.3 python tools/ort_versions.py build/libvim_ort_ops.so
"""
import sys, numpy as np
import onnxruntime as ort
from onnx import helper, TensorProto as TP
names=["u","delta","A","B","C","D","z","delta_bias"]
def model(dt, **attrs):
    ins=[helper.make_tensor_value_info(n, TP.FLOAT if n in ("A","D","delta_bias") else dt, None) for n in names]
    node=helper.make_node("VimSelectiveScan", names, ["y"], domain="vim_deploy", name="s0", **attrs)
    return helper.make_model(helper.make_graph([node],"g",ins,[helper.make_tensor_value_info("y",dt,None)]), ir_version=8,
        opset_imports=[helper.make_opsetid("",17), helper.make_opsetid("vim_deploy",1)]).SerializeToString()
so=ort.SessionOptions(); so.register_custom_ops_library(sys.argv[1])
rng=np.random.default_rng(0)
x={n: rng.standard_normal((2,4,9) if n in ("u","delta","z") else (4,3) if n=="A" else (2,3,9) if n in "BC" else (4,)).astype(np.float32) for n in names}
x["A"]=-np.exp(x["A"])
def ref_scan(u, delta, A, B, C, D, z, delta_bias):
    d = delta + delta_bias[:, None]; d = np.log1p(np.exp(d))
    h = np.zeros(u.shape[:2] + (A.shape[1],)); y = np.zeros(u.shape)
    for t in range(u.shape[2]):
        h = np.exp(d[:, :, t, None] * A) * h + (d[:, :, t] * u[:, :, t])[..., None] * B[:, None, :, t]
        y[:, :, t] = (h * C[:, None, :, t]).sum(-1)
    return (y + u * D[:, None]) * z / (1 + np.exp(-z))
ref=ref_scan(**{k:v.astype(np.float64) for k,v in x.items()})
y=ort.InferenceSession(model(TP.FLOAT, delta_softplus=1, reverse=0), so, providers=["CPUExecutionProvider"]).run(None,x)[0]
y16=ort.InferenceSession(model(TP.FLOAT16, delta_softplus=1, reverse=0), so, providers=["CPUExecutionProvider"]).run(None,{k:(v if k in ("A","D","delta_bias") else v.astype(np.float16)) for k,v in x.items()})[0]
err=np.linalg.norm(y-ref)/np.linalg.norm(ref)
try:
    ort.InferenceSession(model(TP.FLOAT, delta_softplus=1, reverse=3), so, providers=["CPUExecutionProvider"]); bad="NO ERROR"
except Exception as e: bad=str(e).split(":")[-1].strip()[:60]
print(ort.__version__, "fp32 rel err %.1e" % err, "fp16 out", y16.dtype, "| bad attr ->", bad)
