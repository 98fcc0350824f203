/* The msnp protocol (proxy/msnp_session.c): notification-server and switchboard connections
 * filtered per command; see docs/msnp.md. */
#ifndef SW_PROXY_MSNP_SESSION_H
#define SW_PROXY_MSNP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "protocols/msnp/msnp_parser.h"
#include "proxy/session.h"

extern const struct proto_ops msnp_proto;

/* Builds the tagged form of a MSG event ev (borrowed) whose MIME body starts at body_pos in
 * its payload: X-Spam-Flag, X-Spam-Score and X-Spam-Reasons headers inserted before the blank
 * line ending the headers, and the command line's byte count fixed; everything else is kept
 * byte for byte. Writes it to out[0..cap) and returns its length; 0 if it cannot be built (no
 * header block, or cap too small); SIZE_MAX if the payload would pass 1664 bytes, the MSG limit
 * of MSN servers and clients. */
size_t msnp_session_tag(const struct msnp_event *ev, size_t body_pos, double score,
                        const char *reasons, uint8_t *out, size_t cap);

/* Writes the XFR/RNG event ev (borrowed) with its switchboard address hp->addr replaced by
 * sb (NUL-terminated "host:port") to out[0..cap); every other byte is kept. Returns the length,
 * or 0 if hp is not inside the line or the result does not fit. */
size_t msnp_session_rewrite_addr(const struct msnp_event *ev, const struct msnp_hostport *hp,
                                 const char *sb, uint8_t *out, size_t cap);

#endif
