"""fork() while another thread compiles a Numba kernel (its first call).

Numba compiles under one process-wide lock. A child forked while another thread held it used to
inherit it held by a thread the child does not have, and hang at its own first compile.
tensorpress._numba makes fork() wait for the compile in progress instead. The scenario runs in
a subprocess with an empty Numba cache (so the kernels really compile) and a timeout, so a hang
fails the test instead of blocking the run."""

import os
import subprocess
import sys
import textwrap

import pytest

from tensorpress import _backend

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    pytest.mark.skipif(not _backend.numba_installed(), reason="numba not installed"),
]

CHILD_TIMEOUT = 60  # seconds; compiling the child's kernels takes a few

SCENARIO = textwrap.dedent("""
    import os, signal, sys, threading, time
    import numpy as np
    import tensorpress as tp
    from numba.core.compiler_lock import global_compiler_lock

    assert tp.backend == "numba"
    TIMEOUT = float(sys.argv[1])

    def arrays():
        return [np.ones(8, np.float32) for _ in range(4)]

    # A thread makes the first adam_step call of the process: Numba compiles it, holding the lock.
    compiler = threading.Thread(target=lambda: tp.adam_step(*arrays(), step=1))
    compiler.start()
    lock = global_compiler_lock._lock
    while lock.acquire(blocking=False):  # wait until the thread holds the compiler lock
        lock.release()
        if not compiler.is_alive():
            sys.exit("the thread finished without compiling: is the Numba cache empty?")
        time.sleep(0.001)
    time.sleep(0.1)  # well inside the compile

    pid = os.fork()
    if pid == 0:
        # the child compiles too: the kernel that was compiling, and one never compiled
        tp.adam_step(*arrays(), step=1)
        q, scale = tp.quantize_int8(np.ones((4, 4), np.float32), axis=0)
        os._exit(0 if q[0, 0] == 127 else 1)

    deadline = time.monotonic() + TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("child hung")
            sys.exit(0)
        time.sleep(0.02)
    print("child exit", os.waitstatus_to_exitcode(status))

    # The parent's lock was released too: another thread can still compile a new kernel.
    compiler.join()
    later = threading.Thread(target=lambda: tp.topk_mask(np.arange(10.0, dtype=np.float32), 3))
    later.daemon = True
    later.start()
    later.join(TIMEOUT)
    print("parent compiles", not later.is_alive())
""")


def test_fork_while_another_thread_compiles_a_kernel(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(TENSORPRESS_BACKEND="numba", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    result = subprocess.run([sys.executable, "-c", SCENARIO, str(CHILD_TIMEOUT)], env=env,
                            capture_output=True, text=True, timeout=4 * CHILD_TIMEOUT + 120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["child exit 0", "parent compiles True"], result.stdout
