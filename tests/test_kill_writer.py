"""Writers killed at random moments (SIGKILL, SIGTERM) leave the target whole and no temporary.

Each writer is a subprocess that rewrites its targets in a loop, alternating two versions of the
tensors, until it is killed at a random moment of it. After each kill the target must be the
complete old or new file (it loads, its checksums pass, its tensors equal one version), and no
temporary may be left: none can be with O_TMPFILE; with the named fallback (forced here) the
next write removes what a SIGKILL left, and the CLI removes its own on SIGTERM."""

import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

import tensorpress as tp
from tensorpress import _atomic, _backend, checkpoints

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

needs_tmpfile = pytest.mark.skipif(not _atomic.USE_O_TMPFILE, reason="no O_TMPFILE here")

# The writing under test is the same on both backends; the C backend's children start in 0.2 s
# where Numba's take 1.4 s (JIT cache), which would triple the test's time.
CHILD_ENV = dict(os.environ, TENSORPRESS_BACKEND="c" if "c" in _backend.available_backends() else "numba")

SAVE_CHILD = """
import os, sys
import numpy as np
import tensorpress as tp
from tensorpress import _atomic
target, named = sys.argv[1], sys.argv[2] == "named"
_atomic.USE_O_TMPFILE = not named
versions = [dict(np.load(path)) for path in sys.argv[3:5]]
print("ready", flush=True)
sys.stdin.readline()  # "go": the imports are done before the hunt starts
i = 0
while True:
    tp.save(target, versions[i % 2], threads=1)
    i += 1
"""

CLI_CHILD = """
import os, sys
from tensorpress import _atomic, cli
named, d = sys.argv[1] == "named", sys.argv[2]
_atomic.USE_O_TMPFILE = not named
jobs = [[cmd, os.path.join(d, src), "-o", os.path.join(d, out)] for version in "ab"
        for cmd, src, out in [("compress", version + ".npz", "out.tpz"),
                              ("decompress", version + ".tpz", "out.safetensors"),
                              ("decompress", version + ".tpz", "out.npz")]]
print("ready", flush=True)
sys.stdin.readline()  # "go": the imports are done before the hunt starts
sys.stdout = open(os.devnull, "w")  # a full pipe would stall the writer instead of the kill
while True:
    for argv in jobs:
        status = cli.main(argv)
        if status:
            sys.exit(status)
"""


def versions(seed):
    """Two different checkpoints of 2 MB of float32 weights."""
    rng = np.random.default_rng(seed)
    return [{f"layer{i}.weight": rng.standard_normal((256, 512), dtype=np.float32) for i in range(4)}
            for _ in range(2)]


class Hunt:
    """Runs writer subprocesses in `directory` and kills each at a random moment."""

    def __init__(self, directory, keep, seed):
        self.directory, self.keep, self.rnd = directory, set(keep), random.Random(seed)
        self.kills = {"SIGKILL": 0, "SIGTERM": 0}
        self.left_after_kill = {"SIGKILL": 0, "SIGTERM": 0}

    def leftovers(self):
        return sorted(set(os.listdir(self.directory)) - self.keep)

    def run(self, argv, kills, after_each):
        """Start a writer `kills` times, kill it (SIGKILL, SIGTERM in turn), call after_each(i)."""
        child = self.spawn(argv)
        try:
            for i in range(kills):
                # the next writer imports while this one is hunted; it waits for "go"
                following = self.spawn(argv) if i + 1 < kills else None
                self.kill(child, signal.SIGKILL if i % 2 == 0 else signal.SIGTERM)
                child = following
                after_each(i)
        finally:
            if child is not None:
                child.kill()
                child.communicate()

    def spawn(self, argv):
        return subprocess.Popen([sys.executable, "-c", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=CHILD_ENV)

    def kill(self, child, sig):
        if child.stdout.readline() != "ready\n":
            child.kill()
            pytest.fail(f"writer did not start: {child.communicate()[1]}")
        child.stdin.write("go\n")
        child.stdin.flush()
        # Writes follow each other without a pause: a random moment is nearly always in one.
        try:
            child.wait(timeout=self.rnd.uniform(0.05, 0.3))
        except subprocess.TimeoutExpired:
            pass
        else:
            pytest.fail(f"writer stopped by itself: {child.communicate()[1]}")
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=60)
        # killed by the signal, or (the CLI, SIGTERM) exited with 143 after cleaning up
        assert child.returncode in (-sig, 128 + sig), (child.returncode, stderr)
        assert "Traceback" not in stderr, stderr
        name = signal.Signals(sig).name
        self.kills[name] += 1
        self.left_after_kill[name] += len(self.leftovers())


def assert_one_of(got, candidates, what):
    assert sorted(got) == sorted(candidates[0]), what
    for candidate in candidates:
        if all(np.array_equal(got[name], candidate[name]) for name in candidate):
            return
    pytest.fail(f"{what} is neither the old nor the new version")


def save_hunt(tmp_path, named, seed, kills, monkeypatch):
    a, b = versions(seed)
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    expected = [tp.decompress(tp.compress(v, threads=1)) for v in (a, b)]
    target = tmp_path / "model.tpz"
    tp.save(target, a)
    monkeypatch.setattr(_atomic, "USE_O_TMPFILE", not named)  # the parent's "next write" too
    hunt = Hunt(tmp_path, ["a.npz", "b.npz", "model.tpz"], seed)
    argv = [SAVE_CHILD, str(target), "named" if named else "tmpfile", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]

    def check(i):
        assert_one_of(tp.load(target), expected, f"model.tpz after kill {i}")
        tp.save(target, a)  # the next write: removes what a killed writer left (named fallback)
        assert hunt.leftovers() == [], f"after kill {i} and the next write"

    hunt.run(argv, kills, check)
    print(f"\ntp.save {'named fallback' if named else 'O_TMPFILE'}: kills {hunt.kills}, "
          f"temporaries left right after them {hunt.left_after_kill}, after the next write 0")
    return hunt


@needs_tmpfile
def test_killed_save_leaves_no_temporary_with_o_tmpfile(tmp_path, monkeypatch):
    hunt = save_hunt(tmp_path, named=False, seed=1, kills=10, monkeypatch=monkeypatch)
    # None can be left, but for a kill in the microseconds between link and rename.
    assert sum(hunt.left_after_kill.values()) <= 1, hunt.left_after_kill


def test_killed_save_with_named_temporaries_is_cleaned_by_the_next_write(tmp_path, monkeypatch):
    hunt = save_hunt(tmp_path, named=True, seed=2, kills=10, monkeypatch=monkeypatch)
    # The named fallback does leave temporaries (the library has no SIGTERM handler): the
    # hunt sees them, and save_hunt checked that the next write removed every one.
    assert hunt.left_after_kill["SIGKILL"] >= 1, hunt.left_after_kill


@pytest.mark.parametrize("named", [False, True], ids=["O_TMPFILE", "named"])
def test_killed_cli_leaves_whole_files_and_no_temporary(tmp_path, monkeypatch, named):
    if not named and not _atomic.USE_O_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    pytest.importorskip("safetensors")
    a, b = versions(3)
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    tp.save(tmp_path / "a.tpz", a)
    tp.save(tmp_path / "b.tpz", b)
    expected = [tp.decompress(tp.compress(v, threads=1)) for v in (a, b)]
    targets = ["out.tpz", "out.safetensors", "out.npz"]
    tp.save(tmp_path / "out.tpz", a)
    for out in targets[1:]:
        checkpoints.write(tmp_path / out, expected[0])
    monkeypatch.setattr(_atomic, "USE_O_TMPFILE", not named)
    hunt = Hunt(tmp_path, ["a.npz", "b.npz", "a.tpz", "b.tpz", *targets], seed=4)

    def check(i):
        for out in targets:
            assert_one_of(checkpoints.read(tmp_path / out), expected, f"{out} after kill {i}")
        tp.save(tmp_path / "out.tpz", a)  # the next write of each target
        for out in targets[1:]:
            checkpoints.write(tmp_path / out, expected[0])
        assert hunt.leftovers() == [], f"after kill {i} and the next write"

    hunt.run([CLI_CHILD, "named" if named else "tmpfile", str(tmp_path)], 6, check)
    print(f"\nCLI {'named fallback' if named else 'O_TMPFILE'}: kills {hunt.kills}, "
          f"temporaries left right after them {hunt.left_after_kill}, after the next write 0")
    # SIGTERM unwinds main() and removes the temporary (but for a kill in the instant between
    # creating it and entering the block that removes it); with O_TMPFILE nothing is ever left.
    assert hunt.left_after_kill["SIGTERM"] <= 1, hunt.left_after_kill
    if not named:
        assert hunt.left_after_kill["SIGKILL"] <= 1, hunt.left_after_kill


def test_a_live_writers_temporary_is_kept(tmp_path):
    """Concurrent writers: only temporaries of dead writers of this host are removed."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".m.tpz.{_atomic._HOST}-{sleeper.pid}.0123456789ab.tmp"
        other_host = tmp_path / f".m.tpz.00000000-{sleeper.pid + 1}.0123456789ab.tmp"
        other_target = tmp_path / f".n.tpz.{_atomic._HOST}-{sleeper.pid}.0123456789ab.tmp"
        for path in (live, other_host, other_target):
            path.write_bytes(b"partial")
        tp.save(tmp_path / "m.tpz", {"w": np.ones(3, np.float32)})
        assert live.exists() and other_host.exists() and other_target.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    tp.save(tmp_path / "m.tpz", {"w": np.ones(3, np.float32)})
    assert not live.exists()  # its writer is gone now
    assert other_host.exists() and other_target.exists()


def test_old_temporaries_without_a_pid_are_removed_when_an_hour_old(tmp_path):
    old, recent = tmp_path / ".m.npz.0123456789ab.npz", tmp_path / ".m.npz.ba9876543210.tmp"
    for path in (old, recent):
        path.write_bytes(b"partial")
    os.utime(old, (0, 0))
    checkpoints.write(tmp_path / "m.npz", {"w": np.ones(3)})
    assert not old.exists() and recent.exists()


def test_a_refused_o_tmpfile_falls_back_to_a_named_temporary(tmp_path, monkeypatch):
    real_open = os.open

    def no_tmpfile(path, flags, *args, **kwargs):
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise OSError(95, "Operation not supported", path)  # EOPNOTSUPP, as on some file systems
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_tmpfile)
    seen = []
    with _atomic.replacing(tmp_path / "m.tpz") as tmp:
        seen.append(os.path.basename(tmp))
        with open(tmp, "wb") as f:
            f.write(b"data")
    assert seen[0].startswith(".m.tpz.") and seen[0].endswith(".tmp")
    assert (tmp_path / "m.tpz").read_bytes() == b"data" and os.listdir(tmp_path) == ["m.tpz"]


def test_sigterm_unwinds_the_cli_and_restores_the_handler(tmp_path, monkeypatch):
    """In-process and deterministic: SIGTERM arrives after the first record is written."""
    from tensorpress import cli, pipeline

    monkeypatch.setattr(_atomic, "USE_O_TMPFILE", False)  # a temporary with a name, to see it go
    np.savez(tmp_path / "in.npz", a=np.ones((64, 64), np.float32), b=np.ones((64, 64), np.float32))
    real_iter_records = pipeline.iter_records

    def terminated_after_one(*args, **kwargs):
        for i, record in enumerate(real_iter_records(*args, **kwargs)):
            if i == 1:
                assert len(os.listdir(tmp_path)) == 2  # the input and the temporary
                os.kill(os.getpid(), signal.SIGTERM)
            yield record

    monkeypatch.setattr(pipeline, "iter_records", terminated_after_one)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["compress", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.tpz")]) == 143
    assert os.listdir(tmp_path) == ["in.npz"]
    assert signal.getsignal(signal.SIGTERM) is before
