/* Fuzz target: rule-file parsing, and compiling what parsed (hsdb_compile), then a scan of the
 * input with the result and a serialize/deserialize round trip. Inputs and limits are small so
 * that Hyperscan's compiler, the slow part, keeps runs fast. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "matcher/hsdb.h"
#include "matcher/rules.h"

#define FUZZ_MAX_INPUT 2048

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    const struct ruleset *rs = ctx;
    if (id >= rs->n)
        abort(); /* match ids must map to rules */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    struct ruleset_limits lim = {.max_rules = 8, .max_line = 512, .max_pattern = 96};
    struct ruleset *rs = ruleset_new(&lim);
    struct sw_err err;
    if (rs == NULL)
        return 0;
    size_t before = rs->n;
    if (ruleset_parse_rules(rs, (const char *)data, size, "fuzz.rules", &err) != SW_OK) {
        if (rs->n != before || strncmp(err.msg, "fuzz.rules", 10) != 0)
            abort(); /* all-or-nothing, and errors name the file */
        ruleset_free(rs);
        return 0;
    }
    struct ruleset *copy = ruleset_clone(rs);
    /* both layouts, picked by the input's length so that every corpus file keeps its meaning */
    enum hsdb_layout layout = size % 2 ? HSDB_LAYOUT_ONE : HSDB_LAYOUT_PER_TARGET;
    struct hsdb *db = hsdb_compile(rs, layout, &err); /* takes rs */
    if (db != NULL) {
        hs_scratch_t *scratch = NULL;
        if (hsdb_alloc_scratch(db, &scratch, &err) == SW_OK) {
            for (unsigned i = 0; i < hsdb_count(db); i++)
                hs_scan(hsdb_database(db, i), (const char *)data, (unsigned)size, 0, scratch,
                        on_match, (void *)hsdb_ruleset(db));
            hs_free_scratch(scratch);
        }
        char *out = NULL;
        size_t out_len = 0;
        if (copy != NULL && hsdb_serialize(db, &out, &out_len, &err) == SW_OK) {
            struct hsdb *db2 = hsdb_deserialize(copy, layout, out, out_len, &err);
            copy = NULL;
            if (db2 == NULL)
                abort(); /* our own bytes for the same ruleset must load */
            hsdb_unref(db2);
        }
        free(out);
        hsdb_unref(db);
    } else if (strstr(err.msg, "fuzz.rules:") == NULL && strstr(err.msg, "hyperscan:") == NULL) {
        abort(); /* compile errors name the rule's place */
    }
    ruleset_free(copy);
    return 0;
}
