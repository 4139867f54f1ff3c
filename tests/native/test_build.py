"""The CUDA core compiles with nvcc (CMake, as `vim-deploy plugin build` runs it) and its C ABI
answers on a machine without a GPU: sizes, chunking and argument validation need no device."""

import ctypes
import shutil

import pytest

from vim_deploy.native.build import KERNELS_LIB, build_native

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("cmake") is None,
                                reason="nvcc and cmake are needed to compile the kernel library")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("native")
    built = build_native(d, cuda_archs="90-real", werror=True, echo=lambda m: None)
    assert built[KERNELS_LIB] is not None
    lib = ctypes.CDLL(str(built[KERNELS_LIB]))
    lib.vim_selective_scan_workspace_size.restype = ctypes.c_size_t
    lib.vim_last_error.restype = ctypes.c_char_p
    return lib


def test_abi_version(lib):
    assert lib.vim_kernels_abi_version() == 5


def test_chunking_and_workspace(lib):
    # explicit chunk count: workspace = dirs * batch * dim * chunks * (dstate + 1) floats, 256-byte aligned
    ws = lib.vim_selective_scan_workspace_size(1, 2, 192, 1000, 16, 2, 8, 0)
    assert ws == -(-(2 * 2 * 192 * 8 * 17 * 4) // 256) * 256
    assert lib.vim_selective_scan_workspace_size(1, 2, 192, 1000, 16, 1, 1, 0) == 0
    assert lib.vim_selective_scan_num_chunks(1, 1, 192, 100, 16, 1, 500, 0) == 100  # never more chunks than tokens
    assert lib.vim_selective_scan_lanes(1, 1, 192, 100, 16, 1, 0, 2) == 2  # asked
    assert lib.vim_selective_scan_lanes(1, 1, 192, 100, 64, 1, 0, 2) == 4  # dstate 64 needs 4 lanes anyway
    assert lib.vim_selective_scan_lanes(1, 1, 192, 100, 16, 1, 0, 8) == 8  # 2 states a thread
    assert lib.vim_selective_scan_lanes(1, 1, 192, 100, 16, 1, 0, 16) == 8  # no layout of 1 state a thread
    assert lib.vim_selective_scan_lanes(1, 1, 192, 100, 16, 1, 0, 3) == 2  # rounded down to a layout
    assert lib.vim_selective_scan_lanes(1, 1, 192, 100, 64, 1, 0, 16) == 4  # splitting is for dstate <= 16


@pytest.mark.parametrize("batch,dim,seqlen,lanes", [
    (128, 768, 197, 1),   # plenty of channels an SM: one lane each
    (8, 1536, 197, 4),    # 64..255 channels an SM: 4 lanes
    (8, 768, 197, 8),     # 40..63 channels an SM, short sequence: 8 lanes of 2 states, one pass
    (16, 384, 197, 8),
    (8, 384, 197, 4),     # fewer: 4 split lanes (2 were slower on the H200, kernel v15)
    (1, 192, 197, 4),
    (8, 768, 577, 2),     # 8..63 channels an SM at L >= 512: 2 lanes of 8 states, chunked
    (8, 384, 6085, 2),
    (1, 1536, 6085, 2),
    (8, 1536, 1025, 4),   # 64..255 channels an SM at any length: 4 lanes
    (1, 384, 6085, 4),    # below 8 channels an SM: 4 lanes
])
def test_lanes_rule(lib, batch, dim, seqlen, lanes):
    # Without a GPU to ask, the library assumes 108 SMs (channels an SM = batch * dim / 108).
    assert lib.vim_selective_scan_lanes(1, batch, dim, seqlen, 16, 2, 0, 0) == lanes



def test_eight_lanes_scan_in_one_pass(lib):
    # The 8-lane layout is chosen for one pass over the tokens (with chunks it was 1.5x slower on the H200).
    assert lib.vim_selective_scan_lanes(1, 8, 768, 197, 16, 2, 0, 0) == 8
    assert lib.vim_selective_scan_num_chunks(1, 8, 768, 197, 16, 2, 0, 0) == 1
    assert lib.vim_selective_scan_num_chunks(1, 1, 768, 197, 16, 2, 0, 8) == 1  # forced lanes, chunks chosen
    assert lib.vim_selective_scan_num_chunks(1, 1, 768, 197, 16, 2, 3, 8) == 3  # forced chunks are kept
    assert lib.vim_selective_scan_workspace_size(1, 8, 768, 197, 16, 2, 0, 0) == 0


@pytest.mark.parametrize("batch,dim,seqlen", [(1, 384, 6085), (1, 768, 6085), (8, 384, 197), (1, 768, 197),
                                              (1, 192, 197), (4, 192, 2117)])
def test_chunks_fill_at_most_one_wave_of_resident_blocks(lib, batch, dim, seqlen):
    # Each chunk costs a second pass over its tokens, and a grid past one wave of resident blocks runs
    # a second, nearly empty wave. Without a GPU to ask, the library assumes 108 SMs and the launch
    # bounds' blocks: 6 for 16 states a thread (1 lane), 10 for 8 or 4 (2 or 4 lanes).
    lanes = lib.vim_selective_scan_lanes(1, batch, dim, seqlen, 16, 2, 0, 0)
    chunks = lib.vim_selective_scan_num_chunks(1, batch, dim, seqlen, 16, 2, 0, 0)
    slots = 108 * (6 if lanes == 1 else 10)
    blocks_per_chunk = batch * -(-dim * lanes // 64)
    min_len = 16 if lanes == 4 else 32  # a tile; two when the channel has fewer lanes
    assert 1 <= chunks <= max(1, -(-seqlen // min_len))
    assert chunks == 1 or chunks * blocks_per_chunk <= slots
    if chunks > 1:
        # As many chunks as fill the slots (capped by the minimum length and 64), then each chunk ends on
        # a whole 16-token tile: the length rounds up, so the count can only drop.
        fill = min(slots // blocks_per_chunk, -(-seqlen // 16) if lanes == 4 else seqlen // 32, 64)
        whole_tiles = -(-(-(-seqlen // fill)) // 16) * 16
        assert chunks == -(-seqlen // whole_tiles) <= fill


@pytest.mark.parametrize("batch,dim,seqlen", [(8, 384, 1025), (8, 384, 4097), (8, 384, 6085), (8, 768, 577),
                                              (8, 768, 6085), (1, 1536, 6085), (2, 768, 2117)])
def test_two_lane_chunks_at_long_sequences(lib, batch, dim, seqlen):
    # 2 lanes of 8 states at L >= 512: chunks enough for 6 blocks an SM (the one-lane layout's occupancy;
    # 108 SMs without a GPU to ask), at most 512 tokens each, at least 32, at most 64 chunks; whole tiles.
    assert lib.vim_selective_scan_lanes(1, batch, dim, seqlen, 16, 2, 0, 0) == 2
    chunks = lib.vim_selective_scan_num_chunks(1, batch, dim, seqlen, 16, 2, 0, 0)
    want = min(max(108 * 6 * 64 // (batch * dim * 2), 1, -(-seqlen // 512)), seqlen // 32, 64)
    whole_tiles = -(-(-(-seqlen // want)) // 16) * 16
    assert chunks == -(-seqlen // whole_tiles)
    assert -(-seqlen // chunks) <= 512 + 15  # no chunk past 512 tokens but for the tile rounding
    ws = lib.vim_selective_scan_workspace_size(1, batch, dim, seqlen, 16, 2, 0, 0)
    assert ws == -(-(2 * batch * dim * chunks * 17 * 4) // 256) * 256


def test_bad_arguments_are_rejected_without_touching_the_gpu(lib):
    null2 = (ctypes.c_void_p * 2)()
    rev = (ctypes.c_int * 2)()

    def fwd(dtype=1, dstate=16, kernel=0):  # null pointer arrays, fake out: only argument checks can run
        return lib.vim_selective_scan_fwd(dtype, 2, 192, 197, dstate, 1, 1, null2, null2, null2, null2, null2, null2,
                                          null2, null2, rev, None, ctypes.c_float(1.0), ctypes.c_void_p(1), 0, 0,
                                          kernel, 0, 0, None, ctypes.c_size_t(0), None)

    rc = fwd(dstate=300)
    assert rc == -1 and b"dstate" in lib.vim_last_error()
    rc = fwd(dtype=7)
    assert rc == -1 and b"dtype" in lib.vim_last_error()
    rc = fwd()
    assert rc == -1 and b"must not be null" in lib.vim_last_error()
    rc = fwd(kernel=2)
    assert rc == -1 and b"kernel must be 0" in lib.vim_last_error()


def test_bad_strides_are_rejected(lib):
    """Batch and row strides are checked before anything reaches the GPU (pointers here are fake)."""
    fake = (ctypes.c_void_p * 2)(1, 1)
    rev = (ctypes.c_int * 2)()

    def error(batch_strides, row_stride, out_batch_stride):
        strides = None if batch_strides is None else (ctypes.c_longlong * 10)(*batch_strides)
        rc = lib.vim_selective_scan_fwd(1, 2, 192, 197, 16, 1, 1, fake, fake, fake, fake, fake, fake, fake, fake,
                                        rev, strides, ctypes.c_float(1.0), ctypes.c_void_p(1), 0, 0, 0, row_stride,
                                        out_batch_stride, None, ctypes.c_size_t(0), None)
        assert rc == -1
        return lib.vim_last_error()

    assert b"batch stride" in error((100, 0, 0, 0, 0), 0, 0)  # u's batch stride < dim * seqlen
    assert b"rowStride" in error(None, 100, 0)
    # channel-major strides pass the check (batch * stride <= rowStride, stride >= seqlen); a batch stride too
    # small for either layout, and an out batch stride that overlaps, do not
    assert b"batch stride of B or C" in error((200, 200, 200, 100, 200), 400, 200)
    assert b"batch stride of out" in error((200, 200, 200, 200, 200), 400, 300)


def test_fast_path_kernels_validate_arguments(lib):
    rc = lib.vim_causal_conv1d_silu(1, 2, 64, 197, 9, 0, ctypes.c_void_p(1), ctypes.c_longlong(0), ctypes.c_void_p(1),
                                    None, ctypes.c_void_p(1), None, None, None, ctypes.c_longlong(0), None)
    assert rc == -1 and b"width" in lib.vim_last_error()
    rc = lib.vim_causal_conv1d_silu(1, 2, 64, 197, 4, 0, ctypes.c_void_p(1), ctypes.c_longlong(0), None,
                                    None, ctypes.c_void_p(1), None, None, None, ctypes.c_longlong(0), None)
    assert rc == -1 and b"null" in lib.vim_last_error()
    rc = lib.vim_causal_conv1d_silu(1, 2, 64, 197, 4, 400, ctypes.c_void_p(1), ctypes.c_longlong(200),
                                    ctypes.c_void_p(1), None, ctypes.c_void_p(1), None, None, None,
                                    ctypes.c_longlong(100), None)
    assert rc == -1 and b"output batch stride" in lib.vim_last_error()
    rc = lib.vim_add_rms_norm(1, ctypes.c_longlong(10), 4096, ctypes.c_float(1e-5), ctypes.c_void_p(1), None,
                              ctypes.c_void_p(1), ctypes.c_void_p(1), ctypes.c_void_p(1), None)
    assert rc == -1 and b"cols" in lib.vim_last_error()


def _in_child(lib, body: str) -> str:
    """Run `body` (with `l` = the library) in a child process: a crash fails the test, not pytest."""
    import subprocess
    import sys

    code = ("import ctypes; l = ctypes.CDLL(%r); l.vim_selective_scan_workspace_size.restype = ctypes.c_size_t;"
            "l.vim_last_error.restype = ctypes.c_char_p\n" % lib._name) + body
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"crashed with status {r.returncode}: {r.stderr[-500:]}"
    return r.stdout


def test_empty_sizes_do_not_crash_the_chunk_chooser(lib):
    # batch 0 (an empty TensorRT / ORT tensor) divided by zero in the chunk chooser (SIGFPE)
    out = _in_child(lib, "print(l.vim_selective_scan_num_chunks(1, 0, 192, 197, 16, 2, 0, 0),"
                         " l.vim_selective_scan_num_chunks(1, 4, 192, 0, 16, 2, 0, 0),"
                         " l.vim_selective_scan_workspace_size(1, 0, 192, 6085, 16, 2, 0, 0))")
    assert out.split() == ["1", "1", "0"]


def test_null_pointer_arrays_are_rejected(lib):
    body = """
one = (ctypes.c_void_p * 1)(ctypes.c_void_p(256)); rev = (ctypes.c_int * 1)()
for missing in range(9):
    arrays = [one] * 8 + [rev]
    arrays[missing] = None
    rc = l.vim_selective_scan_fwd(1, 1, 8, 16, 4, 1, 1, *arrays, None, ctypes.c_float(1.0), ctypes.c_void_p(256),
                                  0, 0, 0, 0, 0, None, ctypes.c_size_t(0), None)
    print(rc, b"must not be null" in l.vim_last_error())
"""
    assert _in_child(lib, body).split() == ["-1", "True"] * 9


def test_missing_native_sources_is_one_clear_error(monkeypatch, tmp_path):
    """A non-editable install has no plugins/ folder: say so instead of failing inside CMake."""
    from vim_deploy.errors import VimDeployError
    from vim_deploy.native import paths as native_paths
    from vim_deploy.native import build as native_build

    monkeypatch.setattr(native_paths, "sources_dir", lambda: tmp_path / "no-plugins")
    with pytest.raises(VimDeployError, match="native sources are not in this installation") as e:
        native_build.build_native(tmp_path / "b", echo=lambda m: None)
    assert "VIM_DEPLOY_ORT_OPS_LIB" in e.value.one_line()
