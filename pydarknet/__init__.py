"""pydarknet: exact Darknet YOLO inference on the CPU, from Python."""

from . import threads

threads.configure()  # Numba's cache dir and OpenMP's wait policy, before numba is imported

from .errors import CfgError, DarknetError, ImageError, WeightsError  # noqa: E402
from .network import Network, load  # noqa: E402
from .postprocess import Detection  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load", "Network", "Detection", "Detector", "DarknetError", "CfgError", "WeightsError",
           "ImageError"]  # fmt: skip


def __getattr__(name: str):
    # Detector pulls in OpenCV (image.py); imported on first use so `import pydarknet` stays quick
    if name == "Detector":
        from .detector import Detector

        return Detector
    raise AttributeError(f"module 'pydarknet' has no attribute {name!r}")
