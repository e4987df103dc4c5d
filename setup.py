# The C kernels are built by cffi from csrc/build.py; everything else lives in pyproject.toml.
import concurrent.futures
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class ParallelBuildExt(build_ext):
    """build_ext compiling the extension's sources on every core: the kernels are 60-odd C
    files, each compiled for several instruction sets, and one core takes twice as long
    (setuptools' own --parallel spreads whole extensions, and there is one)."""

    def build_extension(self, ext):
        compiler = self.compiler
        serial = compiler.compile

        def compile_in_parallel(sources, output_dir=None, **kwargs):
            def one(source):
                return serial([source], output_dir=output_dir, **kwargs)

            with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                return [obj for objs in pool.map(one, sources) for obj in objs]

        compiler.compile = compile_in_parallel
        try:
            super().build_extension(ext)
        finally:
            compiler.compile = serial


setup(cffi_modules=["csrc/build.py:ffibuilder"], cmdclass={"build_ext": ParallelBuildExt})
