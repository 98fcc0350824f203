/* A strict reader for the JSON-lines input of spimwall-scan: one JSON object per line,
 *   {"from": "...", "to": "...", "body": "...", "ts": 1234.5, "ip": "192.0.2.1"}
 * Only "body" is required. Unknown keys are skipped whatever their value (nested objects and
 * arrays up to a bounded depth). Pure: no allocation, no I/O. */
#ifndef SW_PROTOCOLS_JSONL_H
#define SW_PROTOCOLS_JSONL_H

#include <stdbool.h>
#include <stddef.h>

#include "protocols/sw_rc.h"

#define JSONL_MAX_DEPTH 16

struct jsonl_record {
    /* Decoded (unescaped, UTF-8) strings in the caller's scratch buffer, NUL-terminated;
     * NULL with length 0 when the key is absent. */
    const char *from;
    size_t from_len;
    const char *to;
    size_t to_len;
    const char *body;
    size_t body_len;
    const char *ip;
    size_t ip_len;
    double ts; /* seconds; valid when has_ts */
    bool has_ts;
};

/* Parses one line (without its newline; a trailing '\r' is accepted) into rec. Strings are
 * decoded into scratch, which needs at most len + 5 bytes. Full JSON string syntax: all escapes,
 * \uXXXX with surrogate pairs (a lone surrogate is an error), no raw control characters. A
 * value of the wrong type for a known key ("ts" must be a number, the others strings or null)
 * is an error; duplicate known keys are an error. Returns SW_OK, or SW_ERROR with err
 * "column N: reason" (1-based byte column). */
int jsonl_parse(const char *line, size_t len, char *scratch, size_t scratch_cap,
                struct jsonl_record *rec, struct sw_err *err);

#endif
