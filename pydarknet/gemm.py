"""The packed-A GEMM's Python side (its kernels are kernels.gemm_packed and kernels.gemm_tiles):
packing the weights once, the scratch it needs, and numpy's matmul in its place when Numba's
JIT is disabled (tests), since its tile intrinsics have no Python form."""

from __future__ import annotations

import numba
import numpy as np

from . import kernels

MR = kernels.GEMM_MR
_JIT = not numba.config.DISABLE_JIT


def pack(a: np.ndarray) -> np.ndarray:
    """(..., M, K) -> (..., ceil(M / 6), K, 6) float32: each block of 6 rows stored column by
    column (k-th column's 6 values together), the last block padded with zero rows. One
    allocation besides `a`: a Winograd layer's U is tens of MB."""
    *lead, m, k = a.shape
    blocks = -(-m // MR)
    out = np.empty((*lead, blocks, k, MR), np.float32)
    for b in range(blocks):
        rows = min(MR, m - b * MR)
        out[..., b, :, :rows] = np.swapaxes(a[..., b * MR : b * MR + rows, :], -1, -2)
        out[..., b, :, rows:] = 0.0
    return out


def unpack(ap: np.ndarray, m: int) -> np.ndarray:
    """pack's inverse: (..., blocks, K, 6) -> (..., m, K)."""
    *lead, blocks, k, _ = ap.shape
    return np.swapaxes(ap, -1, -2).reshape(*lead, blocks * MR, k)[..., :m, :]


def scratch_floats(k: int) -> int:
    """Floats of the scratch gemm() needs for products k deep."""
    return 8 * k + MR * kernels.GEMM_NR


def gemm(ap: np.ndarray, b: np.ndarray, c: np.ndarray, scratch: np.ndarray) -> None:
    """c = A[:M] @ b for A packed by pack() into ap (ceil(M / 6), K, 6), b (K, N) and c (M, N)
    float32 with unit column stride (rows any distance apart); scratch float32 of at least
    scratch_floats(K). Releases the GIL."""
    if _JIT:
        kernels.gemm_packed(ap, b, c, scratch)
    else:
        np.matmul(unpack(ap, c.shape[0]), b, out=c)


def gemm_tiles(up: np.ndarray, v: np.ndarray, m: np.ndarray, scratch: np.ndarray) -> None:
    """A Winograd layer's products: m[i] = U_i @ v[i] for each element i of a tile, up the U_i
    packed (elements, ceil(n / 6), c, 6), v (elements, c, tiles), m (elements, n, tiles)."""
    if _JIT:
        kernels.gemm_tiles(up, v, m, scratch)
    else:
        np.matmul(unpack(up, m.shape[1]), v, out=m)
