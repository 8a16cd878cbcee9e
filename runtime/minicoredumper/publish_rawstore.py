"""PUBLISH: a dump as one record of the raw store (docs/FORMATS.md §12), where
there is no file system to write a dump directory into.

RawDump takes the place of publish_dumpdir.DumpDir for write_artefacts: the
files are kept in memory (their sizes are the budget's, at most one slot),
and publish() writes them to the store as one record, the header last.
"""

import zlib

from .rawstore import Store, entry_size, pack_payload


class RawDump:
    """A dump on its way into a raw store: store is the main config's store
    setting ({device, slot_size, slots}), name the dump directory's name.
    room: the bytes the dump's files may have (the budget).  StoreError if the
    device cannot be opened or its geometry does not fit."""

    live_dumps = False  # a live dumper writes into a directory: there is none

    def __init__(self, store, name):
        self.store = Store(store["device"], store.get("slot_size", 0), store.get("slots", 0),
                           write=True)
        self.name = name
        self.files = []
        self.records = {}  # rel -> (size, crc32), as DumpDir's
        self.room = self.store.room - entry_size("", len(name.encode("utf-8",
                                                                     "surrogateescape")))

    def create(self, rel):
        """A sink for rel (write_external's pieces), kept in memory (at most the
        room: write_sinks.OverBudget beyond it) and added when closed."""
        from .write_sinks import MemorySink

        class Member(MemorySink):
            def close(sink):
                self.write_file(rel, sink.getvalue())
        return Member(self.room)

    def write_file(self, rel, data):
        data = bytes(data)
        self.files.append((rel, data))
        self.records[rel] = (len(data), zlib.crc32(data))

    def publish(self):
        """Write the record (StoreError if it does not fit a slot, OSError from
        the device); returns where it went: "DEVICE slot N record SEQ"."""
        # The summary first (a reader of the payload's head has what happened),
        # then the rest in the order written.
        files = sorted(self.files, key=lambda f: not f[0].startswith("summary."))
        try:
            slot, seq = self.store.write(pack_payload(self.name, files))
        finally:
            self.store.close()
        return "%s slot %d record %d" % (self.store.device, slot, seq)

    def discard(self):
        """Nothing was written: the store is left as it is."""
        try:
            self.store.close()
        except OSError:
            pass  # closed by publish() already

