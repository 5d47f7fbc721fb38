"""The pool's JIT jobs (threads.Pool.run_jit, kernels.py "pool jobs"): every step runs once,
the caller returns only after the steps its workers claimed have ended, and a Winograd layer's
steps run so give the same numbers, bit for bit, as its Python steps. (The JIT is on here: the
job state's atomics have no Python form.)"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import pydarknet
import pydarknet.layers
import pydarknet.network
from pydarknet import gemm, kernels, threads

from . import reference


@njit(nogil=True)
def _spin(n):
    s = 0.0
    for i in range(n):
        s += np.sqrt(np.float64(i))
    return s


@njit(nogil=True)
def _record_job(st, slot, steps, work, out):
    """Each step: some work, then out[i] = slot + 1 and a count of runs in out[steps + i]."""
    kernels.job_enter(st, slot)
    done = 0
    while True:
        i = kernels.job_claim(st)
        if i >= steps:
            return done
        _spin(work + 1000 * slot)  # the workers' steps end later than the caller's
        out[i] = slot + 1
        out[steps + i] += 1
        done += 1


@pytest.mark.parametrize("size", [1, 2, 3])
def test_every_step_runs_once_and_all_have_ended_when_run_jit_returns(size):
    pool = threads.Pool(size)
    try:
        slots = set()
        for steps in (1, 2, 3, 7, 40):
            for work in (0, 20000):
                for _ in range(15):
                    out = np.zeros(2 * steps, np.int64)
                    pool.run_jit(_record_job, steps, steps, work, out)
                    assert (out[steps:] == 1).all()  # each once, and ended: no 0 left
                    assert ((out[:steps] >= 1) & (out[:steps] <= size)).all()
                    slots |= set(out[:steps].tolist())
        assert slots <= set(range(1, size + 1))
    finally:
        pool.close()


def test_run_jit_and_run_share_the_workers():
    """Python jobs and JIT jobs interleaved on one pool, as a forward pass posts them."""
    pool = threads.Pool(2)
    try:
        for k in range(200):
            seen = []
            pool.run(lambda i, slot: seen.append(i), 3)
            assert sorted(seen) == [0, 1, 2]
            out = np.zeros(8, np.int64)
            pool.run_jit(_record_job, 4, 4, 50 * (k % 3), out)
            assert (out[4:] == 1).all()
    finally:
        pool.close()


@pytest.fixture
def packed_on_two_threads(monkeypatch):
    """The packed GEMM (whatever this CPU would choose) on a pool of 2."""
    monkeypatch.setattr(gemm, "PACKED", True)
    before = threads.num_threads()
    threads.set_num_threads(2)
    yield
    threads.set_num_threads(before)


def _three_runs(tmp_path, monkeypatch, c, h, w, filters, size, stride, act):
    """One layer's outputs: Python steps, JIT jobs, Python steps again; both images of a batch
    of 2 split over the threads (as profiling runs a batch)."""
    cfg = tmp_path / "w.cfg"
    cfg.write_text(f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n\n[convolutional]\n"
                   f"batch_normalize=1\nfilters={filters}\nsize={size}\nstride={stride}\npad=1\n"
                   f"activation={act}\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    net.load_weights(net.save_random_weights(tmp_path / "w.weights"))
    x = np.random.default_rng(c).random((2, c, h, w), dtype=np.float32) - 0.5
    runs = []
    for jit in (False, True, False):
        monkeypatch.setattr(pydarknet.layers, "JIT_JOBS", jit)
        runs.append(net.forward(x, profile=[])[0])
    assert np.abs(runs[0]).max() > 0
    return net, runs


@pytest.mark.parametrize("tile,stride", [(2, 1), (4, 1), (2, 2), (4, 2)])
@pytest.mark.parametrize("c,h,w,filters,act", [(32, 7, 5, 70, "leaky"), (16, 13, 13, 64, "mish"),
                                               (33, 45, 38, 130, "logistic"),
                                               (8, 104, 96, 12, "linear")])  # fmt: skip
def test_winograd_jit_jobs_give_the_python_steps_numbers(tmp_path, monkeypatch,
                                                         packed_on_two_threads, tile, stride, c,
                                                         h, w, filters, act):  # fmt: skip
    """Row steps (large maps) and the small maps' channel then filter steps: the same kernels
    on the same steps, so identical outputs."""
    monkeypatch.setattr(pydarknet.layers.Convolutional, "winograd_tile", lambda self, out: tile)
    _, (want, got, _) = _three_runs(tmp_path, monkeypatch, c, h, w, filters, 3, stride, act)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("c,h,w,filters,act", [(64, 104, 96, 64, "leaky"), (33, 16, 16, 70, "mish"),
                                               (128, 13, 13, 255, "linear"),
                                               (512, 32, 32, 130, "logistic"),
                                               (16, 64, 64, 8, "relu")])  # fmt: skip
def test_1x1_jit_jobs_agree_with_blas(tmp_path, monkeypatch, packed_on_two_threads, c, h, w,
                                      filters, act):  # fmt: skip
    """A 1x1 layer through the packed GEMM in JIT jobs (column steps on large maps, the filters
    split on small ones; power-of-two maps, whose rows the kernel reads from a copy) against
    its BLAS steps; then BLAS again, with the weights read back from the file (the packed ones
    replaced them)."""
    net, (want, got, again) = _three_runs(tmp_path, monkeypatch, c, h, w, filters, 1, 1, act)
    assert net.layers[0]._packed is not None
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())
    np.testing.assert_array_equal(again, want)


def test_1x1_jit_jobs_only_where_winograd_is_on(tmp_path, monkeypatch):
    """A one-image detect runs im2col only (Network.winograd False): its 1x1 layers stay on
    BLAS, their weights unpacked."""
    monkeypatch.setattr(gemm, "PACKED", True)
    cfg = tmp_path / "p.cfg"
    cfg.write_text("[net]\nwidth=40\nheight=40\nchannels=32\n\n[convolutional]\nfilters=64\n"
                   "size=1\nstride=1\nactivation=leaky\n")  # fmt: skip
    weights = pydarknet.Network(cfg).save_random_weights(tmp_path / "p.weights")
    plain = pydarknet.load(cfg, weights, winograd=False)
    plain.forward(np.zeros((1, 32, 40, 40), np.float32))
    assert getattr(plain.layers[0], "_packed", None) is None
    fast = pydarknet.load(cfg, weights)
    fast.forward(np.zeros((1, 32, 40, 40), np.float32))
    assert fast.layers[0]._packed is not None


@pytest.fixture
def jobs_on_two_threads(monkeypatch):
    """A pool of 2 with every layer split over it, however small (Network._runs_alone: a layer
    run alone calls its kernel directly, without the job under test); yields the names of the
    kernels run as compiled jobs, in order."""
    monkeypatch.setattr(pydarknet.network, "ALONE_SECONDS", 0.0)
    monkeypatch.setattr(pydarknet.network, "ALONE_JIT_SECONDS", 0.0)
    jobs = []
    run_jit = threads.Pool.run_jit
    monkeypatch.setattr(threads.Pool, "run_jit", lambda self, kernel, *a: jobs.append(
        kernel.__name__) or run_jit(self, kernel, *a))  # fmt: skip
    before = threads.num_threads()
    threads.set_num_threads(2)
    yield jobs
    threads.set_num_threads(before)


@pytest.mark.parametrize("h,w,size,stride,kind", [(26, 38, 2, 2, "2x2 even pairs"),
                                                  (13, 13, 5, 1, "small stride-1 map"),
                                                  (27, 19, 3, 2, "any window"),
                                                  (13, 13, 2, 1, "any window")])  # fmt: skip
def test_maxpool_jit_jobs_give_the_twins_numbers(tmp_path, monkeypatch, jobs_on_two_threads, h,
                                                 w, size, stride, kind):  # fmt: skip
    """A batch of 2 (profiling splits each layer's batch over the threads), 37 channels: steps
    of channels that do not divide them evenly; NaN and -inf among the values."""
    jobs = jobs_on_two_threads
    cfg = tmp_path / "p.cfg"
    cfg.write_text(f"[net]\nwidth={w}\nheight={h}\nchannels=37\n\n[maxpool]\nsize={size}\n"
                   f"stride={stride}\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    net.load_weights(net.save_random_weights(tmp_path / "p.weights"))  # none to read
    x = np.random.default_rng(size).standard_normal((2, 37, h, w), dtype=np.float32)
    x[0, 3, 1, 1], x[1, 5, 2, 0] = np.nan, -np.inf
    runs = []
    for jit in (True, False):
        monkeypatch.setattr(pydarknet.layers, "JIT_JOBS", jit)
        runs.append(net.forward(x, profile=[])[0])
        assert len(jobs) == 2  # a job per image with the JIT jobs, none with Python steps
    assert pydarknet.layers.MaxPool.jit_jobs() is False  # the last run: Python steps
    pad = size - 1  # darknet's default padding
    want = np.stack([reference.maxpool(x[b], size, stride, stride, pad) for b in range(2)])
    np.testing.assert_array_equal(runs[0], want)
    np.testing.assert_array_equal(runs[1], want)


@pytest.mark.parametrize("from_channels", [37, 45])  # the same, and more (its first 37 added)
def test_shortcut_and_upsample_jit_jobs_give_numpys_numbers(tmp_path, monkeypatch,
                                                            jobs_on_two_threads,
                                                            from_channels):  # fmt: skip
    """A batch of 2, 37 channels (steps that do not divide them evenly): x + the from-layer,
    and nearest-neighbour x2, through compiled jobs and through Python steps."""
    jobs = jobs_on_two_threads
    cfg = tmp_path / "s.cfg"
    cfg.write_text(f"[net]\nwidth=22\nheight=14\nchannels=3\n\n[convolutional]\n"
                   f"filters={from_channels}\nsize=1\nactivation=linear\n\n"
                   "[convolutional]\nfilters=37\nsize=1\nactivation=leaky\n\n"
                   "[shortcut]\nfrom=-2\nactivation=linear\n\n[upsample]\nstride=2\n")  # fmt: skip
    net = pydarknet.Network(cfg)
    net.load_weights(net.save_random_weights(tmp_path / "s.weights"))
    net.output_layers = [0, 1, 2, 3]
    x = np.random.default_rng(from_channels).random((2, 3, 14, 22), dtype=np.float32)
    runs = []
    for jit in (True, False):
        monkeypatch.setattr(pydarknet.layers, "JIT_JOBS", jit)
        assert net.layers[2].jit_job() is jit
        runs.append([a.copy() for a in net.forward(x, profile=[])])
        assert {"add_job", "upsample_job"} <= set(jobs) or not jit  # the jobs ran
    jobs.clear()
    # Network.winograd = False (a one-image detect): no job to compile, the same numbers
    monkeypatch.setattr(pydarknet.layers, "JIT_JOBS", True)
    net.winograd = False
    runs.append([a.copy() for a in net.forward(x, profile=[])])
    assert not {"add_job", "upsample_job"} & set(jobs)
    for first, conv, total, up in runs:
        assert first.shape[1] == from_channels and np.abs(total).max() > 0
        np.testing.assert_array_equal(total, conv + first[:, :37])
        np.testing.assert_array_equal(up, total.repeat(2, axis=2).repeat(2, axis=3))


def test_jit_layers_read_new_weights_after_a_forward(tmp_path, packed_on_two_threads):
    """A JIT layer's forward is worked out once per shapes and pool (Convolutional._jit_run);
    weights loaded after a forward, and biases changed in place, are still what it computes
    with: the same outputs as a network that never ran. Every JIT path: a first layer of 3
    channels, stride-2 F(4x4, 2x2), F(4x4) on row steps and on a small map's two jobs, 1x1."""
    cfg = tmp_path / "jit.cfg"
    convs = [(16, 3, 2), (32, 3, 2), (32, 3, 1), (128, 3, 1), (64, 1, 1)]
    cfg.write_text("[net]\nwidth=256\nheight=256\nchannels=3\n" + "".join(
        f"\n[convolutional]\nbatch_normalize=1\nfilters={f}\nsize={k}\nstride={s}\npad=1\n"
        f"activation=leaky\n" + ("\n[maxpool]\nsize=4\nstride=4\n" if f == 32 and s == 1 else "")
        for f, k, s in convs))  # fmt: skip
    net = pydarknet.Network(cfg)
    first, second = (net.save_random_weights(tmp_path / f"{s}.weights", s) for s in (1, 2))
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    net.load_weights(first)
    before = [net.forward(x)[0] for _ in range(2)]
    net.load_weights(second)
    after = net.forward(x)[0]
    fresh = pydarknet.Network(cfg)
    fresh.load_weights(second)
    np.testing.assert_array_equal(after, fresh.forward(x)[0])
    assert not np.allclose(after, before[0])
    assert sum(layer.jit_jobs(shape) for layer, shape in zip(net.layers, net.shapes)
               if isinstance(layer, pydarknet.layers.Convolutional)) == 4  # and the first layer
    for layer in (net.layers[-1], fresh.layers[-1]):
        layer.biases += 1.0
    np.testing.assert_array_equal(net.forward(x)[0], fresh.forward(x)[0])
