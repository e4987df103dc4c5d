"""Atomic file replacement, shared by every writer of the package (.tpz, .npz, .safetensors).

A writer fills a temporary file in the target's directory, which is then renamed over the
target: a reader sees the old file or the new one, never a part of either.

Where it can (Linux, on file systems that support O_TMPFILE) the temporary has no name while
it is written, so the kernel frees it however the writer dies, SIGKILL included. It gets a name
only once complete, for the instant between link and rename. Elsewhere the temporary is a named
file, `.NAME.<host>-<pid>.<hex>.tmp`; Python removes it on an exception or a signal it sees
(SIGINT, and SIGTERM in the CLI), and one left by a killed writer is removed by the next write
to the same target once no process of that pid is alive.
"""

import contextlib
import errno
import os
import re
import stat
import time
import zlib

# Tests set this False to exercise the named fallback on a system that has O_TMPFILE.
USE_O_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")

# Errors with which a file system refuses O_TMPFILE (older kernels say EISDIR: the flag
# includes O_DIRECTORY).
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}

# A pid means something only on the machine that wrote it (NFS, a volume shared between
# containers): temporaries carry a tag of the host name, and only our host's are judged.
def _host_name():
    if hasattr(os, "uname"):  # POSIX: socket.gethostname() without importing socket (4 ms)
        return os.uname().nodename
    import socket

    return socket.gethostname()


_HOST = format(zlib.crc32(_host_name().encode("utf-8", "surrogateescape")), "08x")

# Temporaries of tensorpress before the pid was in the name: removed once this old.
_LEGACY_AGE = 3600.0


@contextlib.contextmanager
def replacing(path):
    """Yield the path of a temporary file for the caller to write in place (open(tmp, "wb"));
    when the block ends normally, the file gets the mode open() would give `path` (the umask's
    for a new file, the old file's when one is replaced), is fsynced and renamed over `path`,
    and the directory is fsynced. An exception in the block, a crash or a kill leaves any
    previous file at `path` as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(directory, os.path.basename(path))
    fd = _open_unnamed(directory)
    if fd is None:
        with _replacing_named(path, directory) as tmp:
            yield tmp
        return
    linked = None
    try:
        mode = _mode_for(path, os.fstat(fd))
        yield f"/proc/self/fd/{fd}"  # the open fd's file, writable by name
        os.fchmod(fd, mode)
        os.fsync(fd)
        linked = _link(fd, directory, os.path.basename(path))
        os.replace(linked, path)
    except BaseException:
        if linked is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(linked)
        raise
    finally:
        os.close(fd)
    _fsync_directory(directory)


def _open_unnamed(directory):
    """A file descriptor of a new nameless file in `directory` (mode 0o666 less the umask),
    or None where O_TMPFILE is not available."""
    if not USE_O_TMPFILE:
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o666)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise


def _link(fd, directory, base):
    """Give the nameless file of `fd` a temporary name in `directory` and return it."""
    # linkat(AT_SYMLINK_FOLLOW) on /proc's link to the fd. Passing dst_dir_fd is what makes
    # Python call linkat(); without a dir fd it calls link(), which links the /proc symlink
    # itself and fails with EXDEV.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        for _ in range(100):
            tmp = _temporary_name(directory, base)
            try:
                os.link(f"/proc/self/fd/{fd}", os.path.basename(tmp), dst_dir_fd=dir_fd, follow_symlinks=True)
            except FileExistsError:
                continue
            return tmp
    finally:
        os.close(dir_fd)
    raise FileExistsError(f"no free temporary name for {base!r} in {directory!r}")


@contextlib.contextmanager
def _replacing_named(path, directory):
    """replacing() with a named temporary, where O_TMPFILE cannot be used."""
    tmp = _create_named(directory, os.path.basename(path))
    try:
        mode = _mode_for(path, os.stat(tmp))
        yield tmp
        # set after the block: a writer may have recreated the file with its own mode
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDWR)  # some platforms fsync only files open for writing
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _create_named(directory, base):
    """A new empty file beside the target, opened by nobody, and its path. It is created with
    mode 0o666 so the kernel applies the user's umask, as open() would for the final file;
    tempfile.mkstemp's 0o600 would leave every written checkpoint unreadable to the group."""
    for _ in range(100):
        tmp = _temporary_name(directory, base)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name for {base!r} in {directory!r}")


def _mode_for(path, new_file_stat):
    """The mode the written file gets: the replaced file's, else what the umask left of 0o666
    on the new temporary."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return stat.S_IMODE(new_file_stat.st_mode)


def _temporary_name(directory, base):
    return os.path.join(directory, f".{base}.{_HOST}-{os.getpid()}.{os.urandom(6).hex()}.tmp")


def remove_stale_temporaries(directory, base):
    """Remove the temporaries of target `base` in `directory` that killed writers left: those
    of this host whose pid no process has, and those of older tensorpress versions (no pid in
    the name) untouched for an hour. A live writer's temporary, concurrent or in another thread
    of this process, is kept. Best effort: a file that cannot be removed is left."""
    ours = re.compile(rf"\.{re.escape(base)}\.{_HOST}-(\d+)\.[0-9a-f]{{12}}\.tmp")
    legacy = re.compile(rf"\.{re.escape(base)}\.[0-9a-f]{{12}}(\.tmp|\.npz|\.safetensors)")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = ours.fullmatch(entry.name)
        try:
            if (match and not _pid_alive(int(match.group(1)))) or (
                    legacy.fullmatch(entry.name) and time.time() - entry.stat().st_mtime > _LEGACY_AGE):
                os.unlink(entry.path)
        except OSError:
            pass


def _pid_alive(pid):
    if pid == os.getpid():
        return True  # another thread of this process may be writing the same target
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process there
    if pid <= 0:
        return False  # kill(0) would mean our process group; no writer has such a pid
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def _fsync_directory(directory):
    # Makes the rename itself durable; not possible on every platform (Windows), where it is skipped.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
