"""Scale-out on Dask: a LocalCluster of 2 worker processes gives the single-process results,
each worker loads the model once, and an unreachable scheduler is a one-line error."""

from __future__ import annotations

import json

import pytest

from dask.distributed import Client, LocalCluster  # noqa: E402

from pydarknet import distributed  # noqa: E402
from pydarknet.cli import main  # noqa: E402
from pydarknet.detector import Detector  # noqa: E402

from .synthetic import NAMES, key, mirror_model, write_images  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    # two worker processes, one thread each; silence_logs keeps the test output readable
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as c, Client(c) as client:  # fmt: skip
        yield c, client


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    cfg, weights = mirror_model(root)
    paths = write_images(root / "imgs", 11)
    return root, cfg, weights, paths


def test_same_results_as_one_process_in_order(cluster, data):
    _, client = cluster
    root, cfg, weights, paths = data
    bad = str(root / "imgs" / "nope.png")
    inputs = paths[:5] + [bad] + paths[5:]
    results = list(distributed.detect_paths(client, str(cfg), str(weights), inputs, names=NAMES,
                                            chunk_size=2, window=3))  # fmt: skip
    local = Detector(cfg, weights, names=NAMES)
    assert [r.source for r in results] == inputs
    assert [r.index for r in results] == list(range(len(inputs)))
    assert results[5].error is not None and "nope.png" in results[5].error
    for r in results[:5] + results[6:]:
        assert r.error is None and r.image is None
        assert [key(d) for d in r.detections] == [key(d) for d in local.detect_file(r.source)]
    # 6 chunks over 2 workers: a worker that ran any built the model once, never again
    loaded = client.run(distributed.loaded_models)
    assert len(loaded) == 2 and set(loaded.values()) <= {0, 1} and sum(loaded.values()) >= 1


def test_tta_and_thresholds_travel_to_the_workers(cluster, data):
    _, client = cluster
    root, cfg, weights, paths = data
    results = list(distributed.detect_paths(client, str(cfg), str(weights), paths[:3],
                                            thresh=0.4, tta=True))  # fmt: skip
    local = Detector(cfg, weights, thresh=0.4, tta=True)
    for r in results:
        assert [key(d) for d in r.detections] == [key(d) for d in local.detect_file(r.source)]


def test_cli_dask_equals_local(cluster, data, capsys, tmp_path):
    c, _ = cluster
    root, cfg, weights, paths = data
    args = ["detect", str(cfg), *paths, "--weights", str(weights), "--json"]
    assert main(args + ["--no-draw"]) == 0
    local = json.loads(capsys.readouterr().out)
    out_dir = tmp_path / "drawn"
    code = main(args + ["--dask", c.scheduler_address, "--out-dir", str(out_dir), "--save-labels"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == local
    assert "images/s (Dask tcp://" in err
    assert len(list(out_dir.iterdir())) == len(paths)  # the workers drew them
    assert all(open(p[:-4] + ".txt").read() is not None for p in paths)


def test_unreachable_scheduler_is_one_line(data, capsys, monkeypatch):
    root, cfg, weights, paths = data
    real = distributed.connect
    monkeypatch.setattr(distributed, "connect", lambda a: real(a, timeout=2))
    code = main(["detect", str(cfg), paths[0], "--weights", str(weights), "--dask",
                 "tcp://127.0.0.1:9"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert err.startswith("pydarknet: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
