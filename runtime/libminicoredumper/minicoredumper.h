/*
 * minicoredumper.h - public API of libminicoredumper (meta-minicoredumper).
 *
 * Owns the application-facing declarations: the opaque registration handle,
 * the bin data flags and the four register/unregister functions.  API and
 * ABI compatible with minicoredumper 2.0.x (SONAME libminicoredumper.so.2).
 * All functions return 0 on success or a positive errno value on failure.
 */
#ifndef MINICOREDUMPER_H
#define MINICOREDUMPER_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Handle of one registration; the structure behind it is private. */
typedef struct mcd_dump_data *mcd_dump_data_t;

/* How data_ptr and data_size of a binary registration are interpreted. */
enum mcd_dump_data_flags {
	MCD_DATA_PTR_DIRECT = 1,   /* data_ptr points to the data */
	MCD_DATA_PTR_INDIRECT = 2, /* data_ptr points to a pointer to the data */
	MCD_LENGTH_DIRECT = 4,     /* data_size is the length in bytes */
	MCD_LENGTH_INDIRECT = 8,   /* data_size is a (size_t *) to the length */
	MCD_DATA_NODUMP = 16       /* do not write the data itself */
};

/*
 * Register binary data.  ident NULL: the data goes into the core file;
 * otherwise it names a dump file and must be unique (EEXIST).
 */
int mcd_dump_data_register_bin(const char *ident, unsigned long dump_scope,
			       mcd_dump_data_t *save_ptr, void *data_ptr,
			       size_t data_size,
			       enum mcd_dump_data_flags flags);

/*
 * Register text data: fmt is a printf format, the variable arguments are
 * pointers to the values (scanf style), except for %s, which takes the
 * char * itself.  Several text registrations may share an ident.
 */
int mcd_dump_data_register_text(const char *ident, unsigned long dump_scope,
				mcd_dump_data_t *save_ptr, const char *fmt,
				...);

int mcd_vdump_data_register_text(const char *ident, unsigned long dump_scope,
				 mcd_dump_data_t *save_ptr, const char *fmt,
				 va_list ap);

/* Remove a registration.  ENOKEY if dd is not (or no longer) registered. */
int mcd_dump_data_unregister(mcd_dump_data_t dd);

#ifdef __cplusplus
}
#endif

#endif /* MINICOREDUMPER_H */
