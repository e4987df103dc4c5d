"""Forged .tpz files (valid checksums, lying index and parts) raise CorruptDataError, and
nothing else, on the live backend; tests/fuzz/forged_tpz.py makes them.

The run is a subprocess with its address space capped (RLIMIT_AS): a forgery that made the
decoder allocate gigabytes fails there with MemoryError, which the run reports as a finding,
instead of taking the machine down. Within the cap, tracemalloc flags any decode above 64 MiB.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tensorpress as tp

resource = pytest.importorskip("resource")  # RLIMIT_AS: POSIX only

FUZZ = Path(__file__).parent / "fuzz"
# numpy + numba + the JIT'd kernels reach a VmPeak of about 0.7 GB (measured); the bombs ask
# for 2-16 GiB. Two threads keep per-thread stacks and malloc arenas inside the cap.
ADDRESS_SPACE = 2 << 30

RUNNER = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    sys.path.insert(0, {fuzz!r})
    import forged_tpz
    json.dump(forged_tpz.run_all(seed=0, hypothesis_examples=120), sys.stdout)
""")


def run_forgeries():
    env = dict(os.environ, TENSORPRESS_BACKEND=tp.backend, OMP_NUM_THREADS="2",
               NUMBA_NUM_THREADS="2", MALLOC_ARENA_MAX="2")
    code = RUNNER.format(limit=ADDRESS_SPACE, fuzz=str(FUZZ))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_forged_files_raise_corrupt_data_only():
    result = run_forgeries()
    assert result["backend"] == tp.backend
    assert result["files"] > 4000 and result["hypothesis_examples"] == 120
    assert result["findings"] == []


def test_the_runner_reports_what_is_not_corrupt_data(monkeypatch):
    """The check can fail: a decoder that raised ValueError, or allocated 100 MiB, is a finding."""
    sys.path.insert(0, str(FUZZ))
    try:
        import forged_tpz
    finally:
        sys.path.remove(str(FUZZ))
    import numpy as np

    def raises(blob):
        raise ValueError("not CorruptDataError")

    def allocates(blob):
        np.ones(100 << 20, np.uint8)

    assert forged_tpz.outcome(raises, b"").startswith("ValueError")
    assert forged_tpz.outcome(allocates, b"") == "allocated 100 MiB"
    assert forged_tpz.outcome(lambda blob: None, b"") is None


def test_the_address_space_cap_turns_a_bomb_into_a_finding():
    """Under the cap, a 4 GiB allocation fails with MemoryError rather than succeeding."""
    code = textwrap.dedent(f"""
        import resource, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))
        try:
            np.ones(4 << 30, np.uint8)
        except MemoryError:
            print("MemoryError")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "MemoryError"
