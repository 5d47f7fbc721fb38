"""What a cold `pydarknet detect` does before its first forward: Numba's set-up on a thread,
no progress bar (nor tqdm) when stderr is not a terminal, one image read without a loader."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np

import pydarknet
from pydarknet import threads
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
