"""cffi builder for tensorpress._tensorpress_c (API / out-of-line mode).

The cdef is read from the real headers (the text between the "cdef: begin/end" markers of
tensorpress.h, of every header it includes, and of tp_pyargs.h), so the binding always matches
what the kernels are compiled against.

The extension is optional: where no working C compiler exists the install still succeeds and
tensorpress runs on its Numba backend (with one warning at import).
"""

import os
import re
import subprocess
import sys
import sysconfig
import tempfile

import numpy
from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CDEF_BLOCK = re.compile(r"/\* cdef: begin \*/(.*?)/\* cdef: end \*/", re.S)
LOCAL_INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)


def read_cdef(header, seen=None):
    """The declarations of `header` and of the local headers it includes, in order."""
    seen = set() if seen is None else seen
    if header in seen:
        return ""
    seen.add(header)
    with open(os.path.join(HERE, header), encoding="utf-8") as f:
        text = f.read()
    parts = [block for block in CDEF_BLOCK.findall(text)]
    for included in LOCAL_INCLUDE.findall(text):
        parts.append(read_cdef(included, seen))
    return "\n".join(parts)


def compiler_command():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def compiler_accepts(flags, source="int main(void) { return 0; }\n"):
    """True when the C compiler builds a small program with these flags."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            result = subprocess.run(
                compiler_command() + flags + [path, "-o", os.path.join(tmp, "probe")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0


OPENMP_PROBE = """
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def compile_flags():
    if sys.platform == "win32":
        return ["/O2", "/openmp", "/fp:precise"], []
    # -O3 lets the compiler vectorize the kernel bodies for each target() variant;
    # -ffp-contract=off keeps every variant bit-identical to the scalar reference;
    # -fno-math-errno lets sqrt vectorize. No -march: CPU features are picked at run time.
    cflags = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno", "-fvisibility=hidden"]
    ldflags = []
    if os.environ.get("TENSORPRESS_NO_OPENMP"):
        pass
    elif compiler_accepts(["-fopenmp"], OPENMP_PROBE):
        cflags.append("-fopenmp")
        ldflags.append("-fopenmp")
    else:
        print("tensorpress: the C compiler has no OpenMP; kernels will run on one thread", file=sys.stderr)
    return cflags, ldflags


def kernel_sources():
    """Every .c file under csrc/, family folders included (paths relative to the project)."""
    sources = []
    for folder, _, names in os.walk(HERE):
        rel = os.path.relpath(folder, os.path.dirname(HERE))
        sources += [os.path.join(rel, name) for name in names if name.endswith(".c")]
    return sorted(sources)


ffibuilder = FFI()
ffibuilder.cdef(read_cdef("tensorpress.h") + "\n" + read_cdef("tp_pyargs.h"))
_cflags, _ldflags = compile_flags()
ffibuilder.set_source(
    "tensorpress._tensorpress_c",
    '#include "tensorpress.h"\n#include "tp_pyargs.h"\n',
    sources=kernel_sources(),
    include_dirs=["csrc", numpy.get_include()],  # NumPy headers: pyargs.c reads array fields
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
    libraries=[] if sys.platform == "win32" else ["m"],
    optional=True,  # no compiler: the install succeeds and the Numba backend runs instead
    py_limited_api=False,  # pyargs.c reads lists with the full CPython API
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(HERE, "..", "build"), verbose=True)
