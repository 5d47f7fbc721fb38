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
    ],
    extras_require={
        # OpenCV 4.x is the test oracle: OpenCV 5 removed cv2.dnn.readNetFromDarknet.
        "test": ["pytest>=7", "opencv-python-headless>=4.5,<5"],
    },
    entry_points={"console_scripts": ["pydarknet = pydarknet.cli:main"]},
)
