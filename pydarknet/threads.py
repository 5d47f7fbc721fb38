"""One thread count for Numba's kernels and BLAS's GEMM together, so they never oversubscribe."""

from __future__ import annotations

_limiter = None


def set_num_threads(n: int) -> int:
    """Use n threads in both Numba (prange kernels) and BLAS (the GEMM); returns the count set."""
    global _limiter
    import numba
    from threadpoolctl import threadpool_limits

    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    _limiter = threadpool_limits(limits=n, user_api="blas")  # kept alive: the limit holds
    return n
