"""qemu/cpio.py: write a directory tree as a newc ("070701") cpio archive, the format
the kernel unpacks as an initramfs. Every entry is owned by root; device nodes the
build cannot (or need not) create on disk are added by name.
"""

import os
import stat


def _header(ino, mode, nlink, mtime, size, rdev_major, rdev_minor, name):
    fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev_major, rdev_minor,
              len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % v for v in fields)


def _pad(n):
    return b"\0" * ((4 - n % 4) % 4)


def _entry(out, ino, name, mode, mtime, data=b"", rdev=(0, 0), nlink=1):
    head = _header(ino, mode, nlink, int(mtime), len(data), rdev[0], rdev[1], name)
    encoded = name.encode() + b"\0"
    out.write(head + encoded + _pad(len(head) + len(encoded)))
    out.write(data + _pad(len(data)))


def write_tree(root, path, devices=None):
    """Archive root's contents (names relative to root) to path; devices maps
    "/dev/name" to (mode, major, minor)."""
    ino = 1
    with open(path, "wb") as out:
        entries = []
        for r, dirs, files in os.walk(root):
            dirs.sort()
            for n in sorted(dirs + files):
                entries.append(os.path.join(r, n))
        for full in sorted(entries):
            name = os.path.relpath(full, root)
            st = os.lstat(full)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                data = os.readlink(full).encode()
            elif stat.S_ISREG(mode):
                with open(full, "rb") as f:
                    data = f.read()
            elif stat.S_ISDIR(mode):
                data = b""
            else:
                continue
            _entry(out, ino, name, mode, st.st_mtime, data, nlink=2 if stat.S_ISDIR(mode) else 1)
            ino += 1
        for name, (mode, major, minor) in sorted((devices or {}).items()):
            _entry(out, ino, name.lstrip("/"), mode, 0, rdev=(major, minor))
            ino += 1
        _entry(out, 0, "TRAILER!!!", 0, 0)
