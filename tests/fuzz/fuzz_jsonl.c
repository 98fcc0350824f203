/* Fuzz target for protocols/jsonl.c and proxy/jsonout.c: cuts the input into lines like the
 * scanner does and parses each with a scratch buffer of exactly the documented size, checks the record's invariants (fields lie in
 * the scratch, are NUL-terminated, parse identically with a trailing '\r'), and escapes every
 * decoded field back to JSON, which must re-parse to the same body. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/jsonl.h"
#include "proxy/jsonout.h"

static void check_field(const char *f, size_t len, const char *scratch, size_t cap)
{
    if (f == NULL) {
        if (len != 0)
            abort();
        return;
    }
    if (f < scratch || f + len >= scratch + cap || f[len] != '\0')
        abort();
}

static int same_field(const char *a, size_t al, const char *b, size_t bl)
{
    if ((a == NULL) != (b == NULL) || al != bl)
        return 0;
    return a == NULL || memcmp(a, b, al) == 0;
}

static void fuzz_line(const uint8_t *data, size_t len)
{
    char *line = malloc(len + 1);
    char *scratch = malloc(len + 6);
    char *scratch2 = malloc(len + 6);
    char *esc = NULL, *scratch3 = NULL;
    struct jsonl_record rec, rec2, rec3;
    struct sw_err err;
    int rc, rc2;

    if (line == NULL || scratch == NULL || scratch2 == NULL)
        goto done;
    if (len > 0)
        memcpy(line, data, len);
    rc = jsonl_parse(line, len, scratch, len + 5, &rec, &err);
    line[len] = '\r';
    rc2 = jsonl_parse(line, len + 1, scratch2, len + 6, &rec2, &err);
    if (rc != rc2)
        abort();
    if (rc != SW_OK)
        goto done;
    check_field(rec.from, rec.from_len, scratch, len + 5);
    check_field(rec.to, rec.to_len, scratch, len + 5);
    check_field(rec.body, rec.body_len, scratch, len + 5);
    check_field(rec.ip, rec.ip_len, scratch, len + 5);
    if (rec.body == NULL || !same_field(rec.body, rec.body_len, rec2.body, rec2.body_len) ||
        !same_field(rec.from, rec.from_len, rec2.from, rec2.from_len) ||
        !same_field(rec.to, rec.to_len, rec2.to, rec2.to_len) ||
        !same_field(rec.ip, rec.ip_len, rec2.ip, rec2.ip_len) || rec.has_ts != rec2.has_ts)
        abort();

    /* Round trip: {"body":"<escaped>"} must parse back to the same body (the parser only
     * accepts valid UTF-8, so the escaper must never substitute U+FFFD here). */
    size_t need = jsonout_escape(NULL, 0, rec.body, rec.body_len);
    size_t cap = need + 16;
    esc = malloc(cap);
    scratch3 = malloc(cap + 5);
    if (esc == NULL || scratch3 == NULL)
        goto done;
    memcpy(esc, "{\"body\":\"", 9);
    if (jsonout_escape(esc + 9, cap - 9, rec.body, rec.body_len) != need)
        abort();
    memcpy(esc + 9 + need, "\"}", 2);
    if (jsonl_parse(esc, need + 11, scratch3, cap + 5, &rec3, &err) != SW_OK)
        abort();
    if (!same_field(rec.body, rec.body_len, rec3.body, rec3.body_len))
        abort();
done:
    free(scratch3);
    free(esc);
    free(scratch2);
    free(scratch);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A line never holds its newline. Several lines per input let one corpus file carry many
     * vectors (the stored corpus stays small). */
    while (size > 0) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t len = nl ? (size_t)(nl - data) : size;
        fuzz_line(data, len);
        if (nl == NULL)
            break;
        size -= len + 1;
        data += len + 1;
    }
    return 0;
}
