"""READ: ELF objects mapped into the crashed process, and their symbols.

A Module is an ELF image found in the process's address space (the executable,
shared libraries, the vDSO): where it is loaded, its program headers as read
from memory, the ranges that hold its identity (ELF header, program headers,
notes: the build-id, the FDO package note) and its PT_DYNAMIC.

Module.file (a MappedFile, or None) is the very file the process mapped,
opened through /proc/PID/map_files/START-END (else /proc/PID/exe) while the
process is still held, never by its path: the path may name another file in
the handler's mount namespace (a chroot, a container), nothing (deleted or
replaced by an upgrade), or a FIFO its owner swapped in.  It is opened
without blocking, must be a regular file with the mapping's inode, and stays
open (one fd per file, at most MAX_FILES per process) until Modules.close().
No file of the crashed process is opened after the release.  Mappings of
files on a file system that may stall (read_process.STALLING_FS) get no file.
The vDSO has no file: its image (at most MAX_IMAGE bytes) is copied from
memory while the process is held, and read as its file (ImageCopy).
Whoever else reads a module's file (a CFI unwinder reading .eh_frame) uses
Module.file.pread(offset, size): bytes within the file, charged to the
crash's ReadBudget (bytes and deadline), b"" once it is spent.

One Module per mapped file, and more only for its loaded copies
(find_modules), at most MAX_MODULES.  Symbols (.symtab, then .dynsym; defined
symbols only) are looked up in that file, once per name, and addresses named
as gdb names them (SymbolFile.nearest), bounded: a symbol or string table
larger than the file or than MAX_TABLE is treated as missing (logged once),
and every file and the crash as a whole read at most MAX_FILE_READ and
MAX_READ bytes before the deadline.
"""

import os
import stat
import time
from bisect import bisect_left

from . import elf as E

# Program headers read from a crashed process's memory, which it may have
# forged: real objects have about a dozen, and the crash path reads every mapping's.
MAX_PHNUM_IN_MEMORY = 256
CHUNK = 64 << 10
E_PAGE = 4096
MAX_FILES = 512  # mapped files kept open per process (the same file once)
MAX_MODULES = 1024  # ELF images per process (one per file, but for loaded copies)
MAX_TABLE = 64 << 20  # bytes of one symbol or string table, beyond: no symbols from it
MAX_FILE_READ = 96 << 20  # bytes read from one file per crash
MAX_READ = 256 << 20  # bytes read from all mapped files per crash
MAX_IMAGE = 64 << 10  # bytes of an image without a file (the vDSO: 2 to 4 pages) copied


class ReadBudget:
    """What reads of mapped files may still cost: bytes (MAX_READ) and time
    (deadline: time.monotonic() value or None).  warn(message) hears, once,
    that it is spent."""

    def __init__(self, limit=MAX_READ, deadline=None, warn=None):
        self.limit = self.left = limit
        self.deadline = deadline
        self.warn = warn or (lambda message: None)
        self.spent = None  # why no more is read

    def take(self, n):
        """True if n more bytes may be read (and counts them)."""
        if self.spent is None:
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.spent = "the deadline passed"
            elif n > self.left:
                self.spent = "the %d-byte cap was reached" % self.limit
            if self.spent is not None:
                self.warn("reads of mapped files (symbols) stopped: %s" % self.spent)
                return False
            self.left -= n
            return True
        return False


class MappedFile:
    """An open file the process mapped: fd, name (for messages), size,
    ino; reads are bounded by the file's size, MAX_FILE_READ and the budget."""

    def __init__(self, fd, name, budget=None):
        st = os.fstat(fd)
        self.fd = fd
        self._start(name, st.st_size, st.st_ino, budget)

    def _start(self, name, size, ino, budget):
        self.name = name
        self.size = size
        self.ino = ino
        self.budget = budget or ReadBudget()
        self.left = MAX_FILE_READ
        self.warned = set()
        self._symbols = None

    def pread(self, offset, size):
        """Up to size bytes at offset (fewer at the end of the file); b"" once
        this file's or the crash's read budget is spent."""
        size = max(0, min(size, self.size - offset))
        if not size:
            return b""
        if size > self.left:
            self.warn("%d MiB read from it" % (MAX_FILE_READ >> 20), "no more is read")
            return b""
        if not self.budget.take(size):
            return b""
        self.left -= size
        try:
            return os.pread(self.fd, size, offset)
        except (OSError, OverflowError):
            return b""  # unreadable: nothing

    def warn(self, what, consequence):
        """Log, once per file and subject, that something in it is not used."""
        if what not in self.warned:
            self.warned.add(what)
            self.budget.warn("%s: %s: %s" % (self.name, what, consequence))

    @property
    def symbols(self):
        """Its SymbolFile."""
        if self._symbols is None:
            self._symbols = SymbolFile(self)
        return self._symbols

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ImageCopy(MappedFile):
    """An ELF image without a file (the vDSO), copied from the process's
    memory while it is held and read as its file: the image is mapped
    whole, so an offset into it is one into the mapping (its .dynsym and
    CFI tables are there, and its section headers)."""

    def __init__(self, data, name, budget=None):
        self.fd = -1
        self.data = data
        self._start(name, len(data), 0, budget)

    def pread(self, offset, size):
        return self.data[offset:offset + max(0, size)] if offset >= 0 else b""


def open_mapped(link, ino, budget, name):
    """A MappedFile of link (/proc/PID/map_files/START-END or /proc/PID/exe,
    magic links that name the mapped file itself, so they are followed), or
    None unless it is a regular file with inode ino.  stat before the open
    (no device is opened), O_NONBLOCK and O_NOCTTY at it, fstat after."""
    try:
        st = os.stat(link)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != ino:
            return None
        fd = os.open(link, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None  # no such link (no map_files here, the process is gone): no file
    try:
        f = MappedFile(fd, name, budget)
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_ino != ino:
        f.close()
        return None
    return f


class Modules(list):
    """The Modules of one process (a list, in address order) and the files
    they were opened with; close() closes those."""

    def __init__(self, budget):
        list.__init__(self)
        self.budget = budget
        self.files = {}  # (dev, ino) -> MappedFile or None
        self._exe = None

    def exe_path(self, procdir):
        """readlink(/proc/PID/exe) (which asks nothing of the file), once."""
        if self._exe is None:
            try:
                self._exe = os.readlink(procdir + "/exe")
            except OSError:
                self._exe = ""  # gone or unreadable: no mapping is the exe
        return self._exe

    def close(self):
        for f in self.files.values():
            if f is not None:
                f.close()
        self.files = {}


class Module:
    """One ELF image mapped in the process."""

    def __init__(self, path, base, layout, ehdr, phdrs, file=None):
        self.path = path  # as shown in maps ("[vdso]" for the vDSO)
        self.base = base  # address of the ELF header in memory
        self.layout = layout
        self.ehdr = ehdr
        self.phdrs = phdrs
        self.file = file  # the mapped file (MappedFile), or None
        loads = [p for p in phdrs if p.type == E.PT_LOAD]
        first = min((p.vaddr for p in loads), default=0) & ~(E_PAGE - 1)
        self.bias = base - first if ehdr.type == E.ET_DYN else 0
        self.build_id = None
        self.package = None  # the .note.package desc (bytes), where there is one

    def identity_ranges(self):
        """(start, size) ranges offline symbolisation needs: ELF header, phdrs, notes."""
        ranges = [(self.base, self.ehdr.ehsize),
                  (self.base + self.ehdr.phoff, self.ehdr.phnum * self.ehdr.phentsize)]
        for p in self.phdrs:
            if p.type == E.PT_NOTE and 0 < p.filesz <= 4096:
                ranges.append((self.bias + p.vaddr, p.filesz))
        return ranges

    def lookup(self, name):
        """(address, size) of the defined symbol `name`, or None."""
        if self.file is None:
            return None
        found = self.file.symbols.lookup(name.encode() if isinstance(name, str) else name)
        if found is None:
            return None
        value, size, stype = found
        if stype == E.STT_TLS:
            return None
        return self.bias + value, size

    def nearest_symbols(self, addrs):
        """SymbolFile.nearest of the module's file for file-relative
        addresses ({} without a file)."""
        return self.file.symbols.nearest(addrs) if self.file is not None else {}


def find_symbol(modules, name):
    """(address, size) of the first module's defined symbol `name`, or None."""
    for m in modules:
        found = m.lookup(name)
        if found:
            return found
    return None


def find_modules(process, mem, deadline=None, warn=None):
    """Every ELF image the process has mapped, in address order (Modules),
    each with its file opened (open_files) while the process is held;
    deadline (time.monotonic()) and warn(message) go to their ReadBudget.

    One module per mapped file (device and inode), the first in address order,
    and another of the same file only where it is loaded: an executable
    mapping of that file within its PT_LOAD span (a dlmopen copy; a stack's PC
    can fall in it).  A file mapped again only to be read (a program that maps
    its own executable 10,000 times) adds nothing for gdb: no module.  At most
    MAX_MODULES modules (warned once)."""
    modules = Modules(ReadBudget(deadline=deadline, warn=warn))
    maps = process.maps
    code = {}  # (dev, inode) -> starts of the file's executable mappings, ascending
    for m in maps:
        if m.inode and m.perms[2:3] == "x":
            code.setdefault((m.dev, m.inode), []).append(m.start)
    files = set()
    for m in maps:
        if m.offset != 0 or not m.readable:
            continue
        if not (m.path.startswith("/") or m.path == "[vdso]"):
            continue
        key = (m.dev, m.inode) if m.inode else None
        starts = code.get(key, ())
        if key in files and bisect_left(starts, m.start) == len(starts):
            continue  # no code of that file from here on: not loaded here
        if len(modules) >= MAX_MODULES:
            modules.budget.warn("more than %d ELF images mapped: no module from %s and "
                                "the mappings after it" % (MAX_MODULES, m.path))
            break
        mod = read_module(mem, m.start, m.path, m)
        if mod is None:
            continue
        if key in files:
            end = max((mod.bias + p.vaddr + p.memsz for p in mod.phdrs
                       if p.type == E.PT_LOAD), default=m.end)
            i = bisect_left(starts, m.start)
            if not starts[i] < end:
                continue  # its code is beyond it: another copy's
        if key is not None:
            files.add(key)
        modules.append(mod)
        if m.inode and not mem.may_stall(m.start):
            mod.file = _open_file(modules, process.dir, m)
        elif m.path == "[vdso]":
            mod.file = _copy_image(modules, mem, m)
    return modules


def _copy_image(modules, mem, mapping):
    """The ImageCopy of the mapping (the vDSO: a few pages), or None beyond
    MAX_IMAGE bytes (said) or unreadable."""
    size = mapping.end - mapping.start
    if size > MAX_IMAGE:
        modules.budget.warn("%s of %d bytes is larger than %d KiB: no symbols from it" % (
            mapping.path, size, MAX_IMAGE >> 10))
        return None
    data = mem.read(mapping.start, size)
    return ImageCopy(data, mapping.path, modules.budget) if data else None


def _open_file(modules, procdir, mapping):
    """The MappedFile of mapping, opened once per file (by device and inode)."""
    key = (mapping.dev, mapping.inode)
    if key in modules.files:
        return modules.files[key]
    if len(modules.files) >= MAX_FILES:
        if len(modules.files) == MAX_FILES:
            modules.budget.warn("more than %d mapped files: no symbols from %s and the "
                                "files after it" % (MAX_FILES, mapping.path))
            modules.files[None] = None  # warned once
        return None
    name = mapping.path
    f = open_mapped("%s/map_files/%x-%x" % (procdir, mapping.start, mapping.end),
                    mapping.inode, modules.budget, name)
    if f is None and name == modules.exe_path(procdir):  # no map_files: the exe at least
        f = open_mapped(procdir + "/exe", mapping.inode, modules.budget, name)
    modules.files[key] = f
    return f


def read_module(mem, base, path, mapping):
    """Parse the ELF header and phdrs at base in memory (within mapping);
    a Module without a file, or None if it is no ELF."""
    span = mapping.end - mapping.start

    def pread(offset, size):
        if offset + size > span:  # only within the mapping that holds the header
            raise E.ElfFormatError("beyond the mapping")
        return mem.read_exact(base + offset, size) or b""

    try:
        L, ehdr, phdrs = E.read_headers(pread, max_phnum=MAX_PHNUM_IN_MEMORY)
    except E.ElfFormatError:
        return None  # not an ELF image we can use: no module at this mapping
    mod = Module(path, base, L, ehdr, phdrs)
    _identity_notes(mem, mod)
    return mod


def _identity_notes(mem, mod):
    """mod.build_id (hex) and mod.package (the FDO packaging metadata note's
    desc, raw bytes: write_summary.parse_package reads it) from the notes
    in the module's PT_NOTE segments, read from memory (each at most 4096
    bytes, as identity_ranges() dumps them)."""
    for p in mod.phdrs:
        if p.type != E.PT_NOTE or not 0 < p.filesz <= 4096:
            continue
        data = mem.read_exact(mod.bias + p.vaddr, p.filesz)
        if data is None:
            continue
        for name, ntype, desc in mod.layout.iter_notes(data):
            if name == b"GNU" and ntype == E.NT_GNU_BUILD_ID and mod.build_id is None:
                mod.build_id = desc.hex()
            elif name == b"FDO" and ntype == E.NT_FDO_PACKAGING_METADATA \
                    and mod.package is None:
                mod.package = desc


class SymbolFile:
    """Symbol lookup in a MappedFile (.symtab first, then .dynsym).  Tables
    that lie beyond the file, or are larger than MAX_TABLE, are missing
    (said once through the file's warn)."""

    def __init__(self, file):
        self.file = file
        self.tables = None
        self.found = {}  # name -> lookup()'s answer
        self.shdrs = []  # the section headers (read_symbols finds the sections)
        self.machine = None

    def load(self):
        """Find the usable symbol tables (.symtab before .dynsym) once."""
        if self.tables is not None:
            return
        self.tables = []
        f = self.file
        try:
            L, ehdr = E.read_ehdr(f.pread)
            shdrs = E.read_section_headers(f.pread, L, ehdr)
        except E.ElfFormatError:
            return  # no section headers we can read: no symbol tables
        self.machine = ehdr.machine
        for want, kind in ((E.SHT_SYMTAB, "symtab"), (E.SHT_DYNSYM, "dynsym")):
            for s in shdrs:
                if s.type != want or s.link >= len(shdrs):
                    continue
                strtab = shdrs[s.link]
                why = self._unusable(s, kind) or self._unusable(strtab, "its string table")
                if why:
                    f.warn(why, "no symbols from it")
                else:
                    self.tables.append((L, s, strtab))
        self.shdrs = shdrs

    def _unusable(self, section, kind):
        """Why a table cannot be used (beyond the file, or too large), or None."""
        if section.offset + section.size > self.file.size:
            return "%s of %d bytes at %d lies beyond the file (%d bytes)" % (
                kind, section.size, section.offset, self.file.size)
        if section.size > MAX_TABLE:
            return "%s of %d bytes is larger than %d MiB" % (kind, section.size,
                                                             MAX_TABLE >> 20)
        return None

    def lookup(self, name):
        """(st_value, st_size, st_type) of the first defined symbol called name
        (None: none); each name is searched for once per file (modules that
        share the file ask again)."""
        if name not in self.found:
            self.load()
            self.found[name] = next((hit for hit in (self._scan(L, symtab, strtab, name)
                                                    for L, symtab, strtab in self.tables)
                                     if hit is not None), None)
        return self.found[name]

    def _scan(self, L, symtab, strtab, name):
        """Chunked search: first the string offsets that read as `name`, then
        the symbols whose st_name is one of them.  Memory stays bounded by
        CHUNK whatever the table sizes; the byte searches run in C."""
        pread = self.file.pread
        want = _find_all(pread, strtab.offset, strtab.size, name + b"\0")
        size = L.sym.size
        for off in want:
            pat = L.u32.pack(off)
            for pos in _find_all(pread, symtab.offset, symtab.size - symtab.size % size, pat):
                if pos % size:  # st_name is the first field of a symbol
                    continue
                raw = pread(symtab.offset + pos, size)
                if len(raw) < size:
                    return None  # the budget is spent
                sym = L.sym.unpack(raw)
                if sym.shndx != E.SHN_UNDEF:
                    return sym.value, sym.size, sym.info & 0xF
        return None

    def nearest(self, addrs, limit=200000):
        """{addr: (name, offset)} for file-relative (link-time) addresses: the
        symbol gdb names each one by (read_symbols, imported only now: after
        the release), offset = addr - its value; addresses gdb names by none
        are left out.  Tables beyond `limit` symbols are skipped (said
        once): the crash path stays bounded."""
        from .read_symbols import nearest
        return nearest(self, addrs, limit)


def _find_all(pread, offset, size, needle):
    """Offsets (relative to offset) of every occurrence of needle in a file
    range, read through pread (which ends the search with b"")."""
    found = []
    overlap = len(needle) - 1
    pos = 0
    while pos < size:
        chunk = pread(offset + pos, min(CHUNK, size - pos))
        if not chunk:
            break
        i = chunk.find(needle)
        while i >= 0:
            found.append(pos + i)
            i = chunk.find(needle, i + 1)
        if len(chunk) <= overlap or pos + len(chunk) >= size:
            break
        pos += len(chunk) - overlap
    return sorted(set(found))
