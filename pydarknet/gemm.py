"""The Winograd products' GEMM: C = A @ B with A (the transformed weights U) fixed.

Two ways, chosen once per process (PACKED):
- the packed kernel (kernels.gemm_packed, kernels.gemm_tiles): U packed once in the order its
  inner loop reads it. BLAS packs A again on every call, which on the 16-49 tile columns of
  small maps is much of the work: (512 x 512) @ (512 x 16) ~40 GFLOP/s per core through
  OpenBLAS, ~70 so, on AVX2. Its tile is 6 rows by two vectors: 8 floats wide with AVX2 and
  FMA, 16 with AVX-512 (kernels.GEMM_VEC); measured on both, it is used on x86 CPUs with AVX2
  and FMA. On an AVX-512 CPU (AMD Zen 5, 2 threads) it took yolov4-tiny's forward from 22.5
  (BLAS) to 12.3 ms, yolov3-tiny's 23.9 -> 13.5, yolov4-csp's 261 -> 158.
- numpy's matmul (BLAS) on U as is, everywhere else, and when Numba's JIT is disabled (tests):
  the kernel's tile intrinsics have no Python form.
PYDARKNET_GEMM=packed or =blas overrides the choice (for trying either on a new CPU).
"""

from __future__ import annotations

import os
import warnings

import numba
import numpy as np

from . import kernels

MR = kernels.GEMM_MR
_JIT = not numba.config.DISABLE_JIT


def _packed_by_default() -> bool:
    """x86 with AVX2 and FMA, compiled for this CPU."""
    if numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return False  # Numba told to compile for another CPU: nothing known about it
    has = kernels.host_cpu_features()  # none listed: the measured-everywhere way
    return bool(has.get("avx2") and has.get("fma"))


def _choose() -> tuple[bool, str]:
    """(PACKED, why), decided once."""
    asked = os.environ.get("PYDARKNET_GEMM", "").strip().lower()
    if asked not in ("", "packed", "blas"):
        warnings.warn(f"PYDARKNET_GEMM={asked!r} is neither 'packed' nor 'blas'; ignored",
                      stacklevel=2)  # fmt: skip
        asked = ""
    if not _JIT:
        return False, "the JIT is off"
    if asked:
        return asked == "packed", "PYDARKNET_GEMM"
    return _packed_by_default(), "this CPU"


PACKED, _WHY = _choose()


def describe() -> str:
    """Which way the Winograd products go, and why, for `pydarknet bench`."""
    if PACKED:
        return f"pydarknet's packed GEMM ({_WHY}; PYDARKNET_GEMM=blas for BLAS)"
    return f"BLAS ({_WHY}; PYDARKNET_GEMM=packed for pydarknet's packed GEMM)"


def pack(a: np.ndarray) -> np.ndarray:
    """(..., M, K) -> (..., ceil(M / 6), K, 6) float32: each block of 6 rows stored column by
    column (the k-th column's 6 values together), the last block padded with zero rows."""
    *lead, m, k = a.shape
    out = np.empty((*lead, -(-m // MR), k, MR), np.float32)
    for f0 in range(0, m, MR):
        store_filters(out, f0, a[..., f0 : f0 + MR, :])
    return out


def unpack(ap: np.ndarray, m: int) -> np.ndarray:
    """pack's inverse: (..., blocks, K, 6) -> (..., m, K)."""
    *lead, blocks, k, _ = ap.shape
    return np.swapaxes(ap, -1, -2).reshape(*lead, blocks * MR, k)[..., :m, :]


def empty_weights(a: int, n: int, c: int) -> np.ndarray:
    """Uninitialised U for a (elements) x n (filters) x c (channels) in PACKED's layout:
    packed (a, ceil(n / 6), c, 6) or plain (a, n, c). gemm_tiles takes either."""
    if PACKED:
        return np.empty((a, -(-n // MR), c, MR), np.float32)
    return np.empty((a, n, c), np.float32)


def store_filters(u: np.ndarray, f0: int, w: np.ndarray) -> None:
    """Write filters f0.. of U (either layout) from w (..., rows, c); packed (u has one more
    axis than w), f0 starts a block of 6 and rows <= 6 (the block's missing rows become 0)."""
    if u.ndim == w.ndim:
        u[..., f0 : f0 + w.shape[-2], :] = w
        return
    rows = w.shape[-2]
    u[..., f0 // MR, :, :rows] = np.swapaxes(w, -1, -2)
    u[..., f0 // MR, :, rows:] = 0.0


def filters(u: np.ndarray, f0: int, f1: int) -> np.ndarray:
    """U (either layout) of filters f0..f1, f0 a multiple of 6."""
    return u[:, f0 // MR : -(-f1 // MR)] if u.ndim == 4 else u[:, f0:f1]


def scratch_floats(k: int) -> int:
    """Floats of the scratch gemm() needs for products k deep."""
    return kernels.GEMM_VEC * k + MR * kernels.GEMM_NR


def gemm(ap: np.ndarray, b: np.ndarray, c: np.ndarray, scratch: np.ndarray) -> None:
    """c = A[:M] @ b through the packed kernel (numpy's matmul without the JIT), A packed by
    pack() into ap (ceil(M / 6), K, 6), b (K, N) and c (M, N) float32 with unit column stride
    (rows any distance apart); scratch float32 of at least scratch_floats(K). Releases the
    GIL."""
    if _JIT:
        kernels.gemm_packed(ap, b, c, scratch)
    else:
        np.matmul(unpack(ap, c.shape[0])[:, : b.shape[0]], b, out=c)  # A's first rows: b's depth


def gemm_tiles(u: np.ndarray, v: np.ndarray, m: np.ndarray, scratch: np.ndarray,
               depths: np.ndarray | None = None) -> None:
    """A Winograd layer's products: m[i] = U_i @ v[i] for each element i of a tile, u from
    empty_weights (or filters()) in either layout, v (elements, c, tiles), m (elements, n,
    tiles); with depths, element i's product only depths[i] deep (U_i's first
    rows, whose others are 0: layers._phase_rows). Releases the GIL."""
    if depths is not None:
        for i, d in enumerate(depths.tolist()):
            if u.ndim == 4:
                gemm(u[i], v[i, :d], m[i], scratch)
            else:
                np.matmul(u[i, :, :d], v[i, :d], out=m[i])
    elif u.ndim == 4:
        kernels.gemm_tiles(u, v, m, scratch)
    else:
        np.matmul(u, v, out=m)
