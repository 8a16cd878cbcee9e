/*
 * mycrasher.c - example program of libminicoredumper (meta-minicoredumper).
 *
 * Registers a string for the core file, an int for the external dump i.bin
 * and a text dump out.txt with both values, then crashes by writing through
 * a NULL pointer.  With the handler installed this gives dumps/<pid>/i.bin
 * and dumps/<pid>/out.txt containing: s="my string" *i=42
 */
#include <stdlib.h>
#include <string.h>

#include <minicoredumper.h>

int main(void)
{
	mcd_dump_data_t d[3];
	/* volatile: the compiler must neither drop the store nor make it a trap */
	volatile char *volatile x = NULL;
	char *s;
	int *i;

	s = strdup("my string");
	i = malloc(sizeof(*i));
	if (!s || !i)
		return 1;
	*i = 42;

	mcd_dump_data_register_bin(NULL, 1024, &d[0], s, strlen(s) + 1,
				   MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT);
	mcd_dump_data_register_bin("i.bin", 1024, &d[1], i, sizeof(*i),
				   MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT);
	mcd_dump_data_register_text("out.txt", 1024, &d[2],
				    "s=\"%s\" *i=%d\n", s, i);

	*x = 0; /* BOOM! */

	return 0;
}
