"""Atomic file replacement, shared by every writer of the package (.tpz, .npz, .safetensors)."""

import contextlib
import os
import secrets
import stat


def _create_temporary(directory, base, suffix):
    """A new empty file beside the target, opened by nobody, and its path. It is created with
    mode 0o666 so the kernel applies the user's umask, as open() would for the final file;
    tempfile.mkstemp's 0o600 would leave every written checkpoint unreadable to the group."""
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name for {base!r} in {directory!r}")


@contextlib.contextmanager
def replacing(path, suffix=".tmp"):
    """Yield the path of a temporary file in `path`'s directory for the caller to write; when
    the block ends normally, the temporary is fsynced and renamed over `path` (keeping the
    permissions of a file already there) and the directory is fsynced. A crash, a full disk or
    an exception in the block leaves any previous file at `path` as it was, and removes the
    temporary."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = _create_temporary(directory, os.path.basename(path), suffix)
    try:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = stat.S_IMODE(os.stat(tmp).st_mode)  # what the umask left of 0o666
        yield tmp
        # set again after the block: a writer may recreate the file (safetensors makes it 0o600)
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
