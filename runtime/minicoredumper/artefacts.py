"""WRITE: artefact files: plain, sparse, compressed, tarred.

A sink takes write(bytes) and skip(n) (n zero bytes: a hole in a plain file,
zeros in a compressed stream).  gzip, xz and bzip2 are built in; zstd when a
module for it is installed; any other compressor name runs that program as a
filter, like the original.  Compression modules are imported only when a
recept names them.
"""

import os

ZEROS = bytes(64 << 10)
TAR_BLOCK = 512


class FileSink:
    """A plain file; skip() leaves holes."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.pos = 0
        self.end = 0

    def write(self, b):
        view = memoryview(b)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.pos += len(b)
        self.end = max(self.end, self.pos)

    def skip(self, n):
        if n > 0:
            self.pos = os.lseek(self.fd, n, os.SEEK_CUR)

    def close(self):
        if self.pos > self.end:  # a trailing hole still counts toward the size
            os.ftruncate(self.fd, self.pos)
        os.fsync(self.fd)
        os.close(self.fd)


class CompressedSink:
    """A compressor object (compress/flush) writing into a FileSink."""

    def __init__(self, path, compressor):
        self.out = FileSink(path)
        self.c = compressor

    def write(self, b):
        data = self.c.compress(b)
        if data:
            self.out.write(data)

    def skip(self, n):
        while n > 0:
            k = min(n, len(ZEROS))
            self.write(ZEROS[:k])
            n -= k

    def close(self):
        self.out.write(self.c.flush())
        self.out.close()


class FilterSink:
    """An external program as a filter: our bytes on its stdin, its stdout to the file."""

    def __init__(self, path, program):
        import subprocess  # only for a non-builtin compressor
        self.out = open(path, "xb")
        os.chmod(path, 0o600)
        self.p = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=self.out,
                                  stderr=subprocess.DEVNULL, close_fds=True)

    def write(self, b):
        self.p.stdin.write(b)

    def skip(self, n):
        while n > 0:
            k = min(n, len(ZEROS))
            self.write(ZEROS[:k])
            n -= k

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait()
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        if rc != 0:
            raise OSError("compressor exited with status %d" % rc)


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


def open_sink(path, compressor):
    """A sink writing path, compressed by `compressor` (None for a plain file)."""
    if not compressor:
        return FileSink(path)
    make = BUILTIN.get(compressor)
    if make is not None:
        try:
            return CompressedSink(path, make())
        except ImportError:
            if compressor != "zstd":
                raise
    return FilterSink(path, compressor)


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


def tar_header(name, size, mtime, mode):
    def octal(v, width):
        return ("%0*o" % (width - 1, v)).encode() + b"\0"

    fields = [
        name.encode()[:100].ljust(100, b"\0"),
        octal(mode, 8), octal(0, 8), octal(0, 8),
        octal(size, 12) if size < 8 ** 11 else _base256(size, 12),
        octal(int(mtime), 12),
        b" " * 8,  # checksum placeholder
        b"0", b"\0" * 100, b"ustar\x0000", b"root".ljust(32, b"\0"), b"root".ljust(32, b"\0"),
        octal(0, 8), octal(0, 8), b"\0" * 155,
    ]
    hdr = b"".join(fields).ljust(TAR_BLOCK, b"\0")
    chk = ("%06o" % sum(hdr)).encode() + b"\0 "
    return hdr[:148] + chk + hdr[156:]


def _base256(v, width):
    return bytes([0x80]) + v.to_bytes(width - 1, "big")


def open_core_sink(dirpath, compression, size, mtime):
    """The sink for the core per the recept's compression block; returns (sink, filename)."""
    comp = compression["compressor"]
    if not comp:
        return FileSink(dirpath + "/core"), "core"
    ext = compression["extension"]
    if compression["in_tar"]:
        name = "core.tar." + ext
        return TarMember(open_sink(dirpath + "/" + name, comp), "core", size, mtime), name
    name = "core." + ext
    return open_sink(dirpath + "/" + name, comp), name
