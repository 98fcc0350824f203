/* MSNP offline-message (OIM) metadata: the Mail-Data value of the notification server's
 * `text/x-msmsgsinitialmdatanotification` (at sign-in) and `text/x-msmsgsoimnotification`
 * (while signed in) messages, and the RFC 2047 encoded-words of its name and subject fields.
 *
 * Pure: no I/O, no allocation, no logging. The value is complete when the MIME parser hands it
 * over, so it is parsed whole; every span is a position in the caller's buffer.
 *
 * What the value holds (docs/msnp.md, "Offline messages"): either the string `too-large` (more
 * OIMs than the server lists; the client asks the SOAP service for them) or one `<MD>` element
 * whose children are `<M>` entries, one per stored OIM, and others (`<E>` inbox counts, `<Q>`
 * quota) that are kept but not read. Inside an `<M>`: `E` sender passport, `N` sender friendly
 * name, `SU` subject (both RFC 2047 encoded-words or plain text), `I` the OIM's id (what the
 * client fetches by), and `T`, `S`, `RT`, `RS`, `SZ`, `F` that are not read.
 *
 * Accepted XML (anything else is an error, so the caller passes the message untouched):
 *   value   := ws* "too-large" ws*  |  ws* element(MD) ws*
 *   element := "<" name ">" (text | (ws* element)* ws*) "</" name ">"  |  "<" name "/>"
 * names of [A-Za-z0-9_.:-] (at most MSNP_OIM_NAME_MAX bytes), no attributes, no comments,
 * processing instructions or CDATA, text without '<', no mixed content, nesting at most
 * MSNP_OIM_DEPTH_MAX deep. An `<M>` field (E, N, SU, I) must be text and appear once.
 */
#ifndef SW_PROTOCOLS_MSNP_OIM_H
#define SW_PROTOCOLS_MSNP_OIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/msnp/msnp_parser.h"
#include "protocols/sw_rc.h"

#define MSNP_OIM_ENTRIES_CAP 64                 /* entries kept (array embedded in the result) */
#define MSNP_OIM_ENTRIES_MAX_DEFAULT 32         /* servers list ~25, then send "too-large" */
#define MSNP_OIM_FIELD_MAX_DEFAULT 1024         /* bytes of one E, N, SU or I field as sent */
#define MSNP_OIM_FIELD_MAX_LIMIT 16384          /* highest accepted field_max */
#define MSNP_OIM_DEPTH_MAX 4                    /* MD > M > field is 3; one level of slack */
#define MSNP_OIM_NAME_MAX 16                    /* bytes of an element name */
#define MSNP_OIM_DECODED_MAX(n) ((n)*3 / 2 + 4) /* msnp_oim_decode output bound for n bytes */

struct msnp_oim_limits {
    size_t entries_max; /* <M> entries per value; 1..MSNP_OIM_ENTRIES_CAP */
    size_t field_max;   /* bytes of one E, N, SU or I field; 1..MSNP_OIM_FIELD_MAX_LIMIT */
};

/* One `<M>` entry. Spans are positions in the parsed value; a field that is absent has
 * has_x false and an empty span. Field spans are the raw text between the tags (XML
 * entities and encoded-words not decoded). */
struct msnp_oim_entry {
    struct msnp_span m; /* "<M>...</M>" from '<' to the last '>' */
    struct msnp_span e, n, su, i;
    bool has_e, has_n, has_su, has_i;
};

struct msnp_oim {
    /* set when msnp_oim_parse returns SW_ERROR: static string, offset in the value */
    const char *err;
    size_t err_pos;

    bool too_large;      /* the value is "too-large": no entries listed */
    struct msnp_span md; /* the <MD> element, when not too_large */
    size_t nentries;
    struct msnp_oim_entry entries[MSNP_OIM_ENTRIES_CAP];
};

/* Fills lim with the defaults above. */
void msnp_oim_limits_default(struct msnp_oim_limits *lim);

/* Parses the Mail-Data value buf[0..len) (borrowed; spans are positions in it) with limits lim
 * (NULL = defaults). Returns SW_OK with out filled (too_large, or md and the entries in order),
 * or SW_ERROR (out->err, out->err_pos): XML outside the grammar above, an element not closed
 * or closed by another name, nesting too deep, more than entries_max entries, a field longer
 * than field_max, a field twice in one entry or with child elements, or limits out of range. */
int msnp_oim_parse(const uint8_t *buf, size_t len, const struct msnp_oim_limits *lim,
                   struct msnp_oim *out);

/* Writes buf[0..len) (the value o was parsed from; borrowed) without the entries i for which
 * drop[i] is true (drop has o->nentries elements; borrowed) to out[0..cap): every other byte,
 * the rest of <MD> included, is kept as it was. Returns SW_OK with *out_len set (at most len),
 * or SW_ERROR if cap is too small (nothing useful in out). */
int msnp_oim_remove(const uint8_t *buf, size_t len, const struct msnp_oim *o, const bool *drop,
                    uint8_t *out, size_t cap, size_t *out_len);

/* Decodes the field text src[0..len) (borrowed) into UTF-8 in out[0..cap): XML character
 * entities outside encoded-words (the five predefined ones, &#N; and &#xN;) and RFC 2047
 * encoded-words
 * `=?charset?B|Q?text?=` whose charset is UTF-8, US-ASCII or ISO-8859-1 (an RFC 2231 `*lang`
 * suffix ignored); an encoded-word in any other charset, or malformed, is copied as it is, and
 * whitespace between two adjacent encoded-words is dropped. No NUL is written. Returns SW_OK
 * with *out_len set, or SW_ERROR when out is too small (*out_len = cap bytes written, the text
 * cut there). MSNP_OIM_DECODED_MAX(len) bytes are always enough. */
int msnp_oim_decode(const uint8_t *src, size_t len, char *out, size_t cap, size_t *out_len);

#endif
