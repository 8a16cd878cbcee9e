"""File and stream primitives every program of the package uses: replace a file
in one rename, remove a tree, fsync a directory, read exactly n bytes from a
stream.  Nothing here follows a symbolic link where it writes."""

import os


def replace_file(path, data, mode=0o600):
    """Replace path with data (bytes, or a file object read to its end) in one
    rename: written to path.tmp.<pid> (never through a symlink), fsynced,
    renamed over path.  Readers see the old file or the new one, never a mix;
    whatever fails (writing, or reading data) leaves path as it was and no
    temporary file."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 mode)
    try:
        try:
            os.fchmod(fd, mode)  # whatever the umask
            chunks = iter(lambda: data.read(1 << 20), b"") if hasattr(data, "read") else (data,)
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def fsync_dir(path):
    """fsync the directory path (its entries reach the disk)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path):
    """Remove path and everything below it (OSError if something cannot go)."""
    for root, dirs, files in os.walk(path, topdown=False):
        for f in files:
            os.unlink(os.path.join(root, f))
        for d in dirs:
            os.rmdir(os.path.join(root, d))
    os.rmdir(path)


def iter_exact(read, n, chunk=1 << 20):
    """Chunks of at most `chunk` bytes adding up to exactly n bytes from read;
    EOFError if the stream ends first.  read(k) returns at most k bytes, b""
    at the end: os.read on a pipe, a socket's recv (sockd), a raw file's read."""
    while n > 0:
        b = read(min(n, chunk))
        if not b:
            raise EOFError("the stream ended %d bytes early" % n)
        yield b
        n -= len(b)


def read_exact(read, n, chunk=1 << 20):
    """Exactly n bytes from read (see iter_exact); EOFError if the stream ends first."""
    return b"".join(iter_exact(read, n, chunk))
