"""Installs the `enet_discrim` package: ENet + discriminative loss for instance segmentation."""
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="enet-discrim",
    version="0.1.0",
    description=(
        "TensorFlow 2 / Keras 3 implementation of 'Semantic Instance Segmentation with a "
        "Discriminative Loss Function' (De Brabandere et al., 2017) with an ENet backbone."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["enet_discrim", "enet_discrim.*"]),
    install_requires=[
        # Keras 3 ships with TensorFlow >= 2.16. tensorflow-addons is deliberately absent: it is
        # end-of-life and fails to import with Keras 3; max-unpooling is implemented here.
        "tensorflow>=2.16",
        "numpy",
        "opencv-python-headless",
        "scikit-learn",
        "matplotlib",
        "absl-py",
        # tf.summary writes through TensorBoard, which TensorFlow no longer installs itself.
        "tensorboard",
        "cityscapesscripts",
        "tqdm",
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
    # One command for every tool: `enet-discrim train|infer|convert|eval|export|benchmark|generate ...`.
    entry_points={"console_scripts": ["enet-discrim=enet_discrim.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
