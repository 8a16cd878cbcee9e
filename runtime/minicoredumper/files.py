"""File and stream primitives every program of the package uses: replace a file
in one rename, remove a tree, read exactly n bytes from a stream, open a
directory whose path nobody but root can change.  Nothing here
follows a symbolic link where it writes or removes: with dir_fd, names are
resolved relative to that directory's fd (openat(2), unlinkat(2), renameat(2)),
so a link planted in the directory never redirects the operation."""

import errno
import os
import stat

# A directory opened to work inside it: never through a symlink in its last component.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40  # symlinks followed while opening a trusted path (the kernel's own limit)
MAX_DEPTH = 64  # remove_tree: directory levels below the top


class Untrusted(Exception):
    """A directory path that someone other than root could change; str() says where."""


def open_dir(name, dir_fd=None):
    """An fd (DIR_FLAGS) of the directory name; OSError (ELOOP for a symlink,
    ENOTDIR for anything else that is not a directory)."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def open_trusted_dir(path, create=None):
    """(fd, made): the directory path opened one component at a time from "/"
    (DIR_FLAGS), and the directories created on the way.  Untrusted unless
    nobody but root (or this process's user) can change what the path names:
    every directory on the way owned by them and writable by nobody else, or,
    for a directory above the last one, sticky (like /tmp: others cannot rename
    or remove what they do not own); path itself never writable by others; a
    symlink on the way followed only when they own it (the rule of the kernel's
    fs.protected_symlinks and of systemd's "unsafe path transition").  create:
    the mode of missing directories, created one by one and checked like the
    others once made (a directory someone else made first is refused); None:
    a missing one is FileNotFoundError.  A relative path starts from the
    working directory.  OSError for what cannot be opened."""
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    owners = {0, os.geteuid()}
    todo = [c for c in reversed(path.split("/")) if c not in ("", ".")]
    fd = open_dir("/")
    where, made, links = "/", [], 0
    try:
        _check_dir(fd, where, owners, not todo)
        while todo:
            name = todo.pop()
            here = os.path.join(where, name)
            try:
                nfd = open_dir(name, fd)
            except FileNotFoundError:
                if create is None:
                    raise
                try:
                    os.mkdir(name, create, dir_fd=fd)
                    made.append(here)
                except FileExistsError:
                    pass  # made meanwhile (a crash beside us): checked below like any
                nfd = open_dir(name, fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise Untrusted("%s is not a directory" % here) from None
                if st.st_uid not in owners:
                    raise Untrusted("%s is a symlink owned by uid %d" % (here, st.st_uid)) \
                        from None
                links += 1
                if links > MAX_LINKS:
                    raise Untrusted("%s: too many symlinks" % path) from None
                target = os.readlink(name, dir_fd=fd)
                todo.extend(c for c in reversed(target.split("/")) if c not in ("", "."))
                if target.startswith("/"):
                    os.close(fd)
                    fd, where = -1, "/"
                    fd = open_dir("/")
                continue
            os.close(fd)
            fd, where = nfd, os.path.normpath(here)
            _check_dir(fd, where, owners, not todo)
        return fd, made
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def _check_dir(fd, where, owners, last):
    st = os.fstat(fd)
    if st.st_uid not in owners:
        raise Untrusted("%s is owned by uid %d" % (where, st.st_uid))
    if st.st_mode & 0o022 and (last or not st.st_mode & stat.S_ISVTX):
        raise Untrusted("%s can be written by %s (mode %04o)"
                        % (where, "others" if st.st_mode & 0o002 else "its group",
                           stat.S_IMODE(st.st_mode)))


def replace_file(path, data, mode=0o600, dir_fd=None):
    """Replace path with data (bytes, or a file object read to its end) in one
    rename: written to path.tmp.<pid> (made anew: never through a symlink or
    into a file that was there), fsynced, renamed over path; with dir_fd, path
    is relative to that directory.  Readers see the old file or the new one,
    never a mix; whatever fails (writing, or reading data) leaves path as it
    was and no temporary file."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        os.unlink(tmp, dir_fd=dir_fd)  # a killed writer's, or a link someone planted
    except FileNotFoundError:
        pass  # the usual case
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 mode, dir_fd=dir_fd)
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
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=dir_fd)
        raise


def remove_tree(name, dir_fd=None, _depth=0):
    """Remove name (relative to dir_fd when given) and everything below it,
    without following a symlink: a symlink is removed itself, never what it
    points to.  OSError if something cannot go (ELOOP deeper than MAX_DEPTH)."""
    try:
        fd = open_dir(name, dir_fd)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        os.unlink(name, dir_fd=dir_fd)  # a file or a symlink: the entry itself
        return
    try:
        if _depth >= MAX_DEPTH:
            raise OSError(errno.ELOOP, "more than %d directory levels" % MAX_DEPTH, name)
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    remove_tree(entry.name, fd, _depth + 1)
                else:
                    os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


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
