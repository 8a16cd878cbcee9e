/*
 * libminicoredumper.c - the registration list of libminicoredumper.
 *
 * Owns the exported data symbols (mcd_dump_data_version, mcd_dump_data_head)
 * that the crash handler reads out of a crashed or stopped process, the
 * register/unregister API of minicoredumper.h, the printf format parser
 * that turns a text registration into one element per directive, the
 * fork handlers, and the datagram handshake with the registry daemon
 * (minicoredumper_regd).  Depends on libc and pthread only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "minicoredumper.h"

#define MCD_EXPORT __attribute__((visibility("default")))

/*
 * glibc printf argument type codes (<printf.h>), stored in fmt_type.  They
 * are part of the ABI, so they are spelled out here for C libraries without
 * <printf.h> and checked against glibc's header where there is one.
 */
#define MCD_PA_INT 0
#define MCD_PA_CHAR 1
#define MCD_PA_STRING 3
#define MCD_PA_POINTER 5
#define MCD_PA_DOUBLE 7
#define MCD_PA_FLAG_LONG_LONG (1 << 8)
#define MCD_PA_FLAG_LONG_DOUBLE MCD_PA_FLAG_LONG_LONG
#define MCD_PA_FLAG_LONG (1 << 9)
#define MCD_PA_FLAG_SHORT (1 << 10)

#ifdef __GLIBC__
#include <printf.h>
_Static_assert(MCD_PA_INT == PA_INT, "PA_INT");
_Static_assert(MCD_PA_CHAR == PA_CHAR, "PA_CHAR");
_Static_assert(MCD_PA_STRING == PA_STRING, "PA_STRING");
_Static_assert(MCD_PA_POINTER == PA_POINTER, "PA_POINTER");
_Static_assert(MCD_PA_DOUBLE == PA_DOUBLE, "PA_DOUBLE");
_Static_assert(MCD_PA_FLAG_LONG_LONG == PA_FLAG_LONG_LONG, "LONG_LONG");
_Static_assert(MCD_PA_FLAG_LONG_DOUBLE == PA_FLAG_LONG_DOUBLE, "LONG_DOUBLE");
_Static_assert(MCD_PA_FLAG_LONG == PA_FLAG_LONG, "PA_FLAG_LONG");
_Static_assert(MCD_PA_FLAG_SHORT == PA_FLAG_SHORT, "PA_FLAG_SHORT");
#endif

/* Node types (mcd_dump_data.type). */
#define MCD_TYPE_BIN 0
#define MCD_TYPE_TEXT 1

/*
 * The node layout is read by the crash handler from another process; it
 * must stay exactly as in docs/FORMATS.md §7 (data version 2).
 */
struct dump_data_elem {
	void *data_ptr;
	unsigned long flags;
	union {
		size_t *length_ptr;
		size_t length;
	} u;
	int fmt_type;
};

struct mcd_dump_data {
	int type;
	char *ident;
	unsigned long dump_scope;
	struct dump_data_elem *es;
	unsigned int es_n;
	char *fmt;
	struct mcd_dump_data *next;
};

#define P sizeof(void *)
_Static_assert(sizeof(long) == P && sizeof(size_t) == P, "ILP32 or LP64 only");
_Static_assert(offsetof(struct mcd_dump_data, type) == 0, "type");
_Static_assert(offsetof(struct mcd_dump_data, ident) == P, "ident");
_Static_assert(offsetof(struct mcd_dump_data, dump_scope) == 2 * P, "scope");
_Static_assert(offsetof(struct mcd_dump_data, es) == 3 * P, "es");
_Static_assert(offsetof(struct mcd_dump_data, es_n) == 4 * P, "es_n");
_Static_assert(offsetof(struct mcd_dump_data, fmt) == 5 * P, "fmt");
_Static_assert(offsetof(struct mcd_dump_data, next) == 6 * P, "next");
_Static_assert(sizeof(struct mcd_dump_data) == 7 * P, "mcd_dump_data size");
_Static_assert(offsetof(struct dump_data_elem, data_ptr) == 0, "data_ptr");
_Static_assert(offsetof(struct dump_data_elem, flags) == P, "flags");
_Static_assert(offsetof(struct dump_data_elem, u) == 2 * P, "u");
_Static_assert(offsetof(struct dump_data_elem, fmt_type) == 3 * P, "fmt_type");
_Static_assert(sizeof(struct dump_data_elem) == 4 * P, "dump_data_elem size");
#undef P

/* The two symbols the handler looks up by name. */
MCD_EXPORT int mcd_dump_data_version = 2;
MCD_EXPORT struct mcd_dump_data *mcd_dump_data_head;

/* Serialises every list change and the daemon handshake. */
static pthread_mutex_t mcd_lock = PTHREAD_MUTEX_INITIALIZER;

/* PID the registry daemon knows as registered, 0 if none. */
static pid_t regd_pid;

#define MCD_FLAGS_ALL                                                        \
	(MCD_DATA_PTR_DIRECT | MCD_DATA_PTR_INDIRECT | MCD_LENGTH_DIRECT |   \
	 MCD_LENGTH_INDIRECT | MCD_DATA_NODUMP)

/* ------------------------------------------------------------------------
 * Registry daemon handshake (docs/FORMATS.md §8)
 */

#define REGD_NAME "minicoredumper"
#define REGD_REQ_REGISTER 1u
#define REGD_REQ_UNREGISTER 2u
#define REGD_MAGIC 0x55555555u
#define REGD_REPLY_TIMEOUT_US 100000

struct regd_msg {
	uint32_t req;
	uint32_t data;
};

/*
 * Sends one request to the daemon and waits briefly for its answer.
 * Returns -1 if the daemon could not be reached (none running: connect
 * fails at once), 0 if the request was delivered.  Never blocks for longer
 * than the reply timeout; the socket is closed before returning.
 */
static int regd_send(uint32_t req)
{
	struct sockaddr_un sa;
	struct regd_msg msg = { req, REGD_MAGIC };
	struct regd_msg reply;
	struct timeval tv = { 0, REGD_REPLY_TIMEOUT_US };
	int ret = -1;
	int fd;
	int i;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;

	/* Our own address, "\0minicoredumper.<pid>" zero-padded. */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, REGD_NAME ".%ld",
		 (long)getpid());
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;

	/* The daemon, "\0minicoredumper" zero-padded to all of sun_path. */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, REGD_NAME, sizeof(REGD_NAME) - 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		goto out;
	if (send(fd, &msg, sizeof(msg), MSG_DONTWAIT) != (ssize_t)sizeof(msg))
		goto out;
	ret = 0;

	/* The answer only confirms; a missing one changes nothing. */
	for (i = 0; i < 4; i++) {
		ssize_t n = recv(fd, &reply, sizeof(reply), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(reply))
			break;
		if (reply.data == (uint32_t)~REGD_MAGIC)
			break;
	}
out:
	close(fd);
	return ret;
}

/* After a registration (lock held, list not empty). */
static void regd_after_register(void)
{
	pid_t pid = getpid();

	if (regd_pid == pid)
		return;
	/* Not reached (no daemon yet): tried again at the next registration. */
	if (regd_send(REGD_REQ_REGISTER) == 0)
		regd_pid = pid;
}

/* After an unregistration (lock held). */
static void regd_after_unregister(void)
{
	if (__atomic_load_n(&mcd_dump_data_head, __ATOMIC_RELAXED) != NULL)
		return;
	if (regd_pid == getpid())
		regd_send(REGD_REQ_UNREGISTER);
	regd_pid = 0;
}

/* ------------------------------------------------------------------------
 * fork and process lifetime
 */

static void mcd_atfork_prepare(void)
{
	pthread_mutex_lock(&mcd_lock);
}

static void mcd_atfork_parent(void)
{
	pthread_mutex_unlock(&mcd_lock);
}

static void mcd_atfork_child(void)
{
	/* The daemon knows the parent, not this new PID. */
	regd_pid = 0;
	pthread_mutex_unlock(&mcd_lock);
}

__attribute__((constructor)) static void mcd_init(void)
{
	pthread_atfork(mcd_atfork_prepare, mcd_atfork_parent,
		       mcd_atfork_child);
}

/* At exit (or dlclose) the list disappears: tell the daemon. */
__attribute__((destructor)) static void mcd_fini(void)
{
	int saved_errno = errno;

	pthread_mutex_lock(&mcd_lock);
	if (regd_pid != 0 && regd_pid == getpid())
		regd_send(REGD_REQ_UNREGISTER);
	regd_pid = 0;
	pthread_mutex_unlock(&mcd_lock);
	errno = saved_errno;
}

/* ------------------------------------------------------------------------
 * Nodes and the list
 */

/* An ident names a file in dumps/<pid>/: no "", ".", "..", "/" or controls. */
static int ident_valid(const char *ident)
{
	size_t len = strnlen(ident, NAME_MAX + 1);
	size_t i;

	if (len == 0 || len > NAME_MAX)
		return 0;
	if (strcmp(ident, ".") == 0 || strcmp(ident, "..") == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)ident[i];

		if (c == '/' || c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static char *copy_string(const char *s)
{
	size_t len = strlen(s) + 1;
	char *copy = malloc(len);

	if (copy)
		memcpy(copy, s, len);
	return copy;
}

static void node_free(struct mcd_dump_data *dd)
{
	free(dd->ident);
	free(dd->fmt);
	free(dd->es);
	free(dd);
}

/*
 * Appends a fully initialised node (lock held).  The whole list is checked
 * for a clash first: a bin ident must not exist at all, a text ident may
 * only be shared with other text registrations.  Linking is a single
 * pointer store, so a reader of this memory sees the list with or without
 * the node, never half of it.
 */
static int list_append(struct mcd_dump_data *dd)
{
	struct mcd_dump_data **link = &mcd_dump_data_head;
	struct mcd_dump_data *cur;

	while ((cur = *link) != NULL) {
		if (dd->ident && cur->ident && strcmp(dd->ident, cur->ident) == 0 &&
		    (dd->type == MCD_TYPE_BIN || cur->type == MCD_TYPE_BIN))
			return EEXIST;
		link = &cur->next;
	}
	dd->next = NULL;
	__atomic_store_n(link, dd, __ATOMIC_RELEASE);
	return 0;
}

/* Unlinks dd with a single store (lock held).  Returns 0 or ENOKEY. */
static int list_remove(struct mcd_dump_data *dd)
{
	struct mcd_dump_data **link = &mcd_dump_data_head;
	struct mcd_dump_data *cur;

	while ((cur = *link) != NULL) {
		if (cur == dd) {
			__atomic_store_n(link, cur->next, __ATOMIC_RELEASE);
			return 0;
		}
		link = &cur->next;
	}
	return ENOKEY;
}

/* Links a new node and does the daemon handshake; frees it on failure. */
static int node_publish(struct mcd_dump_data *dd, mcd_dump_data_t *save_ptr)
{
	int err;

	pthread_mutex_lock(&mcd_lock);
	err = list_append(dd);
	if (err == 0)
		regd_after_register();
	pthread_mutex_unlock(&mcd_lock);

	if (err != 0) {
		node_free(dd);
		return err;
	}
	if (save_ptr)
		*save_ptr = dd;
	return 0;
}

/* ------------------------------------------------------------------------
 * Binary registrations
 */

static int register_bin(const char *ident, unsigned long dump_scope,
			mcd_dump_data_t *save_ptr, void *data_ptr,
			size_t data_size, unsigned int flags)
{
	struct mcd_dump_data *dd;

	if (ident && !ident_valid(ident))
		return EINVAL;
	if (!data_ptr || data_size == 0)
		return EINVAL;
	if (flags & ~(unsigned int)MCD_FLAGS_ALL)
		return EINVAL;
	if ((flags & MCD_DATA_PTR_DIRECT) && (flags & MCD_DATA_PTR_INDIRECT))
		return EINVAL;
	if ((flags & MCD_LENGTH_DIRECT) && (flags & MCD_LENGTH_INDIRECT))
		return EINVAL;
	/* Neither of a pair given means direct; store it explicitly. */
	if (!(flags & MCD_DATA_PTR_INDIRECT))
		flags |= MCD_DATA_PTR_DIRECT;
	if (!(flags & MCD_LENGTH_INDIRECT))
		flags |= MCD_LENGTH_DIRECT;

	dd = calloc(1, sizeof(*dd));
	if (!dd)
		return ENOMEM;
	dd->type = MCD_TYPE_BIN;
	dd->dump_scope = dump_scope;
	if (ident) {
		dd->ident = copy_string(ident);
		if (!dd->ident)
			goto nomem;
	}
	dd->es = calloc(1, sizeof(*dd->es));
	if (!dd->es)
		goto nomem;
	dd->es_n = 1;
	dd->es[0].data_ptr = data_ptr;
	dd->es[0].flags = flags;
	if (flags & MCD_LENGTH_INDIRECT)
		dd->es[0].u.length_ptr = (size_t *)data_size;
	else
		dd->es[0].u.length = data_size;
	dd->es[0].fmt_type = 0;

	return node_publish(dd, save_ptr);
nomem:
	node_free(dd);
	return ENOMEM;
}

MCD_EXPORT int mcd_dump_data_register_bin(const char *ident,
					  unsigned long dump_scope,
					  mcd_dump_data_t *save_ptr,
					  void *data_ptr, size_t data_size,
					  enum mcd_dump_data_flags flags)
{
	int saved_errno = errno;
	int ret;

	ret = register_bin(ident, dump_scope, save_ptr, data_ptr, data_size,
			   (unsigned int)flags);
	errno = saved_errno;
	return ret;
}

/* ------------------------------------------------------------------------
 * Text registrations
 */

struct directive {
	int fmt_type;  /* PA_* code */
	size_t length; /* bytes of the value the pointer refers to (%s: below) */
};

/* Skips up to 9 decimal digits (a width or precision). */
static int skip_number(const char **pp)
{
	const char *p = *pp;
	int n = 0;

	while (*p >= '0' && *p <= '9') {
		if (++n > 9)
			return -1;
		p++;
	}
	*pp = p;
	return 0;
}

/*
 * Parses one directive; *pp points just after its '%' and is advanced past
 * it.  Returns 1 for a directive that takes an argument, 0 for "%%" and -1
 * for anything not supported: only [flags][width][.precision][length]conv
 * with flags "-+ #0", numeric width/precision (no '*', no "n$"), length
 * hh h l ll z L and the conversions d i u x X o c s p f e E g G.
 */
static int parse_directive(const char **pp, struct directive *d)
{
	enum { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z, LEN_BIG_L } len;
	const char *p = *pp;
	char conv;

	if (*p == '%') {
		*pp = p + 1;
		return 0;
	}
	while (*p == '-' || *p == '+' || *p == ' ' || *p == '#' || *p == '0')
		p++;
	if (skip_number(&p) != 0)
		return -1;
	if (*p == '.') {
		p++;
		if (skip_number(&p) != 0)
			return -1;
	}

	len = LEN_NONE;
	switch (*p) {
	case 'h':
		p++;
		len = LEN_H;
		if (*p == 'h') {
			p++;
			len = LEN_HH;
		}
		break;
	case 'l':
		p++;
		len = LEN_L;
		if (*p == 'l') {
			p++;
			len = LEN_LL;
		}
		break;
	case 'z':
		p++;
		len = LEN_Z;
		break;
	case 'L':
		p++;
		len = LEN_BIG_L;
		break;
	}

	conv = *p;
	if (conv == '\0')
		return -1;
	p++;

	switch (conv) {
	case 'd':
	case 'i':
	case 'u':
	case 'x':
	case 'X':
	case 'o':
		switch (len) {
		case LEN_NONE:
			d->fmt_type = MCD_PA_INT;
			d->length = sizeof(int);
			break;
		case LEN_HH:
			d->fmt_type = MCD_PA_CHAR;
			d->length = sizeof(char);
			break;
		case LEN_H:
			d->fmt_type = MCD_PA_INT | MCD_PA_FLAG_SHORT;
			d->length = sizeof(short);
			break;
		case LEN_L:
			d->fmt_type = MCD_PA_INT | MCD_PA_FLAG_LONG;
			d->length = sizeof(long);
			break;
		case LEN_LL:
			/* glibc: "long long" is "long" where both are equal */
			d->fmt_type = MCD_PA_INT | MCD_PA_FLAG_LONG_LONG;
			if (sizeof(long long) == sizeof(long))
				d->fmt_type = MCD_PA_INT | MCD_PA_FLAG_LONG;
			d->length = sizeof(long long);
			break;
		case LEN_Z:
			/* glibc: size_t is "long" where it is wider than int */
			d->fmt_type = MCD_PA_INT;
			if (sizeof(size_t) > sizeof(unsigned int))
				d->fmt_type |= MCD_PA_FLAG_LONG;
			d->length = sizeof(size_t);
			break;
		default:
			return -1;
		}
		break;
	case 'c':
		if (len != LEN_NONE)
			return -1;
		d->fmt_type = MCD_PA_CHAR;
		d->length = sizeof(char);
		break;
	case 's':
		if (len != LEN_NONE)
			return -1;
		d->fmt_type = MCD_PA_STRING;
		d->length = 0; /* the string's, set at registration */
		break;
	case 'p':
		if (len != LEN_NONE)
			return -1;
		d->fmt_type = MCD_PA_POINTER;
		d->length = sizeof(void *);
		break;
	case 'f':
	case 'e':
	case 'E':
	case 'g':
	case 'G':
		if (len == LEN_BIG_L) {
			d->fmt_type = MCD_PA_DOUBLE | MCD_PA_FLAG_LONG_DOUBLE;
			d->length = sizeof(long double);
		} else if (len == LEN_NONE || len == LEN_L) {
			d->fmt_type = MCD_PA_DOUBLE;
			d->length = sizeof(double);
		} else {
			return -1;
		}
		break;
	default:
		return -1;
	}
	*pp = p;
	return 1;
}

/* Number of argument-taking directives in fmt, or -1 if it is invalid. */
static long count_directives(const char *fmt)
{
	struct directive d;
	const char *p = fmt;
	long n = 0;
	int r;

	while ((p = strchr(p, '%')) != NULL) {
		p++;
		r = parse_directive(&p, &d);
		if (r < 0)
			return -1;
		n += r;
		if (n > INT_MAX)
			return -1;
	}
	return n;
}

static int register_text(const char *ident, unsigned long dump_scope,
			 mcd_dump_data_t *save_ptr, const char *fmt,
			 va_list ap)
{
	struct mcd_dump_data *dd;
	struct directive d;
	const char *p;
	unsigned int i;
	long n;

	if (!ident || !ident_valid(ident) || !fmt)
		return EINVAL;
	n = count_directives(fmt);
	if (n < 0)
		return EINVAL;

	dd = calloc(1, sizeof(*dd));
	if (!dd)
		return ENOMEM;
	dd->type = MCD_TYPE_TEXT;
	dd->dump_scope = dump_scope;
	dd->ident = copy_string(ident);
	dd->fmt = copy_string(fmt);
	if (!dd->ident || !dd->fmt)
		goto nomem;
	if (n > 0) {
		dd->es = calloc((size_t)n, sizeof(*dd->es));
		if (!dd->es)
			goto nomem;
	}
	dd->es_n = (unsigned int)n;

	/* Second pass over our copy: one element per directive. */
	p = dd->fmt;
	i = 0;
	while (i < dd->es_n && (p = strchr(p, '%')) != NULL) {
		p++;
		if (parse_directive(&p, &d) != 1)
			continue;
		dd->es[i].data_ptr = va_arg(ap, void *);
		if (!dd->es[i].data_ptr) {
			node_free(dd);
			return EINVAL;
		}
		dd->es[i].flags = MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT;
		/*
		 * %s: the string's size with its NUL, as it is now (the
		 * original's rule, docs/FORMATS.md §7).  The original handler
		 * takes a length below 1 for a bogus value and writes the
		 * directive itself, and reads that many bytes of the string.
		 */
		if (d.fmt_type == MCD_PA_STRING)
			d.length = strlen(dd->es[i].data_ptr) + 1;
		dd->es[i].u.length = d.length;
		dd->es[i].fmt_type = d.fmt_type;
		i++;
	}

	return node_publish(dd, save_ptr);
nomem:
	node_free(dd);
	return ENOMEM;
}

MCD_EXPORT int mcd_vdump_data_register_text(const char *ident,
					    unsigned long dump_scope,
					    mcd_dump_data_t *save_ptr,
					    const char *fmt, va_list ap)
{
	int saved_errno = errno;
	int ret;

	ret = register_text(ident, dump_scope, save_ptr, fmt, ap);
	errno = saved_errno;
	return ret;
}

MCD_EXPORT int mcd_dump_data_register_text(const char *ident,
					   unsigned long dump_scope,
					   mcd_dump_data_t *save_ptr,
					   const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = register_text(ident, dump_scope, save_ptr, fmt, ap);
	va_end(ap);
	errno = saved_errno;
	return ret;
}

/* ------------------------------------------------------------------------
 * Unregistration
 */

MCD_EXPORT int mcd_dump_data_unregister(mcd_dump_data_t dd)
{
	int saved_errno = errno;
	int err;

	if (!dd)
		return EINVAL;

	/* dd is only compared, never dereferenced, until it is found. */
	pthread_mutex_lock(&mcd_lock);
	err = list_remove(dd);
	if (err == 0)
		regd_after_unregister();
	pthread_mutex_unlock(&mcd_lock);

	/* Unlinked: nobody can reach it any more. */
	if (err == 0)
		node_free(dd);
	errno = saved_errno;
	return err;
}
