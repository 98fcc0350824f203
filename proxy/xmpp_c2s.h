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
#include "proxy/session.h"

/* The xmpp-c2s protocol (proxy/xmpp_proto.c); see docs/xmpp.md. */
extern const struct proto_ops xmpp_c2s_proto;

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

/* Position-aware accounting for one direction. An ack covers the first h stanzas the receiver
 * got; only the drops and inserts that happened before its h-th stanza (plus drops right after
 * it) may be applied, else a resume would skip a legitimate stanza the receiver never got, or
 * an early bounce would push h below what the server sent. Each drop or insert is recorded
 * with the receiver's stanza count at that moment; an ack applies (and retires) the records it
 * covers. Acks only grow, so retired records never come back. When the ring is full the oldest
 * record is applied early: a drop applied early never exceeds what the sender sent. */
#define XMPP_C2S_SM_MARKS 128

struct xmpp_c2s_sm_track {
    uint32_t delivered;          /* stanzas of this direction that reached the receiver */
    struct xmpp_c2s_sm_dir base; /* records already covered by an ack */
    uint16_t head, n;            /* ring of records */
    uint32_t pos[XMPP_C2S_SM_MARKS];
    uint8_t insert[XMPP_C2S_SM_MARKS];
};

/* A stanza of the direction reached (was forwarded toward) the receiver. */
void xmpp_c2s_track_delivered(struct xmpp_c2s_sm_track *t);
/* A stanza of the sender was removed. */
void xmpp_c2s_track_dropped(struct xmpp_c2s_sm_track *t);
/* The proxy inserted a stanza of its own toward the receiver. */
void xmpp_c2s_track_inserted(struct xmpp_c2s_sm_track *t);
/* The receiver acked h: retires the records h covers and returns the correction for h. */
struct xmpp_c2s_sm_dir xmpp_c2s_track_ack(struct xmpp_c2s_sm_track *t, uint32_t h);
/* After a resume at receiver count h: records beyond h are forgotten (the sender retransmits
 * those stanzas, and they are judged again) and counting goes on from h. */
void xmpp_c2s_track_resume(struct xmpp_c2s_sm_track *t, uint32_t h);

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

/* One child element of an element's content: its bytes content[start..end) and its local
 * name. */
struct xmpp_c2s_child {
    size_t start, end;
    const char *local;
    size_t local_len;
};

/* Finds the next child element of content[0..len) (borrowed; the content of an element the
 * parser accepted, so well-formed) at or after *pos, skipping text and CDATA. Quote-aware.
 * Returns true and fills *c (and sets *pos = c->end), or false when there is none. */
bool xmpp_c2s_next_child(const char *content, size_t len, size_t *pos, struct xmpp_c2s_child *c);

/* Finds attribute name in the start tag at tag[0..len) (borrowed; starting at '<'): sets
 * *val and *val_len to its raw value. Returns false if absent. */
bool xmpp_c2s_attr(const char *tag, size_t len, const char *name, const char **val,
                   size_t *val_len);

/* Rewrites <stream:features> el[0..len) (borrowed; content at el[cpos..cpos+clen)): removes
 * a <starttls/> child when strip_tls; removes SASL mechanisms ending in -PLUS and the XEP-0440
 * <sasl-channel-binding/> list when strip_plus (the upstream leg is TLS: its channel binding
 * is not the client's; see docs/xmpp.md); lowers XEP-0478 <limits xmlns='urn:xmpp:stream-limits:0'>
 * <max-bytes> to max_bytes and <idle-seconds> to idle_max (0 = leave), and adds a <limits/>
 * child with max_bytes when the server advertised none. Writes the new element to out[0..cap)
 * and returns its length (may exceed cap, like snprintf), or 0 when nothing changes. */
size_t xmpp_c2s_rewrite_features(const char *el, size_t len, size_t cpos, size_t clen,
                                 bool strip_tls, bool strip_plus, uint32_t max_bytes,
                                 uint32_t idle_max, char *out, size_t cap);

/* From an <iq type='result'> el[0..len) (borrowed; content at cpos/clen) holding
 * <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>J</jid></bind>: sets *jid and *jid_len to
 * the raw J. Returns false otherwise. */
bool xmpp_c2s_bind_jid(const char *el, size_t len, size_t cpos, size_t clen, const char **jid,
                       size_t *jid_len);

/* Calls cb for every <item jid='...'> of a <query xmlns='jabber:iq:roster'> in an iq
 * el[0..len) (content at cpos/clen), with the raw jid and whether subscription='remove'.
 * Returns the number of items, or -1 when the iq holds no roster query. */
int xmpp_c2s_roster_items(const char *el, size_t len, size_t cpos, size_t clen,
                          void (*cb)(void *arg, const char *jid, size_t jid_len, bool remove),
                          void *arg);

#endif
