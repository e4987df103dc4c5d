# The C kernels are built by cffi from csrc/build.py; everything else lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["csrc/build.py:ffibuilder"])
