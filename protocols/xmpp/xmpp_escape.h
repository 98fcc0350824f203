/* XML text helpers for the XMPP parser's raw slices: decoding (predefined entities, character
 * references, CDATA sections) and escaping for rewriters.
 *
 * Pure: no I/O, no allocation. The decoder is meant for bytes the parser accepted, but is
 * memory-safe on any input: markup it does not understand is copied through unchanged. */
#ifndef SW_PROTOCOLS_XMPP_ESCAPE_H
#define SW_PROTOCOLS_XMPP_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* Decodes raw text content or an attribute value raw[0..len) (borrowed) into out[0..cap):
 * resolves &amp; &lt; &gt; &quot; &apos; and &#N; / &#xH; (to UTF-8), unwraps CDATA sections
 * and drops the tags of child elements (keeping their text). Returns the decoded length, which
 * may exceed cap: then only the first cap bytes were written (like snprintf, no terminator). */
size_t xmpp_decode(const char *raw, size_t len, char *out, size_t cap);

/* True if raw[0..len) (borrowed; an attribute value) decodes to exactly the NUL-terminated
 * string lit. */
bool xmpp_raw_eq(const char *raw, size_t len, const char *lit);

/* Escapes in[0..len) (borrowed) for use as text or an attribute value: & < > " ' become
 * entity references. Writes at most cap bytes to out; returns the escaped length (which may
 * exceed cap, like xmpp_decode). */
size_t xmpp_escape(const char *in, size_t len, char *out, size_t cap);

#endif
