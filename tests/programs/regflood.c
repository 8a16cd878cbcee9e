/* Floods its libminicoredumper registration list with registrations that are
 * each within a recept's per-item caps (registered.max_items, max_item_size),
 * then crashes.  The nodes are forged behind one real registration, in the
 * layout of docs/FORMATS.md §7 (the library's private struct, mirrored here,
 * as in hostile.c).
 *
 *   regflood text [N]        N (default 1024) text registrations sharing the
 *                            ident flood.txt, each "%s" x 256 of one 64 KiB string
 *   regflood bin [N [SIZE]]  N binary registrations of SIZE bytes (default 1 MiB),
 *                            idents b0.bin, b1.bin ... (all of the same buffer)
 *   regflood core [N [SIZE]] N registrations without an ident (into the core), each
 *                            SIZE bytes of its own in one untouched N * SIZE block
 *
 * The process stays small whatever the handler is made to read: text and bin
 * registrations share one buffer, and untouched memory reads as zeros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <minicoredumper.h>

struct elem { void *data_ptr; unsigned long flags; size_t length; int fmt_type; };
struct node { int type; char *ident; unsigned long dump_scope; struct elem *es;
	      unsigned int es_n; char *fmt; struct node *next; };
extern struct node *mcd_dump_data_head;

#define TEXT_ELEMS 256
#define STRING_SIZE (64 << 10)
#define DIRECT 5 /* MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT */

static char good[] = "good data";

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "text";
	int n = argc > 2 ? atoi(argv[2]) : 1024;
	size_t size = argc > 3 ? strtoul(argv[3], NULL, 0) : 1 << 20;
	int text = !strcmp(mode, "text"), idents = strcmp(mode, "core");
	struct node *nodes = calloc(n, sizeof(*nodes)), *last;
	struct elem *elems = calloc(text ? TEXT_ELEMS : n, sizeof(*elems));
	char *fmt = malloc(2 * TEXT_ELEMS + 1);
	char *data = malloc(text ? STRING_SIZE : idents ? size : n * size);
	int i;

	if (!nodes || !elems || !fmt || !data)
		return 1;
	if (text) {
		memset(data, 'x', STRING_SIZE - 1);
		data[STRING_SIZE - 1] = '\0';
	} else if (idents) {
		memset(data, 'x', size);
	}
	for (i = 0; i < TEXT_ELEMS; i++) {
		memcpy(fmt + 2 * i, "%s", 2);
		if (text)
			elems[i] = (struct elem){ data, DIRECT, 0, 3 };
	}
	fmt[2 * TEXT_ELEMS] = '\0';
	mcd_dump_data_register_bin("good.bin", 1, NULL, good, sizeof(good),
				   MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT);
	for (last = mcd_dump_data_head; last->next; last = last->next)
		;
	for (i = 0; i < n; i++) {
		struct node *x = &nodes[i];

		x->dump_scope = 1;
		if (text) {
			*x = (struct node){ 1, "flood.txt", 1, elems, TEXT_ELEMS, fmt, NULL };
		} else {
			elems[i] = (struct elem){ idents ? data : data + i * size, DIRECT, size, 0 };
			x->es = &elems[i];
			x->es_n = 1;
			if (idents) {
				x->ident = malloc(16);
				snprintf(x->ident, 16, "b%d.bin", i);
			}
		}
		last->next = x;
		last = x;
	}
	*(volatile int *)0 = 0; /* BOOM */
	return 0;
}
