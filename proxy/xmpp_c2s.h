/* XMPP client-to-server filtering (issue 4): the pure helpers the xmpp-c2s proto_ops is built
 * on. Everything here is pure (no I/O, no allocation, no logging) so cmocka can drive it.
 *
 * Stream Management (XEP-0198) accounting. A counter h always counts the stanzas the acking
 * side RECEIVED; the other side compares it with what it SENT. When the proxy drops d stanzas
 * in one direction and inserts i of its own into that same direction, the receiver gets
 * (sent - d + i) stanzas, so every ack flowing back to the sender of that direction must be
 * corrected to h + d - i (mod 2^32, as XEP-0198 counters wrap):
 *   - S2C acks (<a h>, <resumed h>, <failed h> from the server) count C2S stanzas: use the
 *     C2S drop/insert counters;
 *   - C2S acks (<a h>, <resume h> from the client) count S2C stanzas: use the S2C counters
 *     (bounces inserted toward the client are S2C insertions the server never sent). */
#ifndef SW_PROXY_XMPP_C2S_H
#define SW_PROXY_XMPP_C2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/xmpp/xmpp_parser.h"

/* Per-direction XEP-0198 correction: stanzas the proxy removed from / added to one direction. */
struct xmpp_c2s_sm_dir {
    uint32_t dropped;  /* mod 2^32 */
    uint32_t inserted; /* mod 2^32 */
};

/* A session's SM corrections, one per direction. */
struct xmpp_c2s_sm {
    struct xmpp_c2s_sm_dir c2s; /* client to server */
    struct xmpp_c2s_sm_dir s2c; /* server to client */
};

/* True for the elements XEP-0198 counts as stanzas (message, presence, iq). */
bool xmpp_c2s_sm_counts(enum xmpp_kind kind);

/* The h the sender of a direction must see, given the receiver's h and that direction's
 * counters: h + dropped - inserted, mod 2^32. */
uint32_t xmpp_c2s_sm_fix_h(uint32_t h, const struct xmpp_c2s_sm_dir *dir);

/* Parses a raw h attribute value raw[0..len) (borrowed): 1..10 ASCII digits, value <= 2^32-1.
 * Returns true and sets *h, or false (malformed: the caller forwards the element unchanged). */
bool xmpp_c2s_sm_parse_h(const char *raw, size_t len, uint32_t *h);

/* Rewrites the h value of an SM element el[0..len) (borrowed) whose h attribute value is
 * el[h_pos..h_pos+h_len): writes the element with the corrected h to out[0..cap). Returns the
 * length of the rewritten element (which may exceed cap, then out holds only a prefix, like
 * snprintf), or 0 if h_pos/h_len is out of range or the value does not parse. */
size_t xmpp_c2s_sm_rewrite(const char *el, size_t len, size_t h_pos, size_t h_len,
                           const struct xmpp_c2s_sm_dir *dir, char *out, size_t cap);

/* For an ELEMENT event ev (borrowed) seen in one direction (from_server), rewrites the h of an
 * SM ack that needs it: <a>, <resumed>, <failed> from the server with sm->c2s; <a>, <resume>
 * from the client with sm->s2c. Writes the element to out[0..cap) and returns its length (may
 * exceed cap, like snprintf), or 0 when the bytes must be forwarded unchanged (not an ack,
 * no h, unparsable h, or no correction in that direction). */
size_t xmpp_c2s_sm_fix_event(const struct xmpp_c2s_sm *sm, bool from_server,
                             const struct xmpp_event *ev, char *out, size_t cap);

/* Length of the bare JID (localpart@domain) of jid[0..len) (borrowed): everything before the
 * first '/'. */
size_t xmpp_c2s_bare_len(const char *jid, size_t len);

/* Builds the XEP-0131 SHIM block inserted as a child of a tagged message:
 * <headers xmlns='http://jabber.org/protocol/shim'><header name='X-Spam-Flag'>YES</header>
 * <header name='X-Spam-Score'>S</header><header name='X-Spam-Reasons'>R</header></headers>
 * (no whitespace between elements). reasons (borrowed, NUL-terminated, may be NULL = empty) is
 * escaped. Writes at most cap bytes to out; returns the full length (may exceed cap). */
size_t xmpp_c2s_build_shim(double score, const char *reasons, char *out, size_t cap);

/* Builds the policy-violation bounce for a dropped message:
 * <message type='error' from=TO to=FROM id=ID><error type='modify'><policy-violation .../>
 * <text ...>TEXT</text></error></message>. to/from/id are raw attribute values (borrowed,
 * still escaped as they came; NULL or len 0 = attribute omitted), re-escaped after decoding so
 * the output is well-formed whatever quote the original used. text (borrowed, NUL-terminated)
 * is escaped. Writes at most cap bytes to out; returns the full length (may exceed cap), or 0
 * if a decoded attribute is longer than 3072 bytes (the bounce is then skipped). */
size_t xmpp_c2s_build_bounce(const char *to_raw, size_t to_len, const char *from_raw,
                             size_t from_len, const char *id_raw, size_t id_len, const char *text,
                             char *out, size_t cap);

#endif
