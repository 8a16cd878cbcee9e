"""READ: a thread's robust futex list head, through get_robust_list(2).

Kept apart because it needs ctypes, which the crash path imports only when a
recept asks for robust mutex lists.
"""

import ctypes
import os

from .arch import host_arch

_libc = ctypes.CDLL(None, use_errno=True)
_HOST = host_arch(os.uname().machine)


def get_robust_list(tid):
    """The robust list head address of thread tid, or 0 when unknown."""
    if _HOST is None or _HOST.robust_syscall is None:
        return 0
    head = ctypes.c_void_p()
    length = ctypes.c_size_t()
    rc = _libc.syscall(ctypes.c_long(_HOST.robust_syscall), ctypes.c_int(tid),
                       ctypes.byref(head), ctypes.byref(length))
    return head.value or 0 if rc == 0 else 0
