/* The libFuzzer entry point every tests/fuzz/fuzz_<name>.c defines. The same object is linked
 * either with libFuzzer (SW_FUZZ builds) or with replay_main.c, which feeds it every file of a
 * stored corpus so that the corpus runs under ctest in every build. */
#ifndef SW_TESTS_FUZZ_H
#define SW_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
