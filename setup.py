from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="pydarknet",
    version="0.1.0",
    description="Exact Darknet YOLO inference on the CPU: cfg + weights in, detections out",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["pydarknet", "pydarknet.*"]),
    package_data={"pydarknet": ["data/*.names"]},
    install_requires=[
        "numpy>=1.24",
        "numba>=0.58",
        "opencv-python-headless>=4.5",
        "threadpoolctl>=3.1",
        "tqdm>=4.60",  # progress bars over many images: pure Python, no dependencies
    ],
    extras_require={
        "video": [],  # video files, cameras and streams need only OpenCV (its FFmpeg backend)
        "eval": ["pycocotools>=2.0.6"],  # pydarknet map --annotations (COCO AP)
        "dask": ["dask[distributed]>=2023.1"],  # pydarknet detect --dask, pydarknet.distributed
        "onnx": ["onnx>=1.13", "onnxruntime>=1.14"],  # pydarknet bench --vs onnxruntime
        # OpenCV 4.x is the test oracle: OpenCV 5 removed cv2.dnn.readNetFromDarknet.
        "test": [
            "pytest>=7",
            "opencv-python-headless>=4.5,<5",
            "pycocotools>=2.0.6",
            "dask[distributed]>=2023.1",
            "onnx>=1.13",
            "onnxruntime>=1.14",
        ],
    },
    entry_points={"console_scripts": ["pydarknet = pydarknet.cli:run"]},
)
