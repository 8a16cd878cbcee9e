// An uncaught C++ exception (tests/host/test_bug_reports.py): main -> level_a ->
// level_b throws; no handler, so std::terminate() calls abort() and the process
// dies of SIGABRT with the frames of libstdc++'s terminate and of __cxa_throw
// between abort() and level_b.
#include <stdexcept>

__attribute__((noinline)) static void level_b(int n)
{
	if (n > 0)
		throw std::runtime_error("uncaught");
	asm volatile("" ::: "memory");
}

__attribute__((noinline)) static void level_a(int n)
{
	level_b(n);
	asm volatile("" ::: "memory");
}

int main(int argc, char **)
{
	level_a(argc);
	return 0;
}
