"""gemm.gemm (packed-A tiles) against float64 matmul: every tail of rows and columns, rows of b
and c apart as in a Winograd layer's tile slices, nothing written outside c."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from pydarknet import gemm

ROOT = Path(__file__).resolve().parent.parent


def _product(m: int, k: int, n: int, seed: int, gap: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k), dtype=np.float32)
    # b and c as column slices of wider arrays: their rows lie n + gap floats apart
    wide_b = rng.standard_normal((k, n + gap), dtype=np.float32)
    wide_c = np.full((m + 2, n + gap), np.nan, np.float32)
    return a, wide_b[:, :n], wide_c, wide_c[1 : m + 1, :n]


@pytest.mark.parametrize("m", [1, 5, 6, 7, 12, 13, 64, 100])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 9, 10, 15, 16, 17, 19, 33, 49])
def test_gemm_matches_matmul(m, n):
    k = 37
    a, b, wide_c, c = _product(m, k, n, seed=m * 100 + n, gap=5)
    ap = gemm.pack(a)
    assert ap.shape == (-(-m // 6), k, 6)
    gemm.gemm(ap, b, c, np.empty(gemm.scratch_floats(k), np.float32))
    want = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(c - want) <= 1e-6 * scale + 1e-30)
    outside = np.ones(wide_c.shape, bool)
    outside[1 : m + 1, :n] = False
    assert np.isnan(wide_c[outside]).all()  # nothing written beside c


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 27, 512])
@pytest.mark.parametrize("n", [40, 41, 43])  # 1 and 3 tail columns: kernels._gemm_column
def test_gemm_depths(k, n):
    a, b, _, c = _product(20, k, n, seed=k)
    gemm.gemm(gemm.pack(a), b, c, np.empty(gemm.scratch_floats(k), np.float32))
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_gemm_sweeps_a_in_groups():
    """With a deep A, the blocks of 6 rows go over b's columns a group at a time
    (kernels._GEMM_GROUP_BYTES): 131 rows, 512 deep, are 3 groups; the last one's rows end
    in a partial block, and the columns in a tail."""
    from pydarknet import kernels

    k = 512
    assert -(-131 // 6) > 2 * (kernels._GEMM_GROUP_BYTES // (4 * 6 * k))
    a, b, wide_c, c = _product(131, k, 45, seed=5, gap=3)
    gemm.gemm(gemm.pack(a), b, c, np.empty(gemm.scratch_floats(k), np.float32))
    want = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(c - want) <= 1e-6 * scale)
    assert np.isnan(wide_c[[0, -1]]).all() and np.isnan(wide_c[:, 45:]).all()


def test_gemm_on_a_block_range_of_the_packed_rows():
    """A split by filters passes ap[f0 // 6 : ...] and c[f0:f1] (f0 a multiple of 6)."""
    a, b, _, c = _product(40, 16, 24, seed=3)
    ap = gemm.pack(a)
    scratch = np.empty(gemm.scratch_floats(16), np.float32)
    gemm.gemm(ap[2:4], b, c[12:23], scratch)
    np.testing.assert_allclose(c[12:23], a[12:23].astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


def test_pack_layout():
    a = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    ap = gemm.pack(a)
    assert ap.shape == (2, 3, 6)
    np.testing.assert_array_equal(ap[0], a[:6].T)
    np.testing.assert_array_equal(ap[1, :, 0], a[6])
    assert not ap[1, :, 1:].any()  # padded rows are zero
    stacked = gemm.pack(np.stack([a, 2 * a]))
    np.testing.assert_array_equal(stacked[1], 2 * ap)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect via libc: Linux only")
@pytest.mark.parametrize("n", [5, 16, 21])
def test_gemm_reads_nothing_past_b(n):
    """b ends where an inaccessible page begins: a tile that read past its last row or column
    would crash the process instead of passing."""
    page = mmap.PAGESIZE
    k = 9
    buf = mmap.mmap(-1, 2 * page)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert libc.mprotect(base + page, page, 0) == 0  # PROT_NONE
    try:
        b = np.frombuffer(buf, np.float32, k * n, page - 4 * k * n).reshape(k, n)
        b[:] = np.random.default_rng(n).standard_normal((k, n))
        a = np.random.default_rng(1).standard_normal((13, k)).astype(np.float32)
        c = np.empty((13, n), np.float32)
        gemm.gemm(gemm.pack(a), b, c, np.empty(gemm.scratch_floats(k), np.float32))
        np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    finally:
        del b
        libc.mprotect(base + page, page, 3)  # PROT_READ | PROT_WRITE, so the buffer can close
        buf.close()


@pytest.mark.parametrize("asked,packed", [("packed", True), ("blas", False), ("BLAS ", False)])
def test_env_chooses_the_way(asked, packed):
    """PYDARKNET_GEMM overrides the CPU-based choice (decided at import)."""
    env = {**os.environ, "PYDARKNET_GEMM": asked}
    env.pop("NUMBA_DISABLE_JIT", None)
    code = "from pydarknet import gemm; print(gemm.PACKED)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=ROOT, check=True)  # fmt: skip
    assert out.stdout.strip() == str(packed)


def test_env_with_another_value_warns_and_is_ignored():
    env = {**os.environ, "PYDARKNET_GEMM": "fast"}
    code = "from pydarknet import gemm"
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                         capture_output=True, text=True, cwd=ROOT, check=True)  # fmt: skip
    assert "PYDARKNET_GEMM='fast' is neither 'packed' nor 'blas'; ignored" in out.stderr


# What LLVM's haswell target has: AVX2 and FMA, no AVX-512.
_AVX2_FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fsgsbase,+lzcnt,+mmx,"
                  "+movbe,+pclmul,+popcnt,+rdrnd,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")


def test_vector_width_follows_the_cpu_numba_compiles_for(tmp_path):
    """The packed GEMM's vectors are 16 floats where Numba compiles for AVX-512F, else 8; told
    to compile for an AVX2 CPU (NUMBA_CPU_NAME/FEATURES, a cache of its own), the 8-float
    kernel is the one built."""
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": _AVX2_FEATURES,
           "NUMBA_CACHE_DIR": str(tmp_path), "PYDARKNET_GEMM": "packed"}  # fmt: skip
    env.pop("NUMBA_DISABLE_JIT", None)
    code = "from pydarknet import kernels; print(kernels.GEMM_VEC, kernels.GEMM_NR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=ROOT, check=True)  # fmt: skip
    assert out.stdout.split() == ["8", "16"]
    from pydarknet import kernels

    if not numba.config.CPU_FEATURES and not numba.config.CPU_NAME:
        wide = bool(kernels.host_cpu_features().get("avx512f"))
        assert kernels.GEMM_VEC == (16 if wide else 8)


# What LLVM's skylake-avx512 target adds: AVX-512 F, CD, BW, DQ and VL.
_AVX512_FEATURES = _AVX2_FEATURES + ",+avx512f,+avx512cd,+avx512bw,+avx512dq,+avx512vl"

# A forward of a model with a few-channel first layer, Winograd F(4x4) and F(2x2) layers, a
# 1x1 layer and the zoo's pools, at the host's width; then every kernel signature it used
# (threads.kernel_overloads: what the preload lists hold), pickled.
_USED_CHILD = """
import pickle, sys, numpy as np, pydarknet
from pydarknet import threads
net = pydarknet.Network(sys.argv[1])
net.save_random_weights(sys.argv[2])
net.forward(np.full((1, 3, 52, 64), 0.5, np.float32))
with open(sys.argv[3], "wb") as f:
    pickle.dump({n: list(s) for n, s in threads.kernel_overloads().items() if s}, f)
"""

# Compiles (never runs) each of those signatures at the width Numba is told to compile for.
_COMPILE_CHILD = """
import pickle, sys
from pydarknet import kernels, threads
with open(sys.argv[1], "rb") as f:
    used = pickle.load(f)
dispatchers = threads._kernels()
for name, sigs in used.items():
    if name.startswith(threads.C_PREFIX):
        kernels.c_address(name[len(threads.C_PREFIX):])
    else:
        for sig in sigs:
            dispatchers[name].compile(sig)
print(kernels.GEMM_VEC, len(used))
"""


def _compile_at_16_floats(tmp_path) -> None:
    """Where AVX-512 code cannot run: the kernels a forward uses, built with 16-float vectors
    for an AVX-512 CPU (NUMBA_CPU_NAME/FEATURES, a cache of its own) without running them,
    so that their code generation at that width is checked."""
    from .test_startup import _EVERY_KERNEL

    cfg = tmp_path / "every.cfg"
    cfg.write_text(_EVERY_KERNEL)
    used = tmp_path / "used.pkl"
    subprocess.run([sys.executable, "-c", _USED_CHILD, str(cfg), str(tmp_path / "every.weights"),
                    str(used)], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    env = {**os.environ, "NUMBA_CPU_NAME": "skylake-avx512",
           "NUMBA_CPU_FEATURES": _AVX512_FEATURES, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "PYDARKNET_GEMM": "packed"}  # fmt: skip
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, str(used)], env=env, cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    width, kernels = out.stdout.split()
    assert width == "16" and int(kernels) >= 5


def test_kernels_at_the_other_vector_width(tmp_path):
    """This file's GEMM tests, and the few-channel and Winograd layers' tests, once more with
    8-float vectors, compiled for an AVX2 CPU (the 16-float ones run in the main pass on an
    AVX-512 machine). On a CPU without AVX-512, where the main pass ran the 8-float kernels,
    the 16-float ones cannot run: the kernels a forward uses are compiled at that width
    instead (_compile_at_16_floats)."""
    from pydarknet import kernels

    if not kernels.host_cpu_features().get("avx512f"):
        _compile_at_16_floats(tmp_path)
        return
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": _AVX2_FEATURES,
           "NUMBA_CACHE_DIR": str(tmp_path), "PYDARKNET_GEMM": "packed"}  # fmt: skip
    env.pop("NUMBA_DISABLE_JIT", None)
    kernel_tests = "tests/test_kernels.py::test_"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_gemm.py", "-k", "not other_vector_width and not follows",
                          kernel_tests + "few_channel_3x3_without_im2col_matches_direct_twin",
                          kernel_tests + "winograd_products_either_way"],
                         env=env, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
