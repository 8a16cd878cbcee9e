"""WRITE: artefact files: plain, sparse, compressed, tarred.

A sink takes write(bytes) and skip(n) (n zero bytes: a hole in a plain file,
zeros in a compressed stream).  gzip, xz and bzip2 are built in; zstd when a
module for it is installed; any other compressor name runs that program as a
filter, like the original (under a budget, into memory: ProgramCompressor).
Compression modules are imported only when a recept names them.
"""

import os
import zlib

ZEROS = bytes(64 << 10)
TAR_BLOCK = 512
# The POSIX ustar header (pax(1), "ustar Interchange Format"): (field, width)
# in order; numbers are octal digits ending in NUL (base-256 when they do not
# fit, the GNU extension), strings NUL-padded; the header is padded to a block.
USTAR_HEADER = (
    ("name", 100), ("mode", 8), ("uid", 8), ("gid", 8), ("size", 12), ("mtime", 12),
    ("chksum", 8), ("typeflag", 1), ("linkname", 100), ("magic", 6), ("version", 2),
    ("uname", 32), ("gname", 32), ("devmajor", 8), ("devminor", 8), ("prefix", 155),
)


class OverBudget(Exception):
    """A MemorySink was asked to hold more than its limit."""


class FileSink:
    """A plain file; skip() leaves holes.  Tracks size and CRC32 for the
    integrity record; on_close(size, crc) is told when the file is complete.
    dir_fd: path is relative to that directory (publish_dumpdir's)."""

    def __init__(self, path, on_close=None, dir_fd=None):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                          dir_fd=dir_fd)
        self.pos = 0
        self.end = 0
        self.crc = 0
        self.on_close = on_close

    def write(self, b):
        view = memoryview(b)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.crc = zlib.crc32(b, self.crc)
        self.pos += len(b)
        self.end = max(self.end, self.pos)

    def skip(self, n):
        if n > 0:
            self.pos = os.lseek(self.fd, n, os.SEEK_CUR)
            self.crc = crc32_zeros(n, self.crc)

    def close(self):
        if self.pos > self.end:  # a trailing hole still counts toward the size
            os.ftruncate(self.fd, self.pos)
        os.fsync(self.fd)
        os.close(self.fd)
        if self.on_close:
            self.on_close(self.pos, self.crc)


class MemorySink:
    """Bytes kept in memory, at most limit of them (a trial render for a budget)."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.size = 0

    def write(self, b):
        self.size += len(b)
        if self.size > self.limit:
            raise OverBudget(self.size)
        self.parts.append(bytes(b))

    def skip(self, n):
        for z in zero_chunks(n):
            self.write(z)

    def close(self):
        pass

    def getvalue(self):
        return b"".join(self.parts)


def zero_chunks(n):
    """Slices of ZEROS adding up to n zero bytes (none when n <= 0)."""
    while n > 0:
        k = min(n, len(ZEROS))
        yield ZEROS[:k]  # ZEROS itself when k is its length: no copy
        n -= k


def crc32_zeros(n, crc):
    for z in zero_chunks(n):
        crc = zlib.crc32(z, crc)
    return crc


class CompressedSink:
    """A compressor object (compress/flush) writing into another sink."""

    def __init__(self, out, compressor):
        self.out = out
        self.c = compressor

    def write(self, b):
        data = self.c.compress(b)
        if data:
            self.out.write(data)

    def skip(self, n):
        for z in zero_chunks(n):
            self.write(z)

    def close(self):
        self.out.write(self.c.flush())
        self.out.close()

    def abort(self):
        """Give up a render cut short: a compressor program is killed."""
        stop = getattr(self.c, "abort", None)
        if stop:
            stop()


class ProgramCompressor:
    """A compressor program (compress/flush, as the built-in ones) for a trial
    render under a budget: our bytes on its stdin, its stdout into an anonymous
    memory file (memfd) whose size is watched, so that a render past limit bytes
    is given up early (OverBudget) and the program killed.  flush() returns its
    whole output; a non-zero exit raises OSError, as FilterSink does."""

    CHECK_EVERY = 256 << 10  # bytes fed between looks at the output's size

    def __init__(self, program, limit):
        import subprocess  # only for a non-builtin compressor
        self.limit = limit
        self.fd = os.memfd_create("core", os.MFD_CLOEXEC)
        self.fed = 0
        try:
            self.p = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=self.fd,
                                      stderr=subprocess.DEVNULL, close_fds=True)
        except BaseException:
            os.close(self.fd)
            raise

    def _check(self):
        size = os.fstat(self.fd).st_size
        if size > self.limit:
            self.abort()
            raise OverBudget(size)

    def compress(self, b):
        self.p.stdin.write(b)
        self.fed += len(b)
        if self.fed >= self.CHECK_EVERY:
            self.fed = 0
            self._check()
        return b""

    def flush(self):
        self.p.stdin.close()
        rc = self.p.wait()
        if rc != 0:
            self.abort()
            raise OSError("compressor exited with status %d" % rc)
        self._check()
        size = os.fstat(self.fd).st_size
        parts = []
        while size > 0:
            b = os.pread(self.fd, size, sum(map(len, parts)))
            if not b:
                break
            parts.append(b)
            size -= len(b)
        os.close(self.fd)
        self.fd = -1
        return b"".join(parts)

    def abort(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.stdin.close()
        except OSError:
            pass  # a broken pipe: the program is gone
        self.p.wait()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FilterSink:
    """An external program as a filter: our bytes on its stdin, its stdout to the file."""

    def __init__(self, path, program, on_close=None, dir_fd=None):
        import subprocess  # only for a non-builtin compressor
        self.path = path
        self.dir_fd = dir_fd
        self.on_close = on_close
        self.out = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                     0o600, dir_fd=dir_fd), "wb")
        os.fchmod(self.out.fileno(), 0o600)
        self.p = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=self.out,
                                  stderr=subprocess.DEVNULL, close_fds=True)

    def write(self, b):
        self.p.stdin.write(b)

    def skip(self, n):
        for z in zero_chunks(n):
            self.write(z)

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait()
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        if rc != 0:
            raise OSError("compressor exited with status %d" % rc)
        if self.on_close:
            self.on_close(*file_size_crc(self.path, self.dir_fd))


def file_size_crc(path, dir_fd=None):
    """(size, CRC32) of a file (relative to dir_fd when given; a symlink is
    not followed), read in chunks."""
    crc = 0
    size = 0
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd),
                   "rb") as f:
        while True:
            b = f.read(len(ZEROS))
            if not b:
                return size, crc
            crc = zlib.crc32(b, crc)
            size += len(b)


def _gzip():
    import zlib
    return zlib.compressobj(9, zlib.DEFLATED, 31, 8)


# The C modules directly: lzma.py and bz2.py add file-object layers we do not
# use, and their imports cost the crash path about a millisecond.

def _xz():
    import _lzma
    # A small dictionary keeps the encoder's memory within the handler's budget.
    return _lzma.LZMACompressor(_lzma.FORMAT_XZ, _lzma.CHECK_CRC32, None,
                                [{"id": _lzma.FILTER_LZMA2, "preset": 6,
                                  "dict_size": 32 << 10}])


def _bzip2():
    import _bz2
    return _bz2.BZ2Compressor(9)


def _zstd():
    try:
        import zstandard
        return zstandard.ZstdCompressor(level=19).compressobj()
    except ImportError:
        from compression import zstd  # Python 3.14+
        return zstd.ZstdCompressor(level=19)


BUILTIN = {"gzip": _gzip, "xz": _xz, "bzip2": _bzip2, "zstd": _zstd}


def compressor_for(name):
    """A compressor object for a built-in name, or None (run it as a program)."""
    make = BUILTIN.get(name)
    if make is None:
        return None
    try:
        return make()
    except ImportError:
        if name != "zstd":
            raise
        return None


class TarMember:
    """Wrap one file of known size in a ustar archive written to a sink."""

    def __init__(self, sink, name, size, mtime, mode=0o600):
        self.sink = sink
        self.size = size
        sink.write(tar_header(name, size, mtime, mode))

    def write(self, b):
        self.sink.write(b)

    def skip(self, n):
        self.sink.skip(n)

    def close(self):
        self.sink.skip(-self.size % TAR_BLOCK + 2 * TAR_BLOCK)
        self.sink.close()

    def abort(self):
        self.sink.abort()


def tar_header(name, size, mtime, mode):
    """The ustar header of one regular file owned by root."""
    values = {"name": name.encode(), "mode": mode, "uid": 0, "gid": 0, "size": size,
              "mtime": int(mtime), "chksum": b" " * 8,  # spaces while it is summed
              "typeflag": b"0", "magic": b"ustar\0", "version": b"00", "uname": b"root",
              "gname": b"root", "devmajor": 0, "devminor": 0}
    fields = []
    chksum_at = 0
    for field, width in USTAR_HEADER:
        v = values.get(field, b"")
        if isinstance(v, int):
            v = ("%0*o" % (width - 1, v)).encode() + b"\0" if v < 8 ** (width - 1) else \
                bytes([0x80]) + v.to_bytes(width - 1, "big")
        if field == "chksum":
            chksum_at = sum(len(f) for f in fields)
        fields.append(v[:width].ljust(width, b"\0"))
    hdr = b"".join(fields).ljust(TAR_BLOCK, b"\0")
    chk = ("%06o" % sum(hdr)).encode() + b"\0 "
    return hdr[:chksum_at] + chk + hdr[chksum_at + len(chk):]


def core_name(compression):
    """The core artefact's file name for a recept's compression block."""
    if not compression["compressor"]:
        return "core"
    if compression["in_tar"]:
        return "core.tar." + compression["extension"]
    return "core." + compression["extension"]


def core_sink(out, compression, size, mtime):
    """Wrap a raw output sink per the compression block.

    out: a MemorySink (a trial render under a budget; a compressor that is a
    program runs as a ProgramCompressor bounded by its limit) or a FileSink (a
    compressor that is a program is not for it: the caller writes through a
    FilterSink instead, see DumpDir.core_sink).  The sink returned has abort()
    when compressed, for a render cut short."""
    comp = compression["compressor"]
    if not comp:
        return out
    c = compressor_for(comp)
    if c is None:
        c = ProgramCompressor(comp, out.limit)
    sink = CompressedSink(out, c)
    if compression["in_tar"]:
        return TarMember(sink, "core", size, mtime)
    return sink
