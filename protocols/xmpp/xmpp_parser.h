/* XMPP stream parser: an incremental restricted-XML tokenizer for one direction of an XMPP
 * stream (RFC 6120), reporting the stream header, each top-level element (stanza or stream
 * negotiation element), whitespace keepalives and the stream close.
 *
 * Pure: no I/O, no allocation, no logging. See docs/xmpp-parser.md.
 *
 * Stream offsets and retention (as in msnp_parser.h). The parser counts bytes from the start
 * of the direction's byte stream (uint64_t offsets; a restart does not reset them). Each call
 * passes a buffer holding stream bytes [base, base+len); it must start at or before
 * xmpp_parser_keep(p) and end at or after the end of the bytes passed before. The caller keeps
 * the bytes from xmpp_parser_keep(p) on contiguous (at most stanza_max of them) and may drop
 * everything before. Bytes are scanned once (no rescanning); the parser reads back only bytes
 * of the element being parsed (names, attribute values), which the retention rule keeps.
 *
 * Events tile the stream: every byte belongs to exactly one event (stream open, whitespace,
 * top-level element, stream close), so a proxy forwards the bytes of events it does not change
 * as they came. Whitespace between top-level elements is reported as soon as it is scanned, so
 * one run of whitespace may arrive as several events depending on how the bytes were split;
 * every other event is identical however the bytes are split.
 *
 * Restricted XML (RFC 6120 section 11) is enforced lexically: comments, processing
 * instructions (other than the XML declaration at the start of a stream), DOCTYPE and entity
 * references other than the five predefined ones give XMPP_ERR_RESTRICTED_XML; CDATA sections
 * are allowed. Well-formedness errors (tags, attributes, names, UTF-8, XML 1.0 characters,
 * unbound prefixes, duplicate attributes) give XMPP_ERR_NOT_WELL_FORMED. Limits give
 * XMPP_ERR_POLICY_VIOLATION the moment the first byte over a limit is scanned.
 */
#ifndef SW_PROTOCOLS_XMPP_PARSER_H
#define SW_PROTOCOLS_XMPP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/sw_rc.h"

#define XMPP_STANZA_MAX_DEFAULT (256u * 1024) /* Prosody c2s default; s2s callers pass 512 KiB */
#define XMPP_STANZA_MAX_LIMIT (64u << 20)     /* highest accepted stanza_max */
#define XMPP_DEPTH_MAX_DEFAULT 32             /* element levels inside a top-level element */
#define XMPP_DEPTH_MAX_LIMIT 64
#define XMPP_ATTRS_MAX_DEFAULT 32 /* attributes (namespace declarations included) per element */
#define XMPP_ATTRS_MAX_LIMIT 64
#define XMPP_NAME_MAX_DEFAULT 128 /* bytes of a qualified element or attribute name */
#define XMPP_NAME_MAX_LIMIT 256
#define XMPP_VALUE_MAX_DEFAULT 16384 /* raw bytes of one attribute value */
#define XMPP_NS_MAX_DEFAULT 32       /* namespace declarations in scope */
#define XMPP_NS_MAX_LIMIT 64
#define XMPP_HEADER_STORE 2048 /* bytes kept from the stream header: its name, xmlns, xml:lang */

struct xmpp_limits {
    size_t stanza_max; /* bytes of one top-level element or stream header; 64..LIMIT */
    size_t depth_max;  /* nesting levels, the top-level element being level 1; 1..LIMIT */
    size_t attrs_max;  /* attributes per element; 1..LIMIT */
    size_t name_max;   /* bytes of a qualified name; 8..LIMIT */
    size_t value_max;  /* raw bytes of an attribute value; 16..stanza_max */
    size_t ns_max;     /* namespace declarations in scope (all open elements); 2..LIMIT */
};

/* Stream error conditions (RFC 6120 section 4.9.3); the proxy sends the matching element. */
enum xmpp_error {
    XMPP_ERR_NONE = 0,
    XMPP_ERR_NOT_WELL_FORMED,      /* <not-well-formed/> */
    XMPP_ERR_RESTRICTED_XML,       /* <restricted-xml/> */
    XMPP_ERR_POLICY_VIOLATION,     /* <policy-violation/>: a limit (size, depth, counts) */
    XMPP_ERR_INVALID_NAMESPACE,    /* <invalid-namespace/>: stream or content namespace */
    XMPP_ERR_BAD_FORMAT,           /* <bad-format/>: well-formed XML that is not an XMPP stream */
    XMPP_ERR_UNSUPPORTED_ENCODING, /* <unsupported-encoding/>: XML declaration not UTF-8 */
};

enum xmpp_event_type {
    XMPP_EV_STREAM_OPEN = 1, /* optional BOM / XML declaration and the stream header */
    XMPP_EV_ELEMENT,         /* one complete top-level element (stanza or negotiation) */
    XMPP_EV_WHITESPACE,      /* whitespace between top-level elements (keepalive) */
    XMPP_EV_STREAM_CLOSE,    /* </stream:stream> */
};

/* Top-level elements the proxy acts on, classified by namespace and local name. */
enum xmpp_kind {
    XMPP_EL_OTHER = 0,
    XMPP_EL_STREAM,  /* the stream header (XMPP_EV_STREAM_OPEN / CLOSE only) */
    XMPP_EL_MESSAGE, /* jabber:client or jabber:server */
    XMPP_EL_PRESENCE,
    XMPP_EL_IQ,
    XMPP_EL_FEATURES,     /* stream:features */
    XMPP_EL_STREAM_ERROR, /* stream:error */
    XMPP_EL_STARTTLS,     /* urn:ietf:params:xml:ns:xmpp-tls */
    XMPP_EL_PROCEED,
    XMPP_EL_TLS_FAILURE,
    XMPP_EL_SASL_AUTH, /* urn:ietf:params:xml:ns:xmpp-sasl */
    XMPP_EL_SASL_CHALLENGE,
    XMPP_EL_SASL_RESPONSE,
    XMPP_EL_SASL_SUCCESS,
    XMPP_EL_SASL_FAILURE,
    XMPP_EL_SASL_ABORT,
    XMPP_EL_SM_A, /* urn:xmpp:sm:3 (XEP-0198) */
    XMPP_EL_SM_R,
    XMPP_EL_SM_ENABLE,
    XMPP_EL_SM_ENABLED,
    XMPP_EL_SM_RESUME,
    XMPP_EL_SM_RESUMED,
    XMPP_EL_SM_FAILED,
};

/* Encrypted payloads of a message (bits of xmpp_event.encrypted): the body cannot be scanned. */
#define XMPP_ENC_OMEMO 0x01      /* <encrypted xmlns='eu.siacs.conversations.axolotl'/> */
#define XMPP_ENC_OMEMO2 0x02     /* <encrypted xmlns='urn:xmpp:omemo:2'/> */
#define XMPP_ENC_OTR 0x04        /* the chosen body starts with "?OTR" */
#define XMPP_ENC_OPENPGP 0x08    /* <openpgp xmlns='urn:xmpp:openpgp:0'/> (XEP-0373) */
#define XMPP_ENC_LEGACY_PGP 0x10 /* <x xmlns='jabber:x:encrypted'/> (XEP-0027) */

/* A byte range inside an event's data (pos from data[0]); set is false when absent. Attribute
 * values and text are raw (still escaped): see xmpp_decode() in xmpp_escape.h. */
struct xmpp_span {
    size_t pos;
    size_t len;
    bool set;
};

/* One event. data borrows the caller's buffer, ns may point into the parser: both are valid
 * until the next call on the parser (or until the caller drops those bytes, if earlier). */
struct xmpp_event {
    enum xmpp_event_type type;
    uint64_t off;     /* stream offset of data[0] */
    const char *data; /* the event's bytes, data[0..size) */
    size_t size;

    /* STREAM_OPEN and ELEMENT (for STREAM_CLOSE only name and kind) */
    enum xmpp_kind kind;
    struct xmpp_span name;  /* qualified element name, e.g. "stream:stream", "message" */
    struct xmpp_span local; /* local part of name */
    const char *ns;         /* namespace URI (raw), NULL if none; see above for lifetime */
    size_t ns_len;
    struct xmpp_span to, from, type_attr, id, lang; /* lang is xml:lang */
    struct xmpp_span h, previd;                     /* XEP-0198 attributes */
    struct xmpp_span version;                       /* stream header only */
    bool empty;                                     /* <x/>: no content and no end tag */
    /* ELEMENT: where the element's content starts and the end tag (or "/>") starts, for
     * rewriters that insert a child; content.len is 0 for an empty element. */
    struct xmpp_span content;

    /* STREAM_OPEN: the default (content) namespace is jabber:server (else jabber:client);
     * prefix is the stream prefix, e.g. "stream" (len 0 when the header is unprefixed). */
    bool server_ns;
    bool xml_decl;
    struct xmpp_span prefix;

    /* ELEMENT, kind MESSAGE: the raw content of the chosen direct <body/> child (the first one
     * without xml:lang or with the message's xml:lang, inherited from the stream header, else
     * the first one); body.set is false without a body. Decode with xmpp_decode(). */
    struct xmpp_span body;
    unsigned encrypted; /* XMPP_ENC_* bits */
    bool has_shim;      /* a direct <headers xmlns='http://jabber.org/protocol/shim'/> child */
};

/* A pending attribute of the start tag being parsed (stream offsets). */
struct xmpp_attr {
    uint64_t name_off, val_off;
    uint32_t val_len;
    uint16_t name_len, colon; /* colon: index of ':' in the name, 0 = none */
};

/* A namespace declaration in scope. Declarations of the stream header live in p->store. */
struct xmpp_ns {
    uint64_t pfx_off, uri_off; /* stream offsets, or p->store indexes when stored */
    uint32_t uri_len;
    uint16_t pfx_len;
    bool stored;
};

/* An open element. The stream header's name lives in p->store. */
struct xmpp_open {
    uint64_t name_off;
    uint16_t name_len;
    uint16_t ns_n; /* declarations in scope before this element */
    uint8_t role;  /* private: what closing it means for the current message */
};

/* One direction's parser. Embed it; fields are private except err, err_pos and err_msg. */
struct xmpp_parser {
    struct xmpp_limits lim;
    /* set when xmpp_parser_feed returns SW_ERROR; err_msg is a static string */
    enum xmpp_error err;
    uint64_t err_pos;
    const char *err_msg;

    int state;
    int ret_state;    /* state to return to after an entity reference */
    uint64_t pos;     /* stream offset of the next byte to scan */
    uint64_t start;   /* first byte of the current event (stream header, element, space) */
    bool in_event;    /* bytes from start on belong to an event not yet delivered */
    uint64_t tok_off; /* start of the current name, value or XML declaration */
    uint8_t quote;
    bool space;       /* whitespace seen since the last attribute (required before the next) */
    bool xml_decl;    /* this stream began with an XML declaration */
    uint8_t match;    /* progress through a fixed string ("xml", "[CDATA[") */
    uint8_t brackets; /* consecutive ']' seen in text or CDATA */
    /* character references */
    uint32_t ref_val;
    uint8_t ref_n;
    char ent[8];
    /* UTF-8 sequence in progress */
    uint8_t u8_need;
    uint32_t u8_cp, u8_min;

    uint64_t lt_off;      /* the last '<' in content */
    uint64_t content_off; /* first byte after the top-level element's start tag */

    size_t nattrs;
    struct xmpp_attr attrs[XMPP_ATTRS_MAX_LIMIT];
    size_t depth; /* open elements, the stream header included */
    struct xmpp_open open[XMPP_DEPTH_MAX_LIMIT + 2];
    size_t nns;
    struct xmpp_ns ns[XMPP_NS_MAX_LIMIT];

    /* stream header data kept for the whole stream */
    char store[XMPP_HEADER_STORE];
    size_t store_len;
    size_t stream_lang_off, stream_lang_len;
    bool stream_lang;

    /* the top-level element being parsed; ev.data is NULL until delivered */
    struct xmpp_event ev;
    struct xmpp_ns ev_ns; /* where ev.ns is: */
    int ev_ns_kind;       /* 0 none, 1 p->store, 2 stream offset, 3 the XML namespace */
    uint64_t body_off;    /* content start of the <body/> being read */
    bool body_pref;       /* the chosen body is a preferred one (lang matches) */
    bool ws_event;        /* a whitespace event is pending */
};

/* Fills lim with the defaults above. */
void xmpp_limits_default(struct xmpp_limits *lim);

/* Initialises p with limits lim (copied; NULL = defaults), expecting a stream header at stream
 * offset 0. Returns SW_OK, or SW_ERROR if a limit is out of range (p is then unusable). */
int xmpp_parser_init(struct xmpp_parser *p, const struct xmpp_limits *lim);

/* Discards the current stream (after STARTTLS or SASL success) and expects a new stream
 * header at the next unscanned offset, xmpp_parser_keep(p). Keeps limits and offsets. */
void xmpp_parser_restart(struct xmpp_parser *p);

/* Parses stream bytes buf[0..len), which are stream offsets [base, base+len) (borrowed for
 * the call; ev->data points into buf). Requires base <= xmpp_parser_keep(p) and
 * base + len >= the end of the bytes passed before. Returns
 *   SW_OK: one event is complete and ev is filled; call again (same buf) for the next;
 *   SW_AGAIN: every byte was scanned and no event is complete; keep the bytes from
 *             xmpp_parser_keep(p) on and call again when more arrive;
 *   SW_ERROR: p->err says which stream error to send, p->err_pos is the stream offset of the
 *             offending byte; the stream cannot continue. Every later call returns SW_ERROR. */
int xmpp_parser_feed(struct xmpp_parser *p, const char *buf, size_t len, uint64_t base,
                     struct xmpp_event *ev);

/* Stream offset of the first byte the caller must still hold (start of the event being
 * parsed; after SW_OK, everything before it may be released once ev is no longer used). */
uint64_t xmpp_parser_keep(const struct xmpp_parser *p);

/* Name of the stream error element for err (e.g. "not-well-formed"); static string. */
const char *xmpp_error_condition(enum xmpp_error err);

#endif
