"""pydarknet: exact Darknet YOLO inference on the CPU, from Python."""

from .errors import CfgError, DarknetError, ImageError, WeightsError
from .network import Network, load
from .postprocess import Detection

__version__ = "0.1.0"
__all__ = ["load", "Network", "Detection", "DarknetError", "CfgError", "WeightsError", "ImageError"]
