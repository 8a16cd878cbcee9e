"""The Linux kernel's ABI as the runtime needs it, described once.

Per architecture, keyed by ELF e_machine (ARCHES): the NT_PRSTATUS layout,
register names, SP/PC/LR/FP, red zone, TLS and the signal frame (SigFrame).  Nothing else in the runtime
branches on the architecture; it looks the facts up here.  Shared by all
architectures: the structs and constants below.

The structs take the ELF class and byte order of a formats.elf.Layout
(structs(layout)); the sources are the kernel's UAPI headers, named at each
table.  Signal numbers are those of asm-generic, which x86, arm and arm64 use
(alpha, mips, parisc and sparc number some signals differently).
"""

import struct

from .elf import ELFCLASS32, ELFCLASS64, NT_386_TLS, NT_ARM_TLS, StructType

# include/uapi/asm-generic/siginfo.h: siginfo_t starts {int si_signo; int
# si_errno; int si_code; union __sifields _sifields;}.  The union holds
# pointers, so it is word-aligned: at 16 on 64-bit, 12 on 32-bit.  For the
# fault signals (_sigfault) its first member is void __user *si_addr.  The
# NT_SIGINFO note holds the whole siginfo_t (128 bytes); this is its head.
SIGINFO_FIELDS = ("signo", "errno", "code", "addr")
# The same union for a signal a process sent (_kill: kill(2), tgkill(2),
# sigqueue(3)): {pid_t si_pid; uid_t si_uid; ...}.
SIGINFO_KILL_FIELDS = ("signo", "errno", "code", "pid", "uid")
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
    ELFCLASS64: {"siginfo": "iii4xQ", "siginfo_kill": "iii4xiI", "user_desc": "IIII",
                 "robust_list_head": "QqQ"},
    ELFCLASS32: {"siginfo": "iiiI", "siginfo_kill": "iiiiI", "user_desc": "IIII",
                 "robust_list_head": "IiI"},
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

# si_code (include/uapi/asm-generic/siginfo.h): <= 0 (and SI_KERNEL) for any
# signal, who raised it; > 0 the reason the kernel raised a fault signal.
SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
            -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL", -7: "SI_DETHREAD",
            -8: "SI_ASYNCNL"}
# The codes whose siginfo names the sender (_kill): kill(2), sigqueue(3), tgkill(2).
SENDER_CODES = frozenset((0, -1, -6))
FAULT_CODES = {
    4: ("ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC", "ILL_PRVREG",
        "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"),
    5: ("TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"),
    7: ("BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"),
    8: ("FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND", "FPE_FLTRES",
        "FPE_FLTINV", "FPE_FLTSUB", None, None, None, None, None, "FPE_FLTUNK",
        "FPE_CONDTRAP"),
    11: ("SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR", "SEGV_ACCADI",
         "SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR", "SEGV_CPERR"),
    31: ("SYS_SECCOMP", "SYS_USER_DISPATCH"),
}


def si_code_name(signo, code):
    """The name of si_code for signal signo ("SEGV_MAPERR", "SI_USER"), or None."""
    if code is None:
        return None
    if code > 0 and code != 0x80:
        names = FAULT_CODES.get(signo, ())
        return names[code - 1] if code <= len(names) else None
    return SI_CODES.get(code)

# fs/proc/base.c (lnames, proc_pid_limits): the row names of /proc/PID/limits,
# in RLIMIT_* order (include/uapi/asm-generic/resource.h), each with its
# RLIMIT_ name in lower case without the prefix (as prlimit(1) names them).
# A row is "%-25s %-20s %-20s %-10s": name, soft, hard ("unlimited" or a
# decimal), units.
RLIMIT_ROWS = {
    "Max cpu time": "cpu", "Max file size": "fsize", "Max data size": "data",
    "Max stack size": "stack", "Max core file size": "core", "Max resident set": "rss",
    "Max processes": "nproc", "Max open files": "nofile", "Max locked memory": "memlock",
    "Max address space": "as", "Max file locks": "locks", "Max pending signals": "sigpending",
    "Max msgqueue size": "msgqueue", "Max nice priority": "nice",
    "Max realtime priority": "rtprio", "Max realtime timeout": "rttime",
}


class Structs:
    """The kernel structs of one ELF class and byte order."""

    def __init__(self, layout):
        f = _FORMATS[layout.elfclass]
        bo = layout.byteorder
        self.siginfo = StructType(bo + f["siginfo"], SIGINFO_FIELDS)
        self.siginfo_kill = StructType(bo + f["siginfo_kill"], SIGINFO_KILL_FIELDS)
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

# include/uapi/mtd/mtd-abi.h: struct mtd_info_user {__u8 type; __u32 flags;
# __u32 size; __u32 erasesize; __u32 writesize; __u32 oobsize; __u64 padding;}
# and struct erase_info_user {__u32 start; __u32 length;}, in the C layout of
# the machine we run on (native alignment: 32 bytes on x86_64 and arm, 28 on
# i386), and the ioctls that take them: _IOR('M', 1, ...) and _IOW('M', 2, ...).
MTD_INFO_USER = struct.Struct("@BIIIIIQ")
MTD_INFO_FIELDS = ("type", "flags", "size", "erasesize", "writesize", "oobsize")
ERASE_INFO_USER = struct.Struct("@II")
MEMGETINFO = (2 << 30) | (MTD_INFO_USER.size << 16) | (ord("M") << 8) | 1
MEMERASE = (1 << 30) | (ERASE_INFO_USER.size << 16) | (ord("M") << 8) | 2
MTD_NANDFLASH, MTD_MLCNANDFLASH = 4, 8  # mtd_info_user.type of the NAND kinds
# MEMGETBADBLOCK, MEMSETBADBLOCK: _IOW('M', 11 and 12, __kernel_loff_t), the erase
# block's offset; MEMGETBADBLOCK's return value is 1 for a bad block.
LOFF_T = struct.Struct("=q")
MEMGETBADBLOCK = (1 << 30) | (LOFF_T.size << 16) | (ord("M") << 8) | 11
MEMSETBADBLOCK = (1 << 30) | (LOFF_T.size << 16) | (ord("M") << 8) | 12




# mm/mmap.c: stack_guard_gap = 256UL << PAGE_SHIFT (boot option stack_guard_gap=):
# no mapping is placed this close below a stack that grows down, so a stack pointer
# in that gap is the stack's own overflow.
STACK_GUARD_GAP_PAGES = 256


class SigFrame:
    """Where a signal handler's frame keeps the context it interrupted.

    When the kernel runs a handler it pushes a frame below the interrupted SP
    (or at the top of the sigaltstack, SA_ONSTACK), and the handler's SP on entry
    is the frame's start: struct rt_sigframe (SA_SIGINFO, and always on x86_64
    and aarch64) or the older struct sigframe (i386, arm).  Both hold a struct
    sigcontext with the interrupted registers; rt frames inside a struct ucontext.

    rt_ucontext: offset of struct ucontext in struct rt_sigframe.
    uc_mcontext: offset of uc_mcontext (struct sigcontext) in struct ucontext.
    plain_sigcontext: offset of struct sigcontext in struct sigframe, or None
    where the kernel pushes only rt frames.
    regs: the interrupted registers' offsets in struct sigcontext, {name: offset},
    each one word; sp and pc name two of them.
    align: the alignment of struct sigcontext in memory.
    anchor: fields that every sigcontext the kernel writes holds, at
    (offset in struct sigcontext, bytes, value): the value an int, or a name of
    Arch.regs meaning that register's value in NT_PRSTATUS (segment registers
    do not change between the interrupted code and the handler); consecutive
    fields, searched for as one byte string.  anchors: the anchor's possible
    offsets (more than one where an optional record may come first).
    check: more such fields, compared after the anchor matched.
    mode: (register name, mask, value): the interrupted status register shows
    user mode.
    """

    def __init__(self, rt_ucontext, uc_mcontext, plain_sigcontext, regs, sp, pc, align,
                 anchor, anchors=(0,), check=(), mode=None):
        self.rt_ucontext = rt_ucontext
        self.uc_mcontext = uc_mcontext
        self.plain_sigcontext = plain_sigcontext
        self.regs = regs
        self.sp = sp
        self.pc = pc
        self.align = align
        self.anchor = anchor
        self.anchors = anchors
        self.check = check
        self.mode = mode
        # bytes of struct sigcontext read to check it and take the registers
        self.size = max(max(regs.values()) + 8, max(o + n for o, n, _ in anchor + check)
                        + max(anchors))


def _offsets(names, start, step):
    return {n: start + i * step for i, n in enumerate(names)}


# arch/x86/include/asm/sigframe.h: struct rt_sigframe {char __user *pretcode;
# struct ucontext uc; struct siginfo info; ...}; ucontext (include/uapi/asm-generic/
# ucontext.h) {unsigned long uc_flags; struct ucontext *uc_link; stack_t uc_stack;
# struct sigcontext uc_mcontext; ...}; arch/x86/include/uapi/asm/sigcontext.h:
# struct sigcontext_64 {r8 ... r15, di, si, bp, bx, dx, ax, cx, sp, ip, flags (u64);
# u16 cs, gs, fs, ss; ...}.  arch/x86/kernel/signal_64.c (setup_sigcontext) writes cs
# and ss from the registers and gs = fs = 0.
_X86_64_SIGFRAME = SigFrame(
    8, 40, None,
    _offsets(("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp",
              "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags"), 0, 8),
    "rsp", "rip", 8, anchor=((144, 2, "cs"), (146, 2, 0), (148, 2, 0), (150, 2, "ss")))
# i386, and i386 processes on x86_64 (ia32 emulation, the same layout):
# arch/x86/include/asm/sigframe.h: struct sigframe{,_ia32} {pretcode; int sig;
# struct sigcontext sc; ...}, struct rt_sigframe{,_ia32} {pretcode; int sig; pinfo;
# puc; siginfo (128 bytes); struct ucontext uc; ...}; ucontext {uc_flags; uc_link;
# stack_t (12 bytes); uc_mcontext}; struct sigcontext_32 {u16 gs, __gsh, fs, __fsh,
# es, __esh, ds, __dsh; u32 di, si, bp, sp, bx, dx, cx, ax, trapno, err, ip; u16 cs,
# __csh; u32 flags, sp_at_signal; u16 ss, __ssh; ...}.  arch/x86/kernel/signal_32.c
# writes es, ds, cs and ss as 32-bit words from the segment registers.
_I386_SIGFRAME = SigFrame(
    144, 20, 8,
    dict(_offsets(("edi", "esi", "ebp", "esp", "ebx", "edx", "ecx", "eax"), 16, 4), eip=56,
         eflags=64),
    "esp", "eip", 4, anchor=((8, 4, "es"), (12, 4, "ds")), check=((60, 4, "cs"), (72, 4, "ss")))
# arch/arm64/kernel/signal.c: struct rt_sigframe {struct siginfo info; struct
# ucontext uc;}; arch/arm64/include/uapi/asm/ucontext.h: {uc_flags; uc_link;
# stack_t (24 bytes); sigset_t; __u8 __unused[120]; struct sigcontext uc_mcontext
# (16-aligned)}; arch/arm64/include/uapi/asm/sigcontext.h: struct sigcontext {__u64
# fault_address; regs[31]; sp; pc; pstate; __u8 __reserved[4096] (16-aligned)},
# whose first record the kernel writes is always struct fpsimd_context {struct
# _aarch64_ctx {__u32 magic = FPSIMD_MAGIC 0x46508001; __u32 size = 528}; ...}.
_AARCH64_SIGFRAME = SigFrame(
    128, 176, None,
    dict(_offsets(["x%d" % i for i in range(31)] + ["sp", "pc", "pstate"], 8, 8)),
    "sp", "pc", 16, anchor=((288, 4, 0x46508001), (292, 4, 528)), mode=("pstate", 0x1f, 0))
# arm, and arm processes on arm64 (compat, the same layout): arch/arm/kernel/signal.c
# struct sigframe {struct ucontext uc; unsigned long retcode[4];}, struct rt_sigframe
# {struct siginfo info; struct sigframe sig;}; arch/arm/include/asm/ucontext.h:
# {uc_flags; uc_link; stack_t (12 bytes); struct sigcontext uc_mcontext; sigset_t
# (8 bytes); int __unused[30]; unsigned long uc_regspace[128] (8-aligned, at 232)},
# uc_regspace holding struct aux_sigframe {[struct iwmmxt_sigframe (0xa0 bytes),
# with CONFIG_IWMMXT] struct vfp_sigframe {magic = VFP_MAGIC 0x56465001; size =
# 0x120; ...}; ...}; arch/arm/include/uapi/asm/sigcontext.h: struct sigcontext
# {trap_no, error_code, oldmask, arm_r0 ... arm_r10, arm_fp, arm_ip, arm_sp, arm_lr,
# arm_pc, arm_cpsr, fault_address}.  Every frame has a ucontext: plain frames too.
_ARM_SIGFRAME = SigFrame(
    128, 20, 20,
    _offsets(["r%d" % i for i in range(13)] + ["sp", "lr", "pc", "cpsr"], 12, 4),  # arm_fp: r11
    "sp", "pc", 4, anchor=((212, 4, 0x56465001), (216, 4, 0x120)), anchors=(0, 0xa0),
    mode=("cpsr", 0x1f, 0x10))

EM_386 = 3
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183


class Arch:
    """Facts about one architecture's core notes and ABI.

    prstatus_pid: offset of pr_pid in NT_PRSTATUS; prstatus_reg: offset of pr_reg.
    regs: register names in pr_reg order (each one word of the ELF class).
    red_zone: bytes below SP a leaf function may use without moving SP.
    tp_reg: register holding the thread pointer, or tp_note: note type whose first
    word (or, for i386, GDT entry) holds it.
    pthread_below_tp: the thread descriptor sits below the thread pointer
    (TLS variant I: arm, aarch64) rather than at it (variant II: x86).
    long_double: (encoding, size) of C's long double: "x87" 80-bit extended,
    "quad" IEEE binary128 or "double".
    fp: frame pointer register whose frame record (saved fp, return address)
    sits at fp (x86, aarch64; on arm gcc's records differ between ARM and
    Thumb code, so none is used).  lr: link register, if the arch has one.
    sigframe: the SigFrame of a signal handler.
    dwarf: the pr_reg name of each DWARF register number, in that order (None
    where pr_reg has none; the psABI's DWARF register mapping).
    sigreturn: (the signal return trampolines' code [bytes, ...], the bytes
    between the signal frame's start and the SP the trampoline runs with):
    SIGRETURNS below.
    """

    def __init__(self, name, machine, prstatus_pid, prstatus_reg, regs, sp, pc,
                 red_zone=0, tp_reg=None, tp_note=None, pthread_below_tp=False,
                 gdb_arch=None, long_double=("double", 8), fp=None, lr=None, sigframe=None,
                 dwarf=(), sigreturn=((), 0)):
        self.name = name
        self.machine = machine
        self.prstatus_pid = prstatus_pid
        self.prstatus_reg = prstatus_reg
        self.regs = regs
        self.sp_index = regs.index(sp)
        self.pc_index = regs.index(pc)
        self.tp_index = regs.index(tp_reg) if tp_reg else None
        self.tp_note = tp_note
        self.red_zone = red_zone
        self.pthread_below_tp = pthread_below_tp
        self.gdb_arch = gdb_arch or name
        self.long_double = long_double
        self.fp_index = regs.index(fp) if fp else None
        self.lr_index = regs.index(lr) if lr else None
        self.sigframe = sigframe
        self.dwarf = tuple(regs.index(r) if r else None for r in dwarf)
        self.dwarf_sp = dwarf.index(sp) if sp in dwarf else None
        self.sigreturn_code, self.sigreturn_popped = sigreturn


_X86_64_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
                "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
                "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")
_I386_REGS = ("ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs",
              "orig_eax", "eip", "cs", "eflags", "esp", "ss")
_ARM_REGS = tuple("r%d" % i for i in range(13)) + ("sp", "lr", "pc", "cpsr", "orig_r0")
_AARCH64_REGS = tuple("x%d" % i for i in range(31)) + ("sp", "pc", "pstate")

# DWARF register numbers (each psABI's "DWARF Register Number Mapping").
_X86_64_DWARF = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                 "r11", "r12", "r13", "r14", "r15", "rip")
_I386_DWARF = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip")
_ARM_DWARF = tuple("r%d" % i for i in range(13)) + ("sp", "lr", "pc")
_AARCH64_DWARF = tuple("x%d" % i for i in range(31)) + ("sp",)

# The kernel's signal return trampolines, as a signal handler's return finds
# them: their code (x86: glibc's __restore_rt, mov $__NR_rt_sigreturn then
# syscall / int $0x80; arm, arm64: the vDSO's or sigpage's, mov r7/x8 then
# svc 0, arm in ARM and Thumb code), and the bytes between the rt_sigframe's
# start and the SP they run with (x86: the handler's ret popped pretcode; arm
# and arm64 return through lr, popping nothing).  The frame's layout is the
# arch's SigFrame.
SIGRETURNS = {
    EM_X86_64: ([bytes.fromhex("48c7c00f0000000f05")], 8),
    EM_386: ([bytes.fromhex("b8ad000000cd80")], 4),
    EM_ARM: ([bytes.fromhex("ad70a0e3000000ef"), bytes.fromhex("ad2700df")], 0),
    EM_AARCH64: ([bytes.fromhex("681180d2010000d4")], 0),
}

ARCHES = {
    EM_X86_64: Arch("x86_64", EM_X86_64, 32, 112, _X86_64_REGS, "rsp", "rip",
                    red_zone=128, tp_reg="fs_base", gdb_arch="i386:x86-64",
                    long_double=("x87", 16), fp="rbp", sigframe=_X86_64_SIGFRAME,
                    dwarf=_X86_64_DWARF, sigreturn=SIGRETURNS[EM_X86_64]),
    EM_386: Arch("i386", EM_386, 24, 72, _I386_REGS, "esp", "eip",
                 tp_note=NT_386_TLS, gdb_arch="i386", long_double=("x87", 12), fp="ebp",
                 sigframe=_I386_SIGFRAME, dwarf=_I386_DWARF, sigreturn=SIGRETURNS[EM_386]),
    EM_ARM: Arch("arm", EM_ARM, 24, 72, _ARM_REGS, "sp", "pc",
                 tp_note=NT_ARM_TLS, pthread_below_tp=True, lr="lr", sigframe=_ARM_SIGFRAME,
                 dwarf=_ARM_DWARF, sigreturn=SIGRETURNS[EM_ARM]),
    EM_AARCH64: Arch("aarch64", EM_AARCH64, 32, 112, _AARCH64_REGS, "sp", "pc",
                     tp_note=NT_ARM_TLS, pthread_below_tp=True, long_double=("quad", 16),
                     fp="x29", lr="x30", sigframe=_AARCH64_SIGFRAME, dwarf=_AARCH64_DWARF,
                     sigreturn=SIGRETURNS[EM_AARCH64]),
}


def arch_for_machine(machine):
    """The Arch for an e_machine, or ValueError naming the unsupported machine."""
    try:
        return ARCHES[machine]
    except KeyError:
        raise ValueError("unsupported e_machine %d" % machine) from None
