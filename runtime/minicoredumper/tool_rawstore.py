"""READ: a raw store's records (docs/FORMATS.md §12) as dump directories, for
mcd: the verbs read a store through a scratch directory of them (--store),
and `mcd store import` writes them into base_dir and marks them imported.
"""

import os
import stat

from .publish_dumpdir import DumpDir, clean_leftovers
from .rawstore import Store, StoreError, unpack_payload

IMPORTED = ".rawstore-imported"  # in base_dir: "<seq %08x> <crc %08x> <name>\n" per record


def read_records(setting, warn):
    """[(Slot, name, [(rel, bytes)])] of the valid records of the store setting
    ({device, slot_size, slots}), oldest first; warn(text) is told of every
    torn or damaged slot, every slot with a bad erase block and every record
    whose payload cannot be unpacked.
    StoreError if the device cannot be read."""
    with Store(setting["device"], setting.get("slot_size", 0), setting.get("slots", 0)) as s:
        for slot in s.scan():
            if slot.state in ("torn", "damaged"):
                warn("%s slot %d: %s record ignored (%s)" % (s.device, slot.index,
                                                             slot.state, slot.why))
            elif slot.state == "bad":
                warn("%s slot %d: skipped (%s)" % (s.device, slot.index, slot.why))
        out = []
        for slot, payload in s.records():
            try:
                name, files = unpack_payload(payload)
            except StoreError as e:
                warn("%s slot %d: record %d ignored (%s)" % (s.device, slot.index,
                                                             slot.sequence, e))
                continue
            out.append((slot, name, files))
        return out


def write_dump(base_dir, name, files, dir_fd=None):
    """The dump directory name in base_dir (whose fd is dir_fd, if open) with
    files, published whole with its integrity record (publish_dumpdir.DumpDir);
    returns its path."""
    dd = DumpDir(base_dir, name, dir_fd)
    try:
        for rel, data in files:
            dd.write_file(rel, data)
        return dd.publish()
    except BaseException:
        dd.discard()
        raise


def as_directories(setting, dest, warn):
    """Every valid record written into dest as a dump directory (for mcd's
    verbs); returns how many."""
    records = read_records(setting, warn)
    for _, name, files in records:
        write_dump(dest, name, files)
    return len(records)


def import_records(setting, base_dir, warn):
    """The records not yet imported written into base_dir, then marked
    imported (IMPORTED, replaced in one rename once they are on disk; pruned
    to the records still in the store).  A record whose directory is there
    already (an import cut short before its mark) is only marked.  base_dir is
    opened as the handler opens it (publish_dumpdir.open_base_dir: created
    0700 if missing, files.Untrusted if someone other than root could change
    it) and used through its fd.  Returns ([new directory paths], number
    already imported)."""
    from .files import replace_file
    from .publish_dumpdir import open_base_dir
    base_fd, _ = open_base_dir(base_dir)
    try:
        clean_leftovers(base_fd, warn)
        marks = read_marks(base_fd)
        records = read_records(setting, warn)
        kept, new, before = {}, [], 0
        for slot, name, files in records:
            key = (slot.sequence, slot.crc)
            if key in marks:
                before += 1
            elif not _is_dir(name, base_fd):
                new.append(write_dump(base_dir, name, files, base_fd))
            kept[key] = marks.get(key, name)
        if kept != marks:
            os.fsync(base_fd)
            text = "".join("%08x %08x %s\n" % (q, c, n) for (q, c), n in sorted(kept.items()))
            replace_file(IMPORTED, text.encode("utf-8", "surrogateescape"), dir_fd=base_fd)
            os.fsync(base_fd)
        return new, before
    finally:
        os.close(base_fd)


def _is_dir(name, dir_fd):
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def read_marks(base_fd):
    """{(sequence, payload crc32): directory name} of the records imported into
    the base_dir whose fd is base_fd."""
    marks = {}
    try:
        fd = os.open(IMPORTED, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=base_fd)
    except FileNotFoundError:
        return marks
    with open(fd, "rb") as f:
        lines = f.read(1 << 20).decode("utf-8", "surrogateescape").splitlines()
    for line in lines:
        parts = line.split(" ", 2)
        try:
            marks[(int(parts[0], 16), int(parts[1], 16))] = parts[2]
        except (IndexError, ValueError):
            continue  # a line not of ours: that record is imported again at most
    return marks


# --- mcd ---------------------------------------------------------------------
def store_setting(args):
    """The store setting mcd reads: --store DEVICE (the config's geometry when
    the config names the same device), else the main config's store; with
    --slot-size.  UserError when there is none."""
    from . import config as C
    from .tool_verbs import UserError
    cfg, _ = C.main_config_or_defaults(args.config or C.DEFAULT_CONFIG, [])
    if args.store:
        setting = dict(cfg.store) if cfg.store and cfg.store["device"] == args.store else {
            "device": args.store}
    elif cfg.store:
        setting = dict(cfg.store)
    else:
        raise UserError("no raw store: the config names none (\"store\"); name one with "
                        "--store DEVICE")
    if args.slot_size:
        setting["slot_size"] = args.slot_size
    return setting


def _warn(text):
    import sys
    print("mcd: %s" % text, file=sys.stderr)


def run_on_store(args):
    """Run the verb of args on the dumps of a raw store (--store), unpacked into
    a scratch directory for it; returns its exit status."""
    from .tool_verbs import TempDir, UserError
    setting = store_setting(args)
    with TempDir("mcd-store.") as scratch:
        try:
            n = as_directories(setting, scratch, _warn)
        except StoreError as e:
            raise UserError("raw store %s" % e) from None
        if not n and not args.matches:
            raise UserError("no valid records in the raw store %s" % setting["device"])
        args.base_dir = scratch
        return args.func(args)


def cmd_store_import(args):
    """mcd store import: the store's new records into base_dir (one line each)."""
    from .tool_verbs import UserError, base_dir
    setting = store_setting(args)
    from .files import Untrusted
    base = base_dir(args)
    try:
        new, before = import_records(setting, base, _warn)
    except StoreError as e:
        raise UserError("raw store %s" % e) from None
    except Untrusted as e:
        raise UserError("base_dir %s refused: %s (it and every directory above it must be "
                        "root's and writable by nobody else)" % (base, e)) from None
    for path in new:
        print("imported %s" % path)
    print("%d record%s imported from %s into %s, %d imported before" % (
        len(new), "" if len(new) == 1 else "s", setting["device"], base, before))
    return 0


def add_store_options(p):
    """--store and --slot-size on an mcd verb's parser p."""
    p.add_argument("--store", metavar="DEVICE",
                   help="the dumps in a raw store (an EEPROM's nvmem file, /dev/mtdN, a "
                        "block device or a file) instead of base_dir")
    p.add_argument("--slot-size", metavar="BYTES", type=int,
                   help="the raw store's slot size (default: the config's store.slot_size, "
                        "else the erase block or 4096)")


def add_store_verb(sub):
    """mcd store import."""
    p = sub.add_parser("store", help="the raw store: import its records into base_dir",
                       description="Work on the raw store the main config names (store), "
                                   "or --store DEVICE.")
    verbs = p.add_subparsers(dest="store_verb", required=True)
    i = verbs.add_parser("import", help="write the records not yet imported into base_dir",
                         description="Write each valid record of the raw store not yet "
                                     "imported into base_dir as an ordinary dump directory, "
                                     "then mark it imported (in base_dir, never on the "
                                     "device); torn records are named and skipped.")
    i.add_argument("--config", help="main config (default /etc/minicoredumper/"
                                    "minicoredumper.cfg.json)")
    i.add_argument("--base-dir", help="where to import to (default: the config's base_dir)")
    add_store_options(i)
    i.set_defaults(func=cmd_store_import)
