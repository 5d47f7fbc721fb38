"""Threads and caches: one thread count for pydarknet's pool, Numba and BLAS; Numba's cache dir.

A convolution is cut into steps (a range of output rows, or of filters) that the pool's threads
take one at a time: im2col, a single-threaded BLAS GEMM and bias+activation run back to back on
the same core while the step's data is in its cache. BLAS runs on one thread per worker during
a forward pass, so n workers mean n busy cores, never n*n; a core taken by another process slows
one worker while the others take its steps (OpenBLAS's own threads split a GEMM statically and
wait for the slowest, which made 2-thread runs 10x slower on a loaded machine).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

_threads: int | None = None
_pool = None
_blas = None  # threadpoolctl controllers of the loaded BLAS libraries
_numba_setup: threading.Thread | None = None


def cache_dir() -> Path:
    """Where Numba's compiled kernels live: $NUMBA_CACHE_DIR, else $XDG_CACHE_HOME/pydarknet/numba
    (~/.cache/pydarknet/numba), outside site-packages so it survives reinstalling."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pydarknet" / "numba"


def configure() -> None:
    """Run before kernels.py is imported: the cache location, and OpenMP threads that sleep
    instead of spinning between Numba's parallel kernels (spinning threads starve the pool)."""
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK)
    except OSError:
        writable = False
    if writable and not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(path)
        if "numba" in sys.modules:  # imported before us: its config already read the environment
            sys.modules["numba"].config.CACHE_DIR = str(path)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cache_is_cold() -> bool:
    """True when no compiled kernels.py is cached yet (the first run compiles for a while)."""
    source = Path(__file__).with_name("kernels.py")
    stamp = source.stat().st_mtime
    try:
        return not any(p.stat().st_mtime >= stamp for p in cache_dir().rglob("kernels.*.nbi"))
    except OSError:
        return True


def start_numba_setup() -> None:
    """Fill Numba's typing and target registries on a background thread, once per process.

    The first kernel call does this before it can load anything from the cache: ~75 ms of
    Python, and its first-forward cost. Started before the weights are read and the image is
    decoded (file reads, NumPy and OpenCV work that release the GIL), the two overlap; a kernel
    called before it ends waits for it on Numba's compiler lock, as Numba's own threads do.
    """
    global _numba_setup
    if _numba_setup is not None:
        return
    import numba
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    if numba.config.DISABLE_JIT:
        return

    def setup():
        with global_compiler_lock:
            cpu_target.target_context.refresh()  # what Dispatcher.compile -> load_overload runs

    # not a daemon: an early exit waits for it rather than stopping it inside an import
    _numba_setup = threading.Thread(target=setup, name="pydarknet-numba-setup")
    _numba_setup.start()


def num_threads() -> int:
    """The thread count in use: set_num_threads(), else $PYDARKNET_THREADS, else all CPUs."""
    global _threads
    if _threads is None:
        env = os.environ.get("PYDARKNET_THREADS", "")
        _threads = int(env) if env.isdigit() and int(env) > 0 else _cpu_count()
    return _threads


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> int:
    """Use n threads for the pool and for Numba's parallel kernels; returns the count set."""
    global _threads, _pool
    n = max(1, int(n))
    _threads = n
    if _pool is not None and _pool.size != n:
        _pool.close()
        _pool = None
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n


class Pool:
    """size threads (the caller and size-1 workers) that share the steps of one job."""

    def __init__(self, size: int):
        from concurrent.futures import ThreadPoolExecutor

        self.size = size
        self._executor = ThreadPoolExecutor(size - 1, "pydarknet") if size > 1 else None

    def run(self, step, count: int) -> None:
        """step(i, slot) for every i in range(count); slot (< size) names the thread's scratch."""
        if count <= 1 or self._executor is None:
            for i in range(count):
                step(i, 0)
            return
        counter = itertools.count()  # next() is atomic under the GIL: each i is taken once

        def work(slot):
            while (i := next(counter)) < count:
                step(i, slot)

        futures = [self._executor.submit(work, s) for s in range(1, min(self.size, count))]
        try:
            work(0)
        finally:
            for f in futures:
                f.result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def pool() -> Pool:
    global _pool
    if _pool is None:
        _pool = Pool(num_threads())
    return _pool


@contextmanager
def blas_single():
    """BLAS on one thread inside (the pool is the parallelism), then as it was."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    before = [lib.get_num_threads() for lib in _blas]
    for lib in _blas:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(_blas, before):
            lib.set_num_threads(n)
