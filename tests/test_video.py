"""Video in, annotated video and per-frame JSON lines out; bad sources and Ctrl-C lose nothing."""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from pydarknet import video
from pydarknet.cli import main
from pydarknet.detector import Detector

from .conftest import ROOT
from .synthetic import NAMES, mirror_model, read_video, write_video


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mirror_model(tmp_path_factory.mktemp("video"))


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, 6)
    return path


def _lines(out: str) -> list[dict]:
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def test_video_file_gives_json_lines_and_a_playable_annotated_video(model, clip, tmp_path, capsys):
    cfg, weights = model
    out_video = tmp_path / "out" / "annotated.avi"
    code = main(["detect", str(cfg), str(clip), "--weights", str(weights), "--out-video",
                 str(out_video)])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    frames = _lines(out)
    assert [f["frame_id"] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert all(f["filename"] == str(clip) for f in frames)
    assert "6 frames in" in err and "frames/s" in err
    # each line is exactly what the Detector finds in the decoded frame
    det = Detector(*model)
    decoded = read_video(clip)
    assert len(decoded) == 6
    for f, img in zip(frames, decoded):
        assert f["objects"] == [d.to_darknet_json() for d in det(img)]
    assert sum(len(f["objects"]) for f in frames) > 0
    written = read_video(out_video)
    assert len(written) == 6 and written[0].shape == decoded[0].shape
    assert not np.array_equal(written[0], decoded[0])  # boxes were drawn


def test_batch_and_default_output_name(model, clip, tmp_path, capsys, monkeypatch):
    cfg, weights = model
    monkeypatch.chdir(tmp_path)
    assert main(["detect", str(cfg), str(clip), "--weights", str(weights), "--no-draw"]) == 0
    one = capsys.readouterr().out
    assert main(["detect", str(cfg), str(clip), "--weights", str(weights), "--batch", "4"]) == 0
    assert capsys.readouterr().out == one
    assert len(read_video(tmp_path / "predictions" / "clip.avi")) == 6


def test_detect_frames_api(model, clip):
    det = Detector(*model, names=NAMES)
    with video.open_source(str(clip)) as src:
        assert (src.width, src.height, src.frame_count) == (64, 48, 6)
        assert src.fps == pytest.approx(10.0)
        frames = list(video.detect_frames(det, src, batch=2))
    assert [f.frame_id for f in frames] == [1, 2, 3, 4, 5, 6]
    assert [len(f.detections) for f in frames] == [len(det(f.image)) for f in frames]


def _record_batches(monkeypatch) -> list:
    seen = []
    real = video.detect_frames
    monkeypatch.setattr(video, "detect_frames",
                        lambda det, src, batch=1: seen.append(batch) or real(det, src, batch))  # fmt: skip
    return seen


def test_a_video_file_runs_one_frame_per_thread(model, clip, monkeypatch, capsys):
    """Without --batch a file's frames go one per pool thread (a small model), as images do."""
    cfg, weights = model
    seen = _record_batches(monkeypatch)
    args = ["detect", str(cfg), str(clip), "--weights", str(weights), "--no-draw", "--threads"]
    assert main(args + ["2"]) == 0 and main(args + ["1"]) == 0
    assert seen == [2, 1]
    assert main(args + ["2", "--batch", "3"]) == 0 and seen[-1] == 3


def test_http_stream(model, clip, capsys, monkeypatch):
    """A URL source, served from this machine (loopback only): live, so frame by frame."""
    seen = _record_batches(monkeypatch)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{clip.name}"
        cfg, weights = model
        assert video.is_stream(url) and video.describe(url) == "stream"
        code = main(["detect", str(cfg), url, "--weights", str(weights), "--no-draw"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert len(_lines(out)) == 6
        assert seen == [1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("spec,expect", [
    ("corrupt", "corrupt.avi: cannot"),
    ("missing", "missing.mp4: cannot open video (no such file)"),
    ("camera", "camera 7: cannot open video"),
    ("url", "http://127.0.0.1:9/none.avi: cannot open video"),
])  # fmt: skip
def test_bad_sources_are_one_line_errors(model, tmp_path, capfd, spec, expect):
    cfg, weights = model
    source = {
        "corrupt": tmp_path / "corrupt.avi",
        "missing": tmp_path / "missing.mp4",
        "camera": "7",
        "url": "http://127.0.0.1:9/none.avi",
    }[spec]
    if spec == "corrupt":
        source.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + os.urandom(4000))
    out_dir = tmp_path / "pred"
    code = main(["detect", str(cfg), str(source), "--weights", str(weights), "--out-dir",
                 str(out_dir)])  # fmt: skip
    out, err = capfd.readouterr()  # fd level: OpenCV's and FFmpeg's own messages count too
    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and err.startswith("pydarknet: error: ")
    assert expect in err and out == ""
    assert not out_dir.exists()  # nothing half-made


def test_video_must_be_the_only_input(model, clip, capsys):
    cfg, weights = model
    assert main(["detect", str(cfg), str(clip), str(clip), "--weights", str(weights)]) == 1
    assert "must be the only input" in capsys.readouterr().err
    assert main(["detect", str(cfg), str(clip), "--weights", str(weights), "--save-labels"]) == 1
    assert "apply to images, not video" in capsys.readouterr().err


def test_interrupt_keeps_what_was_written_playable(model, clip, tmp_path, capsys, monkeypatch):
    cfg, weights = model
    calls = {"n": 0}
    real = Detector.detect_prepared

    def interrupted(self, inputs, sizes):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, inputs, sizes)

    monkeypatch.setattr(Detector, "detect_prepared", interrupted)
    target = tmp_path / "partial.avi"
    code = main(["detect", str(cfg), str(clip), "--weights", str(weights), "--out-video",
                 str(target), "--batch", "1"])  # fmt: skip  (a frame per call, as counted)
    out, err = capsys.readouterr()
    assert code == 130 and "pydarknet: interrupted" in err
    assert len(_lines(out)) == 3
    assert len(read_video(target)) == 3  # released in finally: a complete, playable file


def test_ctrl_c_on_a_running_process(model, tmp_path):
    """A real SIGINT to `python -m pydarknet detect` on a long video, mid-run."""
    cfg, weights = model
    long_clip = tmp_path / "long.avi"
    write_video(long_clip, 3000)  # ~3 s of work at 1000 frames/s, should the pipe never fill
    target = tmp_path / "sigint.avi"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pydarknet", "detect", str(cfg), str(long_clip), "--weights",
         str(weights), "--out-video", str(target), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # three frames are done
        assert all(ln.startswith("{") for ln in lines), lines
        # not reading on: once the pipe is full (~64 KB of JSON lines) the run blocks in a
        # write, still mid-video, however fast the machine; Ctrl-C lands there
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "pydarknet: interrupted" in err
    done = 3 + len(_lines(out))
    assert 3 <= done < 3000
    frames = read_video(target)
    assert len(frames) >= 3 and frames[0].shape == (48, 64, 3)
    cap = cv2.VideoCapture(str(target))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == len(frames)  # the index was written
    cap.release()


def test_writer_refuses_unknown_extensions(tmp_path):
    with pytest.raises(video.ImageError, match=r"x\.gif: cannot write video"):
        video.VideoWriter(tmp_path / "x.gif", 10, (64, 48))
