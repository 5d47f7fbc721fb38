"""Threads and caches: one thread count for pydarknet's pool, Numba and BLAS; Numba's cache dir.

A convolution is cut into steps (a range of output rows, or of filters) that the pool's threads
take one at a time: im2col, a single-threaded BLAS GEMM and bias+activation run back to back on
the same core while the step's data is in its cache. BLAS runs on one thread per worker during
a forward pass, so n workers mean n busy cores, never n*n; a core taken by another process slows
one worker while the others take its steps (OpenBLAS's own threads split a GEMM statically and
wait for the slowest, which made 2-thread runs 10x slower on a loaded machine).
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

_threads: int | None = None
_pool = None
_blas = None  # threadpoolctl controllers of the loaded BLAS libraries
_numba_setup: threading.Thread | None = None
_libraries_released = False  # release_library_pages has run
_remembered: set[tuple[str, str]] = set()  # (model, part)s whose kernels were saved for the preload
_local = threading.local()  # .pool: serial()'s pool of one on this thread


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
    if "numba" not in sys.modules:
        _release_llvm_start_up()


def _release_llvm_start_up() -> None:
    """Load LLVM (llvmlite's library, which Numba's import loads: its start-up touches ~36 MB
    of the library's code pages once) and release its clean pages before Numba is imported,
    so that they are not resident beside the rest of the imports (NumPy's, Numba's, OpenCV's):
    the imports' peak RSS falls from 122 to 82 MB, and that of a one-image detect whose
    forward needs less than the imports did with it (yolov4-tiny)."""
    try:
        import llvmlite.binding as llvm

        llvm.get_process_triple()  # the library loads on its first call
    except Exception:  # no usable llvmlite: Numba's import reports it
        return
    release_clean_pages("libllvmlite")


def cache_is_cold() -> bool:
    """True when Numba's cache holds no kernel of this kernels.py, so the first run compiles.
    Numba's own freshness check decides: its cache keys on the source's hash, so a reinstall
    of the same kernels.py stays warm (its mtime changes; judged by that, every run after a
    reinstall announced a compile that never came)."""
    try:
        return not any(d._cache._cache_file._load_index() for d in _kernels().values())
    except Exception:  # another Numba's internals: judge by the files' times
        source = Path(__file__).with_name("kernels.py")
        stamp = source.stat().st_mtime
        try:
            return not any(p.stat().st_mtime >= stamp for p in cache_dir().rglob("kernels.*.nbi"))
        except OSError:
            return True


def on_first_compile(announce) -> None:
    """Call announce() once, when Numba first compiles a kernel in this process: a kernel the
    cache lacks although it is not cold (a first multi-image run after a one-image one
    compiles the Winograd and JIT-job kernels, 8-10 s). Loading from the cache is not
    compiling (Numba's "numba:compile" event)."""
    from numba.core import event

    first = threading.Lock()

    class Announcer(event.Listener):
        def on_start(self, ev) -> None:
            if first.acquire(blocking=False):
                announce()

        def on_end(self, ev) -> None:
            pass

    event.register("numba:compile", Announcer())


def start_numba_setup(model: str | None = None) -> None:
    """On a background thread, once per process: load from the cache the kernel overloads
    `model`'s forward pass used last time (preload_kernels, without Numba's registry refresh
    where _can_skip_refresh allows, else after it), then release LLVM's code pages from RSS
    (~100 MB, clean pages of libllvmlite), which nothing touches once the kernels are loaded.
    With nothing to preload it still runs the refresh that a first kernel call would.

    Each kernel's first call would load its overload (~5 ms each, 10-20 per model). Started
    before the weights are read and the image is decoded, the two overlap where the main thread
    releases the GIL (file reads, NumPy, OpenCV). Network.forward waits for it, so the
    activations and transformed weights are allocated after LLVM's pages are released. LLVM's
    pages are also dropped before the thread starts (those Numba's import touched, with every
    other library's clean pages) and after the runtime's set-up (preload_kernels), so that
    fewer of them sit beside the weights as they are read (a cold yolov4-tiny detect peaked
    at 185 MB without these drops).
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
        for refresh in (False, True):  # without the context's refresh where allowed, else with
            if refresh:
                with global_compiler_lock:
                    start_runtime(cpu_target.target_context)  # else the refresh compiles it
                    cpu_target.target_context.refresh()  # what Dispatcher.compile runs first
            try:  # a best effort on Numba internals: any failure leaves loading to first calls
                if model is not None and preload_kernels(model, refresh=refresh):
                    release_clean_pages("libllvmlite")
                    return
            except Exception:
                pass

    # LLVM's pages touched by Numba's import, and those every other library's import touched
    # once (NumPy, OpenCV, ...; ~20 MB, the few in use fault back): dropped here, on the
    # caller, which then only reads the weights and the image while the set-up thread is the
    # longer path. yolov3-tiny's one-image detect: 138 -> 129 MB peak RSS
    release_clean_pages("")
    # not a daemon: an early exit waits for it rather than stopping it inside an import
    _numba_setup = threading.Thread(target=setup, name="pydarknet-numba-setup")
    _numba_setup.start()


def wait_numba_setup() -> None:
    """Block until start_numba_setup's thread, if any, is done. While it runs, the caller
    finds the BLAS libraries that the forward's blas_single sets (threadpoolctl's scan of the
    loaded libraries, ~4.5 ms) instead of after it: a one-image detect waits here ~25 ms.
    (yolov3-tiny's, 12 runs each, in turn: 0.445 -> 0.435 s. Releasing the libraries' pages
    here too, but LLVM's, which the thread uses, was no faster and peaked 1 MB higher.)"""
    setup = _numba_setup
    if setup is not None and setup is not threading.current_thread():
        if setup.is_alive():
            _blas_libraries()
        setup.join()


def _kernels() -> dict:
    """kernels.py's public dispatchers by name: the ones called from Python. A private helper
    is compiled into each kernel that calls it and comes with it from the cache, so loading it
    on its own (~5 ms each) would only add start-up time."""
    from numba.core.dispatcher import Dispatcher

    from . import kernels

    return {k: v for k, v in vars(kernels).items()
            if isinstance(v, Dispatcher) and not k.startswith("_")}  # fmt: skip


def _preload_path(model: str) -> Path:
    """The preload list of `model` for this kernels.py: two installs with different kernels
    (two virtual environments, say) sharing the cache would otherwise each find the other's
    signatures stale, rewrite the list and never preload (+0.1 s and +15 MB a cold start)."""
    key = f"{model}\0{_kernels_stamp()}"
    return cache_dir() / "preload" / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".pkl")


@functools.cache
def _kernels_stamp() -> str:
    """A hash of kernels.py's text (Numba's cache keys on it too)."""
    return hashlib.sha1(Path(__file__).with_name("kernels.py").read_bytes()).hexdigest()


def _read_preload(model: str) -> list[tuple[str, tuple]]:
    try:
        with open(_preload_path(model), "rb") as f:
            saved = pickle.load(f)  # written by remember_kernels, in the user's own cache dir
        return list(saved["kernels"]) if saved.get("model") == model else []
    except Exception:  # absent, unreadable, or from another Numba: learn it again
        return []


# Numba versions whose cached kernels were checked to load with only the runtime (NRT) set up,
# without the target context's refresh (tests/test_startup.py runs the whole check).
_NO_REFRESH_NUMBA = ((0, 59), (0, 68))


def _can_skip_refresh(dispatchers: list) -> bool:
    """Whether these kernels can be loaded from the cache without the context's refresh.

    refresh() imports and installs every lowering registry Numba has (~0.1-0.16 s, a third of
    a cold `pydarknet detect`), which only compiling needs. Linking a cached kernel needs the C
    helpers and math functions (installed with the target context) and the NRT runtime, set up
    here. Parallel kernels also need the threading layer, so they keep the ordinary path, as
    does any Numba outside the versions checked: a symbol missing at link time would abort."""
    return _numba_checked() and not any(d.targetoptions.get("parallel") for d in dispatchers)


def _numba_checked() -> bool:
    """Whether this Numba is one of the versions _NO_REFRESH_NUMBA lists."""
    import numba

    version = tuple(int(v) for v in numba.__version__.split(".")[:2] if v.isdigit())
    lo, hi = _NO_REFRESH_NUMBA
    return lo <= version <= hi


def preload_kernels(model: str, refresh: bool = True) -> bool:
    """Load every overload remember_kernels() saved for `model` from Numba's cache; True if all
    of them were there. Never compiles: an overload missing from the cache (kernels.py changed)
    is compiled by its first call as usual, and only if the forward pass still needs it; a kernel
    no longer in kernels.py, or a signature the cache does not hold, is dropped from the saved
    list (else every later run would miss it and keep LLVM's pages: ~70 MB of RSS after an
    upgrade), and the forward saves again what it needed.
    refresh=False loads them without the target context's refresh where _can_skip_refresh
    allows it, and returns False (loading nothing) where it does not."""
    from numba.core.compiler_lock import global_compiler_lock

    saved = _read_preload(model)
    if not saved:
        return False
    dispatchers = _kernels()
    if not refresh:
        used = [dispatchers[name] for name, _ in saved if name in dispatchers]
        # a C kernel is a cfunc, whose loading runs the refresh: the ordinary path then
        if not _can_skip_refresh(used) or any(n.startswith(C_PREFIX) for n, _ in saved):
            return False
        from numba.core.registry import cpu_target

        with global_compiler_lock:
            if start_runtime(cpu_target.target_context):  # what the refresh would set up first
                # LLVM compiled (~50 MB of its code pages) or linked the runtime while the main
                # thread reads the weights: drop those pages before the kernels' loading adds
                # its own. Even after a link: the first one touches ~10 MB more than loading the
                # kernels does (cold yolov4-tiny detect peak 121 vs 133 MB, same time).
                release_clean_pages("libllvmlite")
    from . import kernels

    loaded, stale = 0, []
    for name, sig in saved:
        if name.startswith(C_PREFIX):  # made by the last run of this kernels.py: in the cache
            if name[len(C_PREFIX) :] not in kernels.C_KERNELS:
                stale.append((name, sig))
                continue
            try:
                kernels.c_address(name[len(C_PREFIX) :])
                loaded += 1
            except Exception:
                pass
            continue
        disp = dispatchers.get(name)
        if disp is None:
            stale.append((name, sig))
            continue
        with global_compiler_lock:  # Dispatcher.compile's cache branch, without its compile
            if tuple(sig) in disp.overloads:
                loaded += 1
                continue
            try:
                if refresh:
                    cres = disp._cache.load_overload(sig, disp.targetctx)
                else:  # load_overload less its targetctx.refresh()
                    cres = disp._cache._load_overload(sig, disp.targetctx)
            except Exception:  # a best effort: the first call loads or compiles it instead
                continue
            if cres is None:
                stale.append((name, sig))
                continue
            if not cres.objectmode:
                disp.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            disp.add_overload(cres)
            loaded += 1
    if stale:
        _write_preload(model, [entry for entry in saved if entry not in stale])
    return loaded == len(saved) - len(stale)


def _runtime_path(codegen) -> tuple[Path, tuple]:
    """Where the runtime's object code for this Numba, llvmlite and CPU is saved, and its key."""
    import llvmlite
    import numba

    key = (numba.__version__, llvmlite.__version__, codegen.magic_tuple())
    name = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
    return cache_dir() / "runtime" / (name + ".pkl"), key


def _prepare_runtime() -> None:
    """What rtsys.initialize does before it compiles: its statistics if asked for, and its C
    helpers registered for the linker."""
    from llvmlite import binding as ll
    from numba.core import config
    from numba.core.runtime import _nrt_python

    if config.NRT_STATS:
        _nrt_python.memsys_enable_stats()
    for name, address in _nrt_python.c_helpers.items():
        ll.add_symbol(name if name.startswith("_") else "NRT_" + name, address)


def start_runtime(ctx) -> bool:
    """rtsys.initialize(ctx), which the target context's refresh and so every compile runs
    first, but linked from the object code saved by an earlier process where this Numba is one
    of those checked. False if the runtime was set up already. The caller holds the compiler
    lock."""
    from numba.core.runtime import rtsys

    if rtsys._init:
        return False
    if not _numba_checked():
        rtsys.initialize(ctx)
    elif not _load_runtime(ctx):
        _compile_runtime(ctx)
    return True


def _load_runtime(ctx) -> bool:
    """Set up Numba's runtime (NRT) as rtsys.initialize(ctx) does, but link its few functions
    from the object code _compile_runtime saved instead of compiling them: ~5 ms instead of
    ~25 ms, and LLVM's optimizer and code generator stay out of RSS (they touched ~25 MB of
    its code pages more, beside the weights being read). False, with nothing set up, when
    nothing is saved for this Numba, llvmlite and CPU. The caller holds the compiler lock."""
    from numba.core.runtime import rtsys

    path, key = _runtime_path(ctx.codegen())
    try:
        with open(path, "rb") as f:
            saved = pickle.load(f)  # written by _compile_runtime, in the user's own cache dir
        if saved.get("key") != key:
            return False
        _prepare_runtime()
        library = ctx.codegen().unserialize_library(saved["library"])
    except Exception:  # absent, unreadable or another version's: compile it
        return False
    rtsys._library, rtsys._init = library, True
    return True


def _compile_runtime(ctx) -> None:
    """rtsys.initialize(ctx), keeping the compiled object code for the next process's
    _load_runtime. The caller holds the compiler lock."""
    from numba.core.runtime import nrtdynmod, rtsys

    try:
        module, library = nrtdynmod.create_nrt_module(ctx)
        library.enable_object_caching()
        _prepare_runtime()
        library.add_ir_module(module)
        library.finalize()
        state = library.serialize_using_object_code()
    except Exception:  # a best effort on Numba internals: the ordinary way
        rtsys.initialize(ctx)
        return
    rtsys._library, rtsys._init = library, True
    path, key = _runtime_path(ctx.codegen())
    _write_atomically(path, {"key": key, "library": state})


@contextmanager
def remembering_kernels(model: str, part: str = "forward"):
    """Around a forward pass (or another part of a detection, such as its NMS): the first one
    of `model` in this process saves the overloads it loaded or compiled, for the next
    process's preload."""
    if (model, part) in _remembered:
        yield
        return
    before = kernel_overloads()
    yield
    _remembered.add((model, part))
    remember_kernels(model, before)


def kernel_overloads() -> dict[str, set]:
    """The signatures each kernel has loaded or compiled so far in this process, and as
    "c:NAME" with the signature () each C kernel made (kernels.c_address, for JIT jobs)."""
    from . import kernels

    made = {C_PREFIX + name: {()} for name in list(kernels._C_MADE)}
    return {name: set(d.overloads) for name, d in _kernels().items()} | made


C_PREFIX = "c:"


def remember_kernels(model: str, before: dict[str, set]) -> None:
    """Save, for the next process's preload_kernels(model), the overloads added since `before`
    (a kernel_overloads() taken before a forward pass) together with those saved already."""
    saved = _read_preload(model)
    known = set(saved)
    new = [(name, sig) for name, sigs in kernel_overloads().items()
           for sig in sigs - before.get(name, set()) if (name, sig) not in known]  # fmt: skip
    if new:
        _write_preload(model, saved + new)


def _write_preload(model: str, kernels: list[tuple[str, tuple]]) -> None:
    _write_atomically(_preload_path(model), {"model": model, "kernels": kernels})


def _write_atomically(path: Path, record: dict) -> None:
    """Pickle `record` to `path`: readers see the old file or the new one, never half of one.
    A read-only cache saves nothing (every run then does what it would have loaded)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(record, f)
        os.replace(tmp, path)
    except (OSError, pickle.PicklingError):
        pass


def release_library_pages() -> None:
    """Once per process, before the first forward allocates its buffers: release_clean_pages
    of every mapped file. Most clean pages of the shared libraries were touched once, as they
    were imported and initialised (OpenCV's 8.5 MB fall to 0.9, OpenSSL's 3.5 to 1.2); those
    the forward pass and the drawing use fault back in from the page cache (~7 MB of 30 for
    yolov3-tiny's one-image detect, a few ms). Its peak RSS falls by ~20 MB."""
    global _libraries_released
    if not _libraries_released:
        _libraries_released = True
        release_clean_pages("")


def release_clean_pages(name: str) -> int:
    """Drop from this process's RSS the pages of the shared libraries whose file name starts
    with `name` in mappings that are read-only and hold no private (anonymous) pages: code and
    constants, identical to the file. They stay in the page cache and fault back in if touched,
    so nothing changes but RSS; a mapping with modified pages is never touched. Linux only, a
    best effort that does nothing elsewhere. Returns the bytes released."""
    try:
        with open("/proc/self/smaps") as f:
            smaps = f.read()
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for start, end, perms, rss, anonymous in _file_mappings(smaps, name):
        if "w" in perms or anonymous != 0 or not rss:
            continue
        if madvise(start, end - start, 4) == 0:  # MADV_DONTNEED
            released += rss
    return released


# A mapping's header line in /proc/<pid>/smaps: "start-end perms offset dev inode   path"
_SMAPS_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+[ \t]*(.*)$", re.M)
_SMAPS_KB = {key: re.compile(rf"^{key}:\s+(\d+) kB", re.M) for key in ("Rss", "Anonymous")}


def _file_mappings(smaps: str, name: str):
    """(start, end, perms, Rss bytes, Anonymous bytes) of the mappings in /proc/<pid>/smaps
    text whose file's name starts with `name` ("": every file; never [heap], [vdso] and the
    like, which have no path, nor a device under /dev). Only those mappings' lines are parsed
    (the text has ~12k lines with Numba and OpenCV loaded: ~4 ms to split them all in Python)."""
    heads = list(_SMAPS_HEADER.finditer(smaps))
    for k, head in enumerate(heads):
        path = head.group(4)
        if not (path.startswith("/") and os.path.basename(path).startswith(name)):
            continue
        if path.startswith("/dev/"):  # a device's memory, not a file's pages
            continue
        block = smaps[head.end() : heads[k + 1].start() if k + 1 < len(heads) else len(smaps)]
        rss, anonymous = (_SMAPS_KB[key].search(block) for key in ("Rss", "Anonymous"))
        yield (int(head.group(1), 16), int(head.group(2), 16), head.group(3),
               int(rss.group(1)) * 1024 if rss else None,
               int(anonymous.group(1)) * 1024 if anonymous else None)  # fmt: skip


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


class _Job:
    """One Pool.run: steps claimed one at a time, and a count of claimed steps still running."""

    __slots__ = ("step", "count", "next", "running", "lock", "idle", "error")

    def __init__(self, step, count: int):
        self.step, self.count, self.next, self.running = step, count, 0, 0
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.error: BaseException | None = None

    def work(self, slot: int) -> None:
        step, lock = self.step, self.lock
        while True:
            with lock:  # claim a step and count it as running in one move
                i = self.next
                if i >= self.count:
                    return
                self.next, self.running = i + 1, self.running + 1
            try:
                step(i, slot)
            except BaseException as e:
                with lock:
                    self.error = self.error or e
                    self.next = self.count  # no new claims: the job has failed
            finally:
                with lock:
                    self.running -= 1
                    if self.running == 0:
                        self.idle.notify_all()

    def wait(self) -> None:
        """Until no claimed step is running. A worker that wakes later finds nothing to claim."""
        with self.lock:
            self.next = max(self.next, self.count)
            while self.running:
                self.idle.wait()
        if self.error is not None:
            raise self.error


class Pool:
    """size threads (the caller and size-1 workers) that share the steps of one job.

    The caller works from the first step on and waits only for steps a worker has claimed and
    not finished, never for a worker to wake up: waking a sleeping thread takes 50-100 us on a
    VM, longer than many steps, and a forward pass runs dozens of jobs. A worker that wakes
    after the caller took every step finds nothing to do.

    Between jobs, once it has run a JIT job, a worker spins (released from the GIL, up to SPINS
    pauses, ~0.5 ms) before it sleeps, so a job posted soon after the last one finds it awake.
    run() jobs are Python steps; run_jit() jobs are one nogil kernel per thread (kernels.py,
    "pool jobs"), which a worker enters only once its caller is inside the same kernel: neither
    then waits for the GIL. (Two threads lost 3.3 ms of yolov4-tiny's 30 ms forward and 20 ms of
    yolov4-csp's 341 against a perfect split, much of it to such waits and late workers.)
    """

    SPINS = 20000

    def __init__(self, size: int):
        import queue

        self.size = size
        self._queues = [queue.SimpleQueue() for _ in range(size - 1)]
        if size > 1:
            import numpy as np

            from . import kernels

            # per worker: [0] jobs posted, [1] the caller count a JIT job waits for (0: none);
            # one 64-byte line each. _entered[0]: how often a caller entered a JIT job.
            self._flags = np.zeros((size, kernels.JOB_FIELDS), np.int64)
            self._entered = np.zeros(kernels.JOB_FIELDS, np.int64)
        for slot, q in enumerate(self._queues, 1):
            name = f"pydarknet-{slot}"
            threading.Thread(target=self._serve, args=(q, slot), name=name, daemon=True).start()

    def _serve(self, q, slot: int) -> None:
        import numpy as np

        from . import kernels

        import numba

        flags, entered = self._flags[slot].ctypes.data, self._entered.ctypes.data
        seen, prev, prev_done, spins = 0, np.zeros(kernels.JOB_FIELDS, np.int64), 0, self.SPINS
        # Spinning starts with the first JIT job (its atomics have no Python form): a process
        # that runs none, as a one-image detect, never loads worker_wait (see ACT_SCRATCH).
        spin = False
        while True:
            if spin:  # prev: kept alive here until its steps are counted
                kernels.worker_wait(flags, entered, seen, prev.ctypes.data, prev_done, spins)
            prev_done = 0
            job = q.get()
            seen += 1
            if job is None:
                return
            if type(job) is _Job:
                job.work(slot)
            else:  # a JIT job: (kernel, state, arguments)
                kernel, prev, args = job
                prev_done = kernel(prev, slot, *args)  # counted in worker_wait, outside the GIL
                spin = True

    def _post(self, job, workers: int, target: int) -> None:
        for slot, q in enumerate(self._queues[:workers], 1):
            q.put(job)
            flags = self._flags[slot]
            flags[1] = target
            flags[0] += 1

    def run(self, step, count: int) -> None:
        """step(i, slot) for every i in range(count); slot (< size) names the thread's scratch.
        The first exception a step raises is raised here, after every running step ended."""
        if count <= 1 or not self._queues:
            for i in range(count):
                step(i, 0)
            return
        job = _Job(step, count)
        self._post(job, count - 1, 0)
        try:
            job.work(0)
        finally:
            job.wait()

    def run_jit(self, kernel, steps: int, *args) -> None:
        """kernel(state, slot, *args) on every thread (up to `steps`), a nogil kernel that
        claims steps from the job state until none is left and returns how many it ran
        (kernels.winograd_rows_job and the like). Returns when all `steps` have run. Needs
        the JIT (the job state's atomics have no Python form)."""
        import time

        import numpy as np

        from . import kernels

        state = np.zeros(kernels.JOB_FIELDS, np.int64)
        workers = min(steps, self.size) - 1
        if workers <= 0:
            kernel(state, 0, *args)
            return
        state[kernels.JOB_ENTERED] = self._entered.ctypes.data
        self._post((kernel, state, args), workers, int(self._entered[0]) + 1)
        done = kernel(state, 0, *args)
        while not kernels.job_finish_wait(state, done, steps, self.SPINS):
            done = 0
            time.sleep(0.0001)  # a worker that holds a step was descheduled

    def close(self) -> None:
        for q in self._queues:
            q.put(None)
        if self._queues:
            self._flags[:, 0] += 1
        self._queues = []


_SERIAL = Pool(1)


def pool() -> Pool:
    """The pool layers split their work over: the shared one, or inside serial() a pool of one
    (the calling thread)."""
    global _pool
    mine = getattr(_local, "pool", None)
    if mine is not None:
        return mine
    if _pool is None:
        _pool = Pool(num_threads())
    return _pool


@contextmanager
def serial():
    """Inside, on this thread, pool() runs every step in turn on the caller: for work that is
    itself one of several run in parallel (an image of a batch)."""
    before = getattr(_local, "pool", None)
    _local.pool = _SERIAL
    try:
        yield
    finally:
        _local.pool = before


@contextmanager
def blas_single():
    """BLAS on one thread inside (the pool is the parallelism), then as it was."""
    libraries = _blas_libraries()
    before = [lib.get_num_threads() for lib in libraries]
    for lib in libraries:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libraries, before):
            lib.set_num_threads(n)


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (found once)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas
