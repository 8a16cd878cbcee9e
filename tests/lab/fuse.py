"""A FUSE file system served by a thread of the test, which can stop answering.

Mounted with mount(2) on a directory, through /dev/fuse and the kernel's FUSE
protocol (include/uapi/linux/fuse.h), without libfuse: one read-only file,
FILE_NAME, of FILE_SIZE bytes, every byte from PATTERN.  freeze() makes the
daemon take every request from then on and answer none: a page fault in a
mapping of the file then waits in the kernel for good (what a hung sshfs or
a hostile user's daemon does).  close() aborts the connection (umount2 with
MNT_FORCE: the kernel fails whatever waits with an error) and unmounts.
Needs root (or CAP_SYS_ADMIN) and /dev/fuse; available() says whether they
are there.
"""

import ctypes
import errno
import os
import select
import stat
import struct
import threading

FILE_NAME = "file"
FILE_SIZE = 8 << 20
PATTERN = b"FUSEPAGE"
MNT_FORCE, MNT_DETACH = 1, 2

# Opcodes (enum fuse_opcode).
LOOKUP, FORGET, GETATTR, OPEN, READ, STATFS, RELEASE, FLUSH, INIT = 1, 2, 3, 14, 15, 17, 18, 25, 26
OPENDIR, READDIR, RELEASEDIR, ACCESS, INTERRUPT, DESTROY, BATCH_FORGET = \
    27, 28, 29, 34, 36, 38, 42
NO_REPLY = (FORGET, BATCH_FORGET, INTERRUPT, DESTROY)

IN_HEADER = struct.Struct("<IIQQIIIHH")  # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")  # len error unique
INIT_IN = struct.Struct("<IIII")  # major minor max_readahead flags
INIT_OUT = struct.Struct("<IIIIHHIIHHII24x")  # fuse_init_out, 64 bytes
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # fuse_attr, 88 bytes
ENTRY_OUT = struct.Struct("<QQQQII")  # fuse_entry_out before its fuse_attr
ATTR_OUT = struct.Struct("<QII")  # fuse_attr_out before its fuse_attr
OPEN_OUT = struct.Struct("<QIi")
READ_IN = struct.Struct("<QQII")  # fh offset size read_flags
STATFS_OUT = struct.Struct("<QQQQQIIII24x")  # fuse_kstatfs, 80 bytes
ROOT, FILE = 1, 2
VALID = 1 << 30  # seconds the kernel may keep names and attributes


def available():
    """True if this process can mount a FUSE file system here."""
    return os.geteuid() == 0 and os.path.exists("/dev/fuse")


class FuseMount:
    """The file system mounted on mountpoint, served until close()."""

    def __init__(self, mountpoint):
        self.mountpoint = mountpoint
        self.frozen = threading.Event()
        self.stopping = threading.Event()
        self.reads = 0  # READ requests answered
        self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        self.libc = ctypes.CDLL(None, use_errno=True)
        opts = "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % self.fd
        if self.libc.mount(b"mcdtest", mountpoint.encode(), b"fuse.mcdtest", 0,
                           opts.encode()) != 0:
            e = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(e, "mount fuse on %s: %s" % (mountpoint, os.strerror(e)))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def path(self):
        return os.path.join(self.mountpoint, FILE_NAME)

    def freeze(self):
        """From now on no request gets an answer."""
        self.frozen.set()

    def close(self):
        """Abort the connection (what waits for it fails) and unmount (once)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.libc.umount2(self.mountpoint.encode(), MNT_FORCE)  # aborts the connection
        self.libc.umount2(self.mountpoint.encode(), MNT_DETACH)
        self.thread.join(5)
        os.close(self.fd)

    # --- the daemon ----------------------------------------------------------
    def _serve(self):
        poll = select.poll()
        poll.register(self.fd, select.POLLIN)
        while not self.stopping.is_set():
            if not poll.poll(100):
                continue
            try:
                req = os.read(self.fd, 1 << 20)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                    continue  # a request taken back meanwhile
                return  # ENODEV: unmounted or aborted
            _, opcode, unique, nodeid = IN_HEADER.unpack_from(req)[:4]
            if opcode in NO_REPLY or (self.frozen.is_set() and opcode != INIT):
                continue
            error, body = self._answer(opcode, nodeid, req[IN_HEADER.size:])
            try:
                os.write(self.fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, unique)
                         + body)
            except OSError:
                pass  # the request was interrupted meanwhile: nobody waits for it

    def _answer(self, opcode, nodeid, arg):
        """(errno, reply body) of one request."""
        if opcode == INIT:
            major, minor, readahead, _ = INIT_IN.unpack_from(arg)
            return 0, INIT_OUT.pack(7, min(minor, 31), readahead, 0, 16, 12, 128 << 10, 1,
                                    32, 0, 0, 0)
        if opcode == LOOKUP:
            if arg.split(b"\0", 1)[0] != FILE_NAME.encode() or nodeid != ROOT:
                return errno.ENOENT, b""
            return 0, ENTRY_OUT.pack(FILE, 1, VALID, VALID, 0, 0) + self._attr(FILE)
        if opcode == GETATTR:
            return 0, ATTR_OUT.pack(VALID, 0, 0) + self._attr(nodeid)
        if opcode in (OPEN, OPENDIR):
            return 0, OPEN_OUT.pack(nodeid, 0, 0)
        if opcode == READ:
            _, offset, size, _ = READ_IN.unpack_from(arg)
            size = max(0, min(size, FILE_SIZE - offset))
            start = offset % len(PATTERN)
            data = (PATTERN * ((size + start) // len(PATTERN) + 1))[start:start + size]
            self.reads += 1
            return 0, data
        if opcode == STATFS:
            return 0, STATFS_OUT.pack(0, 0, 0, 0, 0, 4096, 255, 4096, 0)
        if opcode in (READDIR, RELEASE, RELEASEDIR, FLUSH, ACCESS):
            return 0, b""
        return errno.ENOSYS, b""

    @staticmethod
    def _attr(nodeid):
        if nodeid == FILE:
            return ATTR.pack(FILE, FILE_SIZE, FILE_SIZE // 512, 0, 0, 0, 0, 0, 0,
                             stat.S_IFREG | 0o444, 1, 0, 0, 0, 4096, 0)
        return ATTR.pack(ROOT, 0, 0, 0, 0, 0, 0, 0, 0, stat.S_IFDIR | 0o755, 2, 0, 0, 0,
                         4096, 0)
