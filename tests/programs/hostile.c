/* Corrupts its own libminicoredumper registration list, then crashes: a cycle,
 * a 2^40 length, an escaping ident, a %n format.  The handler must write nothing
 * outside the dump directory, finish within its deadline and log what it skipped.
 * The node layout is docs/FORMATS.md §7's (the library's private struct, mirrored here). */
#include <stdlib.h>
#include <string.h>
#include <minicoredumper.h>

struct elem { void *data_ptr; unsigned long flags; size_t length; int fmt_type; };
struct node { int type; char *ident; unsigned long dump_scope; struct elem *es;
	      unsigned int es_n; char *fmt; struct node *next; };
extern struct node *mcd_dump_data_head;

static char good[] = "good data";
static int value = 7;

int main(int argc, char **argv)
{
	static struct elem e_huge = { good, 1 | 4, (size_t)1 << 40, 0 };
	static struct elem e_esc = { good, 1 | 4, 4, 0 };
	static struct elem e_fmt[4] = { { &value, 5, 4, 0 }, { good, 5, 0, 3 },
					{ good, 5, 0, 3 }, { good, 5, 0, 3 } };
	static struct node huge = { 0, "huge.bin", 1, &e_huge, 1, NULL, NULL };
	static struct node esc = { 0, "../../etc/x", 1, &e_esc, 1, NULL, NULL };
	static struct node fmtn = { 1, "fmt.txt", 1, e_fmt, 4, "%n%s%s%s", NULL };
	struct node *n;

	/* A good registration through the library, so the list exists. */
	mcd_dump_data_register_bin("good.bin", 1, NULL, good, sizeof(good),
				   MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT);
	mcd_dump_data_register_text("ok.txt", 1, NULL, "value=%d\n", &value);
	/* Then the hostile nodes behind it, ending in a cycle back to the head. */
	for (n = mcd_dump_data_head; n->next; n = n->next)
		;
	n->next = &huge;
	huge.next = &esc;
	esc.next = &fmtn;
	fmtn.next = mcd_dump_data_head;
	*(volatile int *)0 = 0; /* BOOM */
	return 0;
}
