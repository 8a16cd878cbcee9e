"""Linux kernel ABI structs and constants, described once.

The structs take the ELF class and byte order of a formats.elf.Layout
(structs(layout)); the sources are the kernel's UAPI headers, named at each
table.  Signal numbers are those of asm-generic, which x86, arm and arm64 use
(alpha, mips, parisc and sparc number some signals differently).
"""

import struct

from .elf import ELFCLASS32, ELFCLASS64, StructType

# include/uapi/asm-generic/siginfo.h: siginfo_t starts {int si_signo; int
# si_errno; int si_code; union __sifields _sifields;}.  The union holds
# pointers, so it is word-aligned: at 16 on 64-bit, 12 on 32-bit.  For the
# fault signals (_sigfault) its first member is void __user *si_addr.  The
# NT_SIGINFO note holds the whole siginfo_t (128 bytes); this is its head.
SIGINFO_FIELDS = ("signo", "errno", "code", "addr")
# arch/x86/include/uapi/asm/ldt.h (<asm/ldt.h>): struct user_desc {unsigned
# int entry_number; unsigned int base_addr; unsigned int limit; unsigned int
# seg_32bit:1, contents:2, ... (bit fields in one word: "flags" here);}.
# NT_386_TLS holds one per TLS slot of the GDT.
USER_DESC_FIELDS = ("entry_number", "base_addr", "limit", "flags")
# include/uapi/linux/futex.h: struct robust_list_head {struct robust_list
# list (its one member: struct robust_list *next); long futex_offset; struct
# robust_list *list_op_pending;}, registered by set_robust_list(2).
ROBUST_LIST_HEAD_FIELDS = ("list", "futex_offset", "list_op_pending")

_FORMATS = {
    ELFCLASS64: {"siginfo": "iii4xQ", "user_desc": "IIII", "robust_list_head": "QqQ"},
    ELFCLASS32: {"siginfo": "iiiI", "user_desc": "IIII", "robust_list_head": "IiI"},
}

# The signals whose default action dumps core (signal(7)), as number: (name,
# whether siginfo carries the fault address: the _sigfault signals of
# siginfo.h, SIGILL SIGTRAP SIGBUS SIGFPE SIGSEGV).
SIGNALS = {
    3: ("SIGQUIT", False),
    4: ("SIGILL", True),
    5: ("SIGTRAP", True),
    6: ("SIGABRT", False),
    7: ("SIGBUS", True),
    8: ("SIGFPE", True),
    11: ("SIGSEGV", True),
    24: ("SIGXCPU", False),
    25: ("SIGXFSZ", False),
    31: ("SIGSYS", False),
}
SIGNAL_NAMES = {n: name for n, (name, _) in SIGNALS.items()}
FAULT_SIGNALS = frozenset(n for n, (_, fault) in SIGNALS.items() if fault)


class Structs:
    """The kernel structs of one ELF class and byte order."""

    def __init__(self, layout):
        f = _FORMATS[layout.elfclass]
        bo = layout.byteorder
        self.siginfo = StructType(bo + f["siginfo"], SIGINFO_FIELDS)
        self.user_desc = StructType(bo + f["user_desc"], USER_DESC_FIELDS)
        self.robust_list_head = StructType(bo + f["robust_list_head"], ROBUST_LIST_HEAD_FIELDS)


_structs = {}


def structs(layout):
    """The Structs for a Layout's class and byte order (made once)."""
    key = (layout.elfclass, layout.data)
    s = _structs.get(key)
    if s is None:
        s = _structs[key] = Structs(layout)
    return s


# struct ucred (include/linux/socket.h): SO_PEERCRED and SCM_CREDENTIALS.
UCRED = struct.Struct("=iII")  # pid_t pid; uid_t uid; gid_t gid
