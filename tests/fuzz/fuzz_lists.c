/* Fuzz target: list-file parsing for every list kind (the first byte picks the kind), and
 * compiling what parsed (hsdb_compile), then a scan of the input with the result. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "matcher/hsdb.h"
#include "matcher/rules.h"

#define FUZZ_MAX_INPUT 4096

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    const struct ruleset *rs = ctx;
    if (id >= rs->n || rs->rules[id].kind == RULE_KIND_RULE || rs->rules[id].entry == NULL)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    enum rule_kind kind = (enum rule_kind)(1 + data[0] % (RULE_KIND_COUNT - 1));
    struct ruleset_limits lim = {.max_rules = 64, .max_line = 1024};
    struct ruleset *rs = ruleset_new(&lim);
    struct sw_err err;
    if (rs == NULL)
        return 0;
    if (ruleset_parse_list(rs, kind, (const char *)data + 1, size - 1, "fuzz.txt", &err) != SW_OK) {
        if (rs->n != 0 || strncmp(err.msg, "fuzz.txt", 8) != 0)
            abort();
        ruleset_free(rs);
        return 0;
    }
    struct hsdb *db = hsdb_compile(rs, HSDB_LAYOUT_PER_TARGET, &err); /* takes rs */
    if (db == NULL)
        abort(); /* every entry that parses must compile */
    hs_scratch_t *scratch = NULL;
    if (hsdb_alloc_scratch(db, &scratch, &err) == SW_OK) {
        for (unsigned i = 0; i < hsdb_count(db); i++)
            hs_scan(hsdb_database(db, i), (const char *)data + 1, (unsigned)(size - 1), 0, scratch,
                    on_match, (void *)hsdb_ruleset(db));
        hs_free_scratch(scratch);
    }
    hsdb_unref(db);
    return 0;
}
