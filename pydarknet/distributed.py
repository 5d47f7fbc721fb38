"""Scale-out on Dask (dask.distributed): image paths in, detections out, one model per worker.

    from dask.distributed import Client
    from pydarknet.distributed import detect_paths
    client = Client("tcp://scheduler:8786")
    for r in detect_paths(client, "cfg/yolov4-tiny.cfg", "weights/yolov4-tiny.weights", paths):
        print(r.source, len(r.detections))

Workers need the package installed and the cfg, weights and images at the same paths (a shared
filesystem or object-store mount). Paths go out in chunks; each worker process builds the
Detector the first time a chunk needs it and keeps it (a module-level cache keyed by the
model's files and options), so a model loads once per worker process, however many tasks it
runs. Worker threads in one process share that Detector, whose lock serialises forwards.
Results come back in input order and are identical to a single-process run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import DarknetError
from .pipeline import Result, save_outputs

_DETECTORS: dict = {}  # per worker process: model spec -> Detector
_LOCK = threading.Lock()


def _detector(spec: tuple):
    """The Detector for spec, built on first use in this process (the load-once cache)."""
    from .detector import Detector

    with _LOCK:
        det = _DETECTORS.get(spec)
        if det is None:
            cfg, weights, names, thresh, nms, letterbox, tta = spec
            det = Detector(cfg, weights, names=list(names) if names else None, thresh=thresh,
                           nms=nms, letterbox=letterbox, tta=tta)  # fmt: skip
            _DETECTORS[spec] = det
        return det


def loaded_models() -> int:
    """How many models this process holds (call through client.run to check each worker)."""
    return len(_DETECTORS)


def detect_chunk(spec: tuple, start: int, paths: list[str], out_dir: str | None = None,
                 save_labels: bool = False) -> list[Result]:  # fmt: skip
    """Runs on a worker: detect in each path; an unreadable file becomes Result.error."""
    det = _detector(spec)
    out = []
    for k, path in enumerate(paths):
        try:
            img = det.load_image(path)
            dets = det.detect(img)
        except DarknetError as e:
            out.append(Result(start + k, path, error=str(e)))
            continue
        r = Result(start + k, path, img, dets, size=(img.shape[1], img.shape[0]))
        try:
            save_outputs(r, det.names, out_dir, save_labels, det.thresh)
        except DarknetError as e:
            r.error = str(e)
        r.image = None  # do not ship pixels back
        out.append(r)
    return out


def connect(address: str, timeout: float = 10.0):
    """A dask.distributed Client for a scheduler address, or a LocalCluster for local[:N].

    Raises DarknetError (one line) when dask is missing or the scheduler cannot be reached.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise DarknetError('--dask needs dask.distributed: pip install "pydarknet[dask]"') from None
    if address == "local" or address.startswith("local:"):
        n = address.partition(":")[2] or "2"
        if not n.isdigit() or int(n) < 1:
            raise DarknetError(f"--dask {address}: expected local or local:N with N >= 1")
        cluster = LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True,
                               dashboard_address=None)  # fmt: skip
        client = Client(cluster)
        client._pydarknet_owns_cluster = True  # close() shuts the local cluster down too
        return client
    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DarknetError(f"cannot reach the Dask scheduler at {address}: {msg}") from None


def close(client) -> None:
    """Close a client from connect(), and the local cluster it started, if any."""
    owned = getattr(client, "_pydarknet_owns_cluster", False)
    cluster = getattr(client, "cluster", None) if owned else None
    client.close()
    if cluster is not None:
        cluster.close()


def detect_paths(
    client,
    cfg: str,
    weights: str,
    paths: Iterable[str],
    *,
    names: list[str] | None = None,
    thresh: float = 0.25,
    nms: float = 0.45,
    letterbox: bool | None = None,
    tta=None,
    chunk_size: int = 8,
    window: int | None = None,
    out_dir: str | None = None,
    save_labels: bool = False,
) -> Iterator[Result]:
    """Detections for image paths on a Dask cluster, yielded in input order.

    At most `window` chunks (default: 4 per worker thread) are in flight, so millions of
    paths stream through without piling up futures. With out_dir, workers write annotated
    images there; with save_labels, darknet label files next to the images.
    """
    if tta is True:
        from .tta import TTA

        tta = TTA()
    files = (str(Path(cfg).resolve()), str(Path(weights).resolve()))
    spec = (*files, tuple(names) if names else None, float(thresh), float(nms), letterbox,
            tta or None)  # fmt: skip
    if window is None:
        threads = sum(client.nthreads().values()) or 1
        window = 4 * threads
    pending: deque = deque()
    it = iter(paths)
    start = 0
    done = False
    try:
        while True:
            while not done and len(pending) < window:
                chunk = [str(p) for _, p in zip(range(chunk_size), it)]
                if not chunk:
                    done = True
                    break
                pending.append(client.submit(detect_chunk, spec, start, chunk, out_dir,
                                             save_labels, pure=False))  # fmt: skip
                start += len(chunk)
            if not pending:
                return
            yield from pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
