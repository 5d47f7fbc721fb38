"""What a cold `pydarknet detect` does before its first forward: Numba's set-up and the preload
of the kernels the last run used on a thread, LLVM's clean pages released, and
no progress bar (nor tqdm) when stderr is not a terminal, one image read without a loader."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pydarknet
from pydarknet import gemm, threads
from pydarknet.cli import _progress

from .test_errors import TINY


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _progress(3, "img") is None  # tqdm(disable=None) would be disabled here
    monkeypatch.setattr(sys, "stderr", _Terminal())
    bar = _progress(3, "img")
    assert bar is not None and not bar.disable
    bar.close()


def test_numba_setup_starts_once_and_kernels_wait_for_it(tmp_path):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    net = pydarknet.Network(cfg)
    net.save_random_weights(tmp_path / "tiny.weights")  # load_weights starts the set-up
    first = threads._numba_setup
    threads.start_numba_setup()
    assert threads._numba_setup is first
    (y,) = net.forward(np.zeros((1, 3, 64, 64), np.float32))
    assert y.shape == (1, 18, 32, 32) and np.isfinite(y).all()


def test_one_image_cold_detect_in_a_fresh_process(tmp_path):
    """The whole start-up path in a new interpreter: the set-up thread, the single-image read,
    the exit (gc.freeze at exit must not lose stdout)."""
    import cv2

    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    pydarknet.Network(cfg).save_random_weights(tmp_path / "tiny.weights")
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.zeros((40, 50, 3), np.uint8))
    proc = subprocess.run([sys.executable, "-m", "pydarknet", "detect", str(cfg), str(img),
                           "--weights", str(tmp_path / "tiny.weights"), "--json", "--out-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"filename": "' in proc.stdout and proc.stdout.rstrip().endswith("]")
    assert (tmp_path / "out" / "img.jpg").is_file()


_RUN_CHILD = """
import atexit, sys
marker = sys.argv.pop()
atexit.register(lambda: open(marker, "w").write("ran"))  # a caller's exit function
from pydarknet.cli import run
run()
"""


@pytest.mark.parametrize("missing", [False, True])
def test_the_command_exits_at_once_with_its_code_and_output(tmp_path, missing):
    """cli.run (the `pydarknet` command) skips the interpreter's teardown but not what a
    normal exit guarantees: main()'s exit code, stdout flushed (a pipe: block-buffered), the
    atexit functions run."""
    import cv2

    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    pydarknet.Network(cfg).save_random_weights(tmp_path / "tiny.weights")
    img = tmp_path / "img.png"
    if not missing:
        cv2.imwrite(str(img), np.zeros((40, 50, 3), np.uint8))
    marker = tmp_path / "atexit.txt"
    proc = subprocess.run([sys.executable, "-c", _RUN_CHILD, "detect", str(cfg), str(img),
                           "--weights", str(tmp_path / "tiny.weights"), "--json", "--no-draw",
                           str(marker)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert marker.read_text() == "ran"
    if missing:
        assert proc.returncode == 1 and "img.png: cannot read image" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.lstrip().startswith("[") and proc.stdout.rstrip().endswith("]")


_PRELOAD_CHILD = """
import sys, numpy as np, pydarknet
from pydarknet import threads
net = pydarknet.Network(sys.argv[1])
net.load_weights(sys.argv[2])  # starts the set-up, which preloads what the last run saved
threads.wait_numba_setup()
print(sorted(name for name, sigs in threads.kernel_overloads().items() if sigs))
(y,) = net.forward(np.full((1, 3, 64, 64), 0.5, np.float32))
print(float(y.sum()))
"""


def _two_processes(tmp_path, cfg_text: str, child: str,
                   winograd: bool = True) -> tuple[list[str], set[str]]:  # fmt: skip
    """Run `child` (argv: cfg, weights, output file) in two fresh processes in turn, the first
    with no preload record for the model at its cfg's size, at which `child` runs it: (each
    one's stdout, the kernels saved)."""
    cfg = tmp_path / "model.cfg"
    cfg.write_text(cfg_text)
    net = pydarknet.Network(cfg)
    net.winograd = winograd
    net.save_random_weights(tmp_path / "model.weights")
    record = threads._preload_path(net.kernel_key(net.height, net.width))
    record.unlink(missing_ok=True)
    try:
        runs = []
        for i in range(2):
            proc = subprocess.run([sys.executable, "-c", child, str(cfg),
                                   str(tmp_path / "model.weights"), str(tmp_path / f"out{i}.npz")],
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            runs.append(proc.stdout)
        return runs, {name for name, _ in threads._read_preload(net.kernel_key(net.height, net.width))}
    finally:
        record.unlink(missing_ok=True)


# the kernel that applies TINY's 1x1 layer's activation: with the packed GEMM a JIT job (whose
# C kernels the other layers' steps also call), else bias_activate
_ACTIVATING = "conv1x1_job" if gemm.PACKED else "bias_activate"
# TINY's first layer (3 channels): without im2col where the packed GEMM's kernels are in use
_FIRST = "conv3x3_job" if gemm.PACKED else "im2col_rows"


def test_kernels_a_forward_used_are_preloaded_by_the_next_process(tmp_path):
    runs, saved = _two_processes(tmp_path, TINY, _PRELOAD_CHILD)
    (first, sum1), (second, sum2) = (out.split("\n")[:2] for out in runs)
    assert first == "[]"  # nothing saved yet: each kernel loads on its first call
    assert {_FIRST, "maxpool_2x2_even", _ACTIVATING} <= saved  # its 2x2/2 pool at 64x64
    assert second == str(sorted(saved))  # loaded before the forward asked for any
    assert sum1 == sum2


_PRELOAD_DETECT_CHILD = """
import sys, numpy as np, pydarknet
from pydarknet import threads
net = pydarknet.Network(sys.argv[1])
net.load_weights(sys.argv[2])
threads.wait_numba_setup()
print(sorted(name for name, sigs in threads.kernel_overloads().items() if sigs))
image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
print(len(net.detect(image, thresh=0.001, nms=0.45)))
"""


_PRELOAD_C_CHILD = """
import sys, numpy as np, pydarknet
from pydarknet import kernels, threads
net = pydarknet.load(sys.argv[1], sys.argv[2])
threads.wait_numba_setup()
print(sorted(kernels._C_MADE))
net.forward(np.full((1, 3, 64, 64), 0.5, np.float32))
print(sorted(kernels._C_MADE))
"""


def test_the_c_kernels_jit_jobs_called_are_preloaded_too(tmp_path):
    """A JIT job's C kernels (made on first use) are in the preload list and made by the next
    process's set-up, before its forward pass: not on the main thread, after LLVM's pages were
    released (+10-20 MB of RSS and ~0.1 s so)."""
    runs, saved = _two_processes(tmp_path, TINY, _PRELOAD_C_CHILD)
    (before1, after1), (before2, after2) = (out.split("\n")[:2] for out in runs)
    if not gemm.PACKED:  # no JIT jobs: no C kernels
        assert before1 == after1 == before2 == after2 == "[]"
        return
    assert before1 == "[]" and "gemm_tiles" in after1 and "bias_activate" in after1
    assert before2 == after2 == after1
    assert {threads.C_PREFIX + "gemm_tiles", threads.C_PREFIX + "bias_activate"} <= saved


def test_the_nms_kernel_a_detection_used_is_preloaded_too(tmp_path):
    runs, saved = _two_processes(tmp_path, TINY, _PRELOAD_DETECT_CHILD)
    (first, n1), (second, n2) = (out.split("\n")[:2] for out in runs)
    assert "nms_class" in saved and _ACTIVATING in saved  # the NMS's and the forward's
    assert "nms_class" not in first and second == str(sorted(saved))
    assert n1 == n2 and int(n1) > 0


def test_a_preload_list_forgets_kernels_that_are_gone():
    """After an upgrade, a saved kernel may be renamed or take other arguments: the preload
    drops such entries from the list (else every run would miss them and skip the release of
    LLVM's pages), keeps and loads the rest, and reports success."""
    from numba import typeof, types

    from pydarknet import kernels

    args = (np.zeros((2, 4, 4), np.float32), 2, 1.0, np.empty((2, 8, 8), np.float32))
    kernels.upsample(*args)
    sig = tuple(typeof(a) for a in args)
    assert sig in kernels.upsample.overloads
    model = f"test-stale-preload {os.getpid()}"
    bogus = (types.float64[:, :, ::1], types.int64, types.float64, types.float64[:, :, ::1])
    listed = [("upsample", tuple(sig)), ("a_kernel_that_was_renamed", tuple(sig)),
              ("upsample", bogus)]  # fmt: skip
    threads._write_preload(model, listed)
    try:
        assert threads.preload_kernels(model) is True
        assert threads._read_preload(model) == [("upsample", tuple(sig))]
        assert threads.preload_kernels(model) is True  # and so on every later run
    finally:
        threads._preload_path(model).unlink(missing_ok=True)


def test_each_kernels_py_keeps_its_own_preload_list(monkeypatch):
    """Two installs whose kernels differ, sharing one cache, must not overwrite each other's
    list (each would find the other's signatures stale and never preload)."""
    model = "some.cfg 416x416"
    here = threads._preload_path(model)
    assert threads._preload_path(model) == here and threads._preload_path("other") != here
    monkeypatch.setattr(threads, "_kernels_stamp", lambda: "another kernels.py")
    assert threads._preload_path(model) != here


def _mapping(name: str):
    with open("/proc/self/smaps") as f:
        (found,) = threads._file_mappings(f.read(), name)
    return found  # (start, end, perms, rss bytes, anonymous bytes)


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"),
                    reason="/proc/self/smaps: Linux only (the release is a no-op elsewhere)")
def test_release_clean_pages_drops_only_clean_read_only_mappings(tmp_path):
    import mmap
    data = np.arange(256 * 1024, dtype=np.uint32).tobytes()  # 1 MB
    clean, dirty = tmp_path / "pdn-release-clean.bin", tmp_path / "pdn-release-dirty.bin"
    clean.write_bytes(data)
    dirty.write_bytes(data)
    with open(clean, "rb") as f:
        ro = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    with open(dirty, "r+b") as f:
        cow = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private and writable
    try:
        assert ro[:] == data  # every page resident
        cow[:4] = b"\xff\xff\xff\xff"  # a private page that exists nowhere else
        cow_before = _mapping("pdn-release-dirty")
        assert _mapping("pdn-release-clean")[3] >= 1 << 20 and cow_before[4] > 0

        released = threads.release_clean_pages("pdn-release")

        assert released >= 1 << 20
        assert _mapping("pdn-release-clean")[3] == 0  # no longer counted in RSS...
        assert ro[:] == data  # ...and read back from the file, unchanged
        assert _mapping("pdn-release-dirty")[3:] == cow_before[3:]  # left alone
        assert cow[:4] == b"\xff\xff\xff\xff" and cow[4:] == data[4:]
    finally:
        ro.close()
        cow.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"),
                    reason="/proc/self/smaps: Linux only (the release is a no-op elsewhere)")
def test_file_mappings_match_a_line_by_line_parse_and_skip_pseudo_mappings():
    """_file_mappings reads only the matching mappings' lines; a plain parse of every line
    agrees. "" (every mapped file, what release_library_pages releases) never yields a
    pseudo-mapping."""
    with open("/proc/self/smaps") as f:
        smaps = f.read()
    twin, current = [], None
    for line in smaps.splitlines():
        fields = line.split()
        if fields and not fields[0].endswith(":"):  # a header: range perms offset dev inode path
            start, end = (int(a, 16) for a in fields[0].split("-"))
            current = [start, end, fields[1], None, None, fields[5] if len(fields) >= 6 else ""]
            twin.append(current)
        elif fields and fields[0] in ("Rss:", "Anonymous:"):
            current[3 if fields[0] == "Rss:" else 4] = int(fields[1]) * 1024
    assert any(m[5].startswith("[") for m in twin)  # [heap], [stack], [vdso]...
    for name in ("", "libc", "_multiarray_umath"):
        expected = [tuple(m[:5]) for m in twin if m[5].startswith("/")
                    and not m[5].startswith("/dev/") and os.path.basename(m[5]).startswith(name)]  # fmt: skip
        assert expected and list(threads._file_mappings(smaps, name)) == expected


# TINY with a 3x3 mish convolution, a stride-1 maxpool (maxpool_small; TINY's own 2x2/2 one is
# maxpool_2x2_even) and an upsample before its head
_HEAD_CONV = "[convolutional]\nfilters=18\n"
_NO_ARRAYOBJ_CFG = TINY.replace(_HEAD_CONV, """[convolutional]
filters=8
size=3
stride=1
pad=1
activation=mish

[maxpool]
size=3
stride=1

[upsample]
stride=2

""" + _HEAD_CONV)

_NO_ARRAYOBJ_CHILD = """
import sys, numpy as np, pydarknet
net = pydarknet.load(sys.argv[1], sys.argv[2], winograd=False)
image = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
dets = net.detect(image, thresh=0.001, nms=0.45)
print("numba.np.arrayobj" in sys.modules, len(dets))
"""


def test_a_warm_one_image_detect_never_imports_numba_np_arrayobj(tmp_path):
    """The kernels of a one-image detect (im2col, bias + leaky/mish/linear, two maxpool
    kernels, upsample, the resize, the NMS) allocate nothing, so loading them from the cache
    does not import numba.np.arrayobj (~26 ms of a cold start). The first run compiles them,
    which imports all of Numba."""
    runs, saved = _two_processes(tmp_path, _NO_ARRAYOBJ_CFG, _NO_ARRAYOBJ_CHILD, winograd=False)
    assert {"im2col_rows", "bias_activate", "maxpool_2x2_even", "maxpool_small", "upsample",
            "nms_class", "resize_bgr"} <= saved  # fmt: skip
    (first, n1), (second, n2) = (out.split() for out in runs)
    assert first == "True" and second == "False" and n1 == n2 and int(n1) > 0


# Every kernel a detector's forward calls from Python, parallel ones aside: im2col (stride 2,
# three channels), F(4x4) and F(2x2) Winograd, both maxpool paths, upsample, route, shortcut
# with an activation, yolo.
_HEAD = """
[convolutional]
filters=18
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14,23,27,37,58
classes=1
num=3
"""  # a 1x1 convolution and its [yolo]

# 64 wide, 52 high: F(4x4) on the 32x26 map, F(2x2) on the 16x13 one; 3 channels: _FIRST (its
# output is 32 columns wide: kernels.CONV_COLS with AVX-512)
_EVERY_KERNEL = (
    """[net]
width=64
height=52
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=logistic

[maxpool]
size=3
stride=1

[shortcut]
from=-3
activation=swish

"""
    + _HEAD
    + """

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,1

"""
    + _HEAD
)

_PRELOAD_REFRESH_CHILD = """
import sys, numpy as np, pydarknet
from pydarknet import threads
from numba.core.registry import cpu_target
net = pydarknet.Network(sys.argv[1])
net.load_weights(sys.argv[2])
threads.wait_numba_setup()
refreshed = bool(cpu_target.target_context._registries)  # filled by the context's refresh
preloaded = sorted(name for name, sigs in threads.kernel_overloads().items() if sigs)
outs = net.forward(np.random.default_rng(0).random((1, 3, 52, 64), dtype=np.float32))
np.savez(sys.argv[3], *outs)
print(refreshed, preloaded)
"""


@pytest.mark.parametrize("extra", ["", "\n[maxpool]\nsize=2\nstride=2\nantialiasing=1\n"])
def test_preload_without_the_context_refresh_gives_the_same_outputs(tmp_path, extra):
    """The start-up's fast path: cached kernels loaded with only the NRT set up (no registry
    refresh) compute what freshly loaded ones compute, the zoo's blur among them."""
    runs, saved_set = _two_processes(tmp_path, _EVERY_KERNEL + extra, _PRELOAD_REFRESH_CHILD)
    runs = [out.strip() for out in runs]
    assert runs[0] == "True []"  # nothing saved yet: the set-up refreshes, calls load
    saved = sorted(saved_set)
    # with the packed GEMM the Winograd steps run as JIT jobs, which call the transforms
    if gemm.PACKED:
        winograd = {"winograd_job"}
    else:
        winograd = {"winograd4_input", "winograd_input"}
    assert {_FIRST, "maxpool_2x2_even", "upsample"} | winograd <= saved_set
    # a JIT job's C kernels load with the refresh (a one-image detect's kernels, which have
    # none, take the fast path: test_a_warm_one_image_detect_never_imports_numba_np_arrayobj)
    c_kernels = any(name.startswith(threads.C_PREFIX) for name in saved_set)
    if threads._can_skip_refresh([]) and not c_kernels:
        assert runs[1] == f"False {saved}"  # all preloaded, and no refresh
    else:
        assert runs[1] == f"True {saved}"
    first, second = np.load(tmp_path / "out0.npz"), np.load(tmp_path / "out1.npz")
    assert first.files == second.files and len(first.files) == 2
    for k in first.files:
        np.testing.assert_array_equal(first[k], second[k])


def test_the_runtime_is_compiled_once_then_linked_from_the_cache(tmp_path):
    """Numba's runtime (NRT): the first process compiles it and saves its object code, the next
    one links that file without compiling it, and a damaged file is compiled and saved again;
    the outputs are the same each time."""
    from numba.core.registry import cpu_target

    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    pydarknet.Network(cfg).save_random_weights(tmp_path / "tiny.weights")
    saved, _ = threads._runtime_path(cpu_target.target_context.codegen())
    saved.unlink(missing_ok=True)

    def run() -> str:
        proc = subprocess.run([sys.executable, "-c", _PRELOAD_CHILD, str(cfg),
                               str(tmp_path / "tiny.weights")],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split("\n")[1]  # the output's sum

    first = run()
    if not threads._numba_checked():  # a Numba not checked: rtsys.initialize as it is
        assert not saved.exists()
        return
    written = saved.stat().st_mtime_ns
    assert run() == first
    assert saved.stat().st_mtime_ns == written  # linked from the file, not compiled again
    saved.write_bytes(saved.read_bytes()[:100])  # truncated
    assert run() == first
    assert len(saved.read_bytes()) > 100  # compiled and saved again


_COLD_CHILD = """
import os, time
import numpy as np
from pydarknet import kernels, threads
print(threads.cache_is_cold())
kernels.upsample(np.zeros((1, 2, 2), np.float32), 2, 1.0, np.zeros((1, 4, 4), np.float32))
print(threads.cache_is_cold())
later = time.time() + 60
os.utime(kernels.__file__, (later, later))  # what a reinstall of the same source does
print(threads.cache_is_cold())
"""


def test_cache_is_cold_until_a_kernel_is_saved_and_a_reinstall_keeps_it_warm(tmp_path):
    """The first-run notice's test: Numba's cache keys on kernels.py's text, not its mtime."""
    import shutil

    shutil.copytree(Path(pydarknet.__file__).parent, tmp_path / "pydarknet",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _COLD_CHILD], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False", "False"]


def test_a_compile_on_a_warm_cache_is_announced_once():
    """on_first_compile: announce() at the first kernel Numba compiles in the process, once;
    calling a kernel it already has (or loads from the cache) is not compiling."""
    from numba import njit

    from pydarknet import kernels

    def upsample():
        kernels.upsample(np.zeros((1, 2, 2), np.float32), 2, np.float32(1),
                         np.zeros((1, 4, 4), np.float32))  # fmt: skip

    upsample()  # compiled or loaded now, if not before
    calls = []
    threads.on_first_compile(lambda: calls.append(1))
    upsample()
    assert calls == []  # a kernel it already has: no compile
    njit(lambda x: x + 1)(1)  # a new function: compiled now
    njit(lambda x: x + 2)(1)
    assert calls == [1]
