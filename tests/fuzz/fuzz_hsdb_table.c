/* Fuzz target: the database table of a rules cache file (hsdb_table_check()), the part of the
 * cache loader that parses bytes it did not write before Hyperscan sees any. The first byte
 * picks the rule set's groups (low five bits: the targets and HSDB_GROUP_BODY_PLAIN) and the
 * layout (bit 5); the rest is the payload.
 * (The header's checks come first in hsdb_deserialize() and the checksum keeps corrupt payloads
 * from here, so the table is fuzzed on its own. Hyperscan's own deserializer trusts its input
 * and is not ours to fuzz.) */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "matcher/hsdb.h"

#define FUZZ_MAX_INPUT 4096

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    unsigned groups = data[0] & 0x1fu; /* the targets' bits and HSDB_GROUP_BODY_PLAIN */
    enum hsdb_layout layout = (data[0] >> 5) & 1 ? HSDB_LAYOUT_ONE : HSDB_LAYOUT_PER_TARGET;
    const char *payload = (const char *)data + 1;
    size_t plen = size - 1;
    size_t lens[HSDB_MAX_DBS];
    struct sw_err err = {{0}};

    unsigned n = hsdb_table_check(payload, plen, groups, layout, lens, &err);
    if (n == 0) {
        if (strstr(err.msg, "layout check failed") == NULL)
            abort(); /* every refusal names its check */
        return 0;
    }
    /* accepted: as many databases as the layout makes of these groups, in the table's own
     * words, and lengths that cover the rest of the payload exactly */
    unsigned want =
        layout == HSDB_LAYOUT_ONE || groups == 0 ? 1 : (unsigned)__builtin_popcount(groups);
    if (n != want || n > HSDB_MAX_DBS)
        abort();
    const uint8_t *p = data + 1;
    if ((p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24) != (uint32_t)layout)
        abort();
    size_t sum = HSDB_PAYLOAD_HEAD + (size_t)n * HSDB_PAYLOAD_ENTRY;
    for (unsigned g = 0; g < n; g++) {
        if (lens[g] == 0 || lens[g] != le64(p + HSDB_PAYLOAD_HEAD + g * HSDB_PAYLOAD_ENTRY + 8))
            abort();
        sum += lens[g];
    }
    if (sum != plen)
        abort();
    return 0;
}
