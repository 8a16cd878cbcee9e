/* Registers text dumps with every supported printf type (and flag combinations),
 * prints the same values with printf to stdout as the reference, then crashes. */
#include <stdio.h>
#include <string.h>
#include <minicoredumper.h>

static int i = -123456;
static unsigned int u = 4000000000u;
static short h = -1234;
static signed char hh = -12;
static long l = -1234567890123L;
static long long ll = 1234567890123456789LL;
static size_t z = 98765;
static char c = 'Q';
static void *p = (void *)0x1234abcd;
static void *nil = NULL;
static double d = 3.14159265358979;
static double big = 12345678.875;
static long double ld = 2.5L;
static char s[] = "a string";

/* Every registration must succeed: a failure exits before the crash. */
#define T(fmt, ...) do { \
	if (mcd_dump_data_register_text("types.txt", 1, NULL, fmt "\n", __VA_ARGS__)) \
		return 2; \
} while (0)

int main(void)
{
	printf("%d\n", i); T("%d", &i);
	printf("%i|%5i|%-5i|%+d|% d|%05d\n", i, i, i, i, i, i);
	T("%i|%5i|%-5i|%+d|% d|%05d", &i, &i, &i, &i, &i, &i);
	printf("%u|%x|%X|%#x|%08x\n", u, u, u, u, u); T("%u|%x|%X|%#x|%08x", &u, &u, &u, &u, &u);
	printf("%o|%#o\n", u, u); T("%o|%#o", &u, &u);
	printf("%hd|%hu|%hx\n", h, h, h); T("%hd|%hu|%hx", &h, &h, &h);
	printf("%hhd|%hhu|%hhx\n", hh, hh, hh); T("%hhd|%hhu|%hhx", &hh, &hh, &hh);
	printf("%ld|%lu|%lx\n", l, l, l); T("%ld|%lu|%lx", &l, &l, &l);
	printf("%lld|%llu|%llx\n", ll, ll, ll); T("%lld|%llu|%llx", &ll, &ll, &ll);
	printf("%zu|%zd|%zx\n", z, z, z); T("%zu|%zd|%zx", &z, &z, &z);
	printf("%c|%3c|%-3c|\n", c, c, c); T("%c|%3c|%-3c|", &c, &c, &c);
	printf("%p|%p\n", p, nil); T("%p|%p", &p, &nil);
	printf("%f|%.2f|%10.3f|%e|%E|%g|%G\n", d, d, d, d, d, d, d);
	T("%f|%.2f|%10.3f|%e|%E|%g|%G", &d, &d, &d, &d, &d, &d, &d);
	printf("%f|%e|%g\n", big, big, big); T("%f|%e|%g", &big, &big, &big);
	printf("%Lf|%Le|%Lg\n", ld, ld, ld); T("%Lf|%Le|%Lg", &ld, &ld, &ld);
	printf("100%% done %d\n", i); T("100%% done %d", &i);
	printf("%s|%.3s|%10s|%-10s|\n", s, s, s, s); T("%s|%.3s|%10s|%-10s|", s, s, s, s);
	fflush(stdout);
	*(volatile int *)0 = 0; /* BOOM */
	return 0;
}
