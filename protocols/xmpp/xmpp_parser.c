/* XMPP stream parser: see xmpp_parser.h and docs/xmpp-parser.md.
 *
 * One byte-wise state machine over the whole stream. States save everything needed to resume
 * at any byte, so a call may stop anywhere and the next one continues at p->pos without
 * rescanning. Runs of plain bytes (text, attribute values, CDATA, names) are skipped with a
 * class-table loop; UTF-8 sequences are validated by a sub-machine (u8_need) that runs before
 * the state switch. Names and attribute values are recorded as stream offsets and read back
 * from the caller's buffer when a start or end tag is complete (the retention rule keeps the
 * whole current element in the buffer).
 *
 *   DOC_START -BOM-> BOM1 -> BOM2 -> DOC_START
 *   DOC_START -'<'-> DOC_LT -'?xml '-> DECL -> DECL_BODY -'?>'-> PROLOG -'<'-> PROLOG_LT
 *   DOC_START/PROLOG -ws-> PROLOG
 *   DOC_LT/PROLOG_LT -name-> STAG_NAME                              (stream header, depth 0)
 *
 *   STAG_NAME -ws-> STAG_ATTRS -name-> ATTR_NAME -'='-> ATTR_QUOTE -q-> ATTR_VALUE -q-> STAG_ATTRS
 *   STAG_NAME/STAG_ATTRS -'/'-> STAG_EMPTY -'>'-> (start tag done)
 *   STAG_NAME/STAG_ATTRS -'>'-> (start tag done): depth 0 -> TOP (STREAM_OPEN event)
 *                                                  depth 1 empty -> TOP (ELEMENT event)
 *                                                  else -> CONTENT
 *   TOP -ws-> TOP (WHITESPACE event)        TOP -'<'-> LT
 *   CONTENT -text-> CONTENT  -'&'-> ENT.. -> CONTENT  -'<'-> LT
 *   LT -name-> STAG_NAME   -'/'-> ETAG_NAME -'>'-> CONTENT | TOP (ELEMENT) | CLOSED (CLOSE)
 *   LT -'!['-> CDATA_OPEN -'CDATA['-> CDATA -']]>'-> CONTENT
 *   LT -'!-', '!D', '?'-> error restricted-xml
 *   ATTR_VALUE -'&'-> ENT -> ENT_NAME | CHARREF -';'-> ATTR_VALUE
 */
#include "protocols/xmpp/xmpp_parser.h"

#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "protocols/ascii.h"
#include "protocols/xmpp/xmpp_escape.h"

enum {
    S_DOC_START = 0,
    S_BOM1,
    S_BOM2,
    S_DOC_LT,
    S_DECL,
    S_DECL_BODY,
    S_DECL_Q,
    S_PROLOG,
    S_PROLOG_LT,
    S_STAG_NAME,
    S_STAG_ATTRS,
    S_STAG_EMPTY,
    S_ATTR_NAME,
    S_ATTR_EQ,
    S_ATTR_QUOTE,
    S_ATTR_VALUE,
    S_TOP,
    S_CONTENT,
    S_LT,
    S_ETAG_NAME,
    S_ETAG_WS,
    S_BANG,
    S_CDATA_OPEN,
    S_CDATA,
    S_ENT,
    S_ENT_NAME,
    S_CHARREF,
    S_CHARREF_DEC,
    S_CHARREF_HEX0,
    S_CHARREF_HEX,
    S_CLOSED,
    S_ERROR,
};

/* roles of open elements (struct xmpp_open.role) */
enum { ROLE_NONE = 0, ROLE_BODY, ROLE_BODY_PREF };

#define C_NSTART 1 /* ASCII name start character */
#define C_NAME 2   /* ASCII name character (':' included; qnames are checked at the end) */
#define C_WS 4     /* XML white space */
#define C_TEXT 8   /* plain in text: no '<', '&', ']', controls or non-ASCII */
#define C_ATTRV 16 /* plain in an attribute value: no '<', '&', quotes, controls, non-ASCII */
#define C_CDATA 32 /* plain in CDATA: no ']', controls or non-ASCII */

/* clang-format off: 16 entries per row, row k holds bytes 16k..16k+15 */
static const unsigned char cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  60, 60, 0,  0,  60, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  60, 56, 40, 56, 56, 56, 32, 40, 56, 56, 56, 56, 56, 58, 58, 56,
    58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 58, 56, 32, 56, 56, 56, 56, 59, 59, 59, 59, 59, 59, 59,
    59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 56, 56, 16, 56, 59,
    56, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59,
    59, 59, 59, 56, 56, 56, 56, 56, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};
/* clang-format on */

/* Skips plain bytes (class bit) from buf[i] up to end and returns the index of the first byte
 * that is not. With SSE2, 16 bytes at a time: a block is all plain unless it holds a byte
 * below 0x20 or above 0x7F (one signed compare) or one of c1..c4; blocks with tab, CR or LF
 * (plain, but caught by the compare) step over that byte and continue. */
static size_t skip_plain(const unsigned char *buf, size_t i, size_t end, unsigned char bit, char c1,
                         char c2, char c3, char c4)
{
    for (;;) {
#if defined(__SSE2__)
        const __m128i lo = _mm_set1_epi8(0x20);
        const __m128i k1 = _mm_set1_epi8(c1), k2 = _mm_set1_epi8(c2);
        const __m128i k3 = _mm_set1_epi8(c3), k4 = _mm_set1_epi8(c4);
        while (end - i >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
            __m128i m = _mm_or_si128(
                _mm_cmplt_epi8(v, lo),
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, k1), _mm_cmpeq_epi8(v, k2)),
                             _mm_or_si128(_mm_cmpeq_epi8(v, k3), _mm_cmpeq_epi8(v, k4))));
            unsigned mask = (unsigned)_mm_movemask_epi8(m);
            if (mask != 0) {
                i += (size_t)__builtin_ctz(mask);
                break;
            }
            i += 16;
        }
#else
        (void)c1, (void)c2, (void)c3, (void)c4;
#endif
        if (i < end && (cls[buf[i]] & bit)) {
#if defined(__SSE2__)
            if (end - i >= 16) {
                i++;
                continue;
            }
#endif
            while (i < end && (cls[buf[i]] & bit))
                i++;
        }
        return i;
    }
}

static const char NS_STREAMS[] = "http://etherx.jabber.org/streams";
static const char NS_CLIENT[] = "jabber:client";
static const char NS_SERVER[] = "jabber:server";
static const char NS_XML[] = "http://www.w3.org/XML/1998/namespace";
static const char NS_TLS[] = "urn:ietf:params:xml:ns:xmpp-tls";
static const char NS_SASL[] = "urn:ietf:params:xml:ns:xmpp-sasl";
static const char NS_SM3[] = "urn:xmpp:sm:3";
static const char NS_SHIM[] = "http://jabber.org/protocol/shim";

void xmpp_limits_default(struct xmpp_limits *lim)
{
    lim->stanza_max = XMPP_STANZA_MAX_DEFAULT;
    lim->depth_max = XMPP_DEPTH_MAX_DEFAULT;
    lim->attrs_max = XMPP_ATTRS_MAX_DEFAULT;
    lim->name_max = XMPP_NAME_MAX_DEFAULT;
    lim->value_max = XMPP_VALUE_MAX_DEFAULT;
    lim->ns_max = XMPP_NS_MAX_DEFAULT;
}

int xmpp_parser_init(struct xmpp_parser *p, const struct xmpp_limits *lim)
{
    memset(p, 0, sizeof(*p));
    if (lim == NULL)
        xmpp_limits_default(&p->lim);
    else
        p->lim = *lim;
    const struct xmpp_limits *l = &p->lim;
    if (l->stanza_max < 64 || l->stanza_max > XMPP_STANZA_MAX_LIMIT || l->depth_max < 1 ||
        l->depth_max > XMPP_DEPTH_MAX_LIMIT || l->attrs_max < 1 ||
        l->attrs_max > XMPP_ATTRS_MAX_LIMIT || l->name_max < 8 ||
        l->name_max > XMPP_NAME_MAX_LIMIT || l->value_max < 16 || l->value_max > l->stanza_max ||
        l->ns_max < 2 || l->ns_max > XMPP_NS_MAX_LIMIT) {
        p->err = XMPP_ERR_BAD_FORMAT;
        p->err_msg = "invalid limits";
        p->state = S_ERROR;
        return SW_ERROR;
    }
    xmpp_parser_restart(p);
    return SW_OK;
}

void xmpp_parser_restart(struct xmpp_parser *p)
{
    if (p->state == S_ERROR)
        return;
    p->state = S_DOC_START;
    p->start = p->pos;
    p->in_event = true;
    p->ws_event = false;
    p->xml_decl = false;
    p->match = 0;
    p->brackets = 0;
    p->u8_need = 0;
    p->nattrs = 0;
    p->depth = 0;
    p->nns = 0;
    p->store_len = 0;
    p->stream_lang = false;
    memset(&p->ev, 0, sizeof(p->ev));
}

uint64_t xmpp_parser_keep(const struct xmpp_parser *p)
{
    return (p->in_event || p->ws_event) ? p->start : p->pos;
}

const char *xmpp_error_condition(enum xmpp_error err)
{
    switch (err) {
    case XMPP_ERR_NONE:
        return "";
    case XMPP_ERR_NOT_WELL_FORMED:
        return "not-well-formed";
    case XMPP_ERR_RESTRICTED_XML:
        return "restricted-xml";
    case XMPP_ERR_POLICY_VIOLATION:
        return "policy-violation";
    case XMPP_ERR_INVALID_NAMESPACE:
        return "invalid-namespace";
    case XMPP_ERR_BAD_FORMAT:
        return "bad-format";
    case XMPP_ERR_UNSUPPORTED_ENCODING:
        return "unsupported-encoding";
    }
    return "undefined-condition";
}

static int fail(struct xmpp_parser *p, enum xmpp_error err, uint64_t pos, const char *msg)
{
    p->err = err;
    p->err_pos = pos;
    p->err_msg = msg;
    p->state = S_ERROR;
    return SW_ERROR;
}

/* The bytes of a stream offset range, held in buf (stream offset base). */
static const char *at(const unsigned char *buf, uint64_t base, uint64_t off)
{
    return (const char *)buf + (off - base);
}

static bool eq(const char *s, size_t n, const char *lit)
{
    size_t ll = strlen(lit);
    return n == ll && memcmp(s, lit, ll) == 0;
}

/* Starts a UTF-8 sequence with lead byte c. Returns false if c cannot start one. */
static bool utf8_lead(struct xmpp_parser *p, unsigned char c)
{
    if (c >= 0xC2 && c <= 0xDF) {
        p->u8_need = 1;
        p->u8_cp = c & 0x1Fu;
        p->u8_min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        p->u8_need = 2;
        p->u8_cp = c & 0x0Fu;
        p->u8_min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        p->u8_need = 3;
        p->u8_cp = c & 0x07u;
        p->u8_min = 0x10000;
    } else {
        return false;
    }
    return true;
}

/* An XML 1.0 Char (production [2]). */
static bool xml_char(uint32_t cp)
{
    if (cp < 0x20)
        return cp == 0x9 || cp == 0xA || cp == 0xD;
    return (cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* Checks a qualified name: at most one ':' and not at either end. Returns the index of the
 * colon (0 = none) or -1. */
static int qname_colon(const char *s, size_t n)
{
    const char *c = memchr(s, ':', n);
    if (c == NULL)
        return 0;
    size_t k = (size_t)(c - s);
    if (k == 0 || k + 1 == n || memchr(c + 1, ':', n - k - 1) != NULL)
        return -1;
    return (int)k;
}

/* Resolves the URI of a declaration. */
static const char *ns_uri(const struct xmpp_parser *p, const struct xmpp_ns *d,
                          const unsigned char *buf, uint64_t base)
{
    return d->stored ? p->store + d->uri_off : at(buf, base, d->uri_off);
}

/* Looks up prefix pfx[0..n) (n == 0: the default namespace) among the declarations in scope.
 * Returns true if bound (*uri NULL for "no namespace"), false if the prefix is unbound. */
static bool ns_lookup(const struct xmpp_parser *p, const unsigned char *buf, uint64_t base,
                      const char *pfx, size_t n, const char **uri, size_t *uri_len)
{
    if (eq(pfx, n, "xml")) {
        *uri = NS_XML;
        *uri_len = sizeof(NS_XML) - 1;
        return true;
    }
    for (size_t k = p->nns; k-- > 0;) {
        const struct xmpp_ns *d = &p->ns[k];
        if (d->pfx_len != n)
            continue;
        const char *dp = d->stored ? p->store + d->pfx_off : at(buf, base, d->pfx_off);
        if (memcmp(dp, pfx, n) != 0)
            continue;
        *uri = d->uri_len > 0 ? ns_uri(p, d, buf, base) : NULL;
        *uri_len = d->uri_len;
        return true;
    }
    *uri = NULL;
    *uri_len = 0;
    return n == 0;
}

/* Copies bytes into the header store; returns the store index or -1 if full. */
static long store_put(struct xmpp_parser *p, const char *s, size_t n)
{
    if (n > sizeof(p->store) - p->store_len)
        return -1;
    memcpy(p->store + p->store_len, s, n);
    p->store_len += n;
    return (long)(p->store_len - n);
}

/* Validates the XML declaration's pseudo-attributes s[0..n) (between "<?xml" and "?>"). */
static enum xmpp_error check_decl(const char *s, size_t n)
{
    static const char *const keys[] = {"version", "encoding", "standalone"};
    size_t i = 0;
    int next = 0;
    while (i < n) {
        size_t ws = i;
        while (i < n && (cls[(unsigned char)s[i]] & C_WS))
            i++;
        if (i == n)
            break;
        if (i == ws)
            return XMPP_ERR_NOT_WELL_FORMED;
        int k;
        for (k = next; k < 3; k++)
            if (n - i >= strlen(keys[k]) && memcmp(s + i, keys[k], strlen(keys[k])) == 0)
                break;
        if (k == 3 || (next == 0 && k != 0))
            return XMPP_ERR_NOT_WELL_FORMED;
        i += strlen(keys[k]);
        next = k + 1;
        while (i < n && (cls[(unsigned char)s[i]] & C_WS))
            i++;
        if (i == n || s[i] != '=')
            return XMPP_ERR_NOT_WELL_FORMED;
        i++;
        while (i < n && (cls[(unsigned char)s[i]] & C_WS))
            i++;
        if (i == n || (s[i] != '\'' && s[i] != '"'))
            return XMPP_ERR_NOT_WELL_FORMED;
        char q = s[i++];
        const char *v = s + i;
        const char *e = memchr(v, q, n - i);
        if (e == NULL)
            return XMPP_ERR_NOT_WELL_FORMED;
        size_t vl = (size_t)(e - v);
        i += vl + 1;
        if (k == 0 && !(vl == 3 && memcmp(v, "1.", 2) == 0 && v[2] >= '0' && v[2] <= '9'))
            return XMPP_ERR_NOT_WELL_FORMED;
        if (k == 1 && !(vl == 5 && strncasecmp(v, "utf-8", 5) == 0))
            return XMPP_ERR_UNSUPPORTED_ENCODING;
        if (k == 2 && !eq(v, vl, "yes") && !eq(v, vl, "no"))
            return XMPP_ERR_NOT_WELL_FORMED;
    }
    return next == 0 ? XMPP_ERR_NOT_WELL_FORMED : XMPP_ERR_NONE;
}

/* uri (raw, may be NULL) names the namespace lit. The common case, no references, is one
 * length check and a memcmp. */
static bool uri_is(const char *uri, size_t n, const char *lit)
{
    if (uri == NULL)
        return false;
    size_t ll = strlen(lit);
    if (n == ll && memcmp(uri, lit, ll) == 0)
        return true;
    return n > ll && memchr(uri, '&', n) != NULL && xmpp_raw_eq(uri, n, lit);
}

static enum xmpp_kind classify(const char *uri, size_t un, const char *local, size_t ln)
{
    static const struct {
        const char *ns, *name;
        enum xmpp_kind kind;
    } tab[] = {
        {NS_CLIENT, "message", XMPP_EL_MESSAGE},
        {NS_CLIENT, "presence", XMPP_EL_PRESENCE},
        {NS_CLIENT, "iq", XMPP_EL_IQ},
        {NS_SERVER, "message", XMPP_EL_MESSAGE},
        {NS_SERVER, "presence", XMPP_EL_PRESENCE},
        {NS_SERVER, "iq", XMPP_EL_IQ},
        {NS_SM3, "a", XMPP_EL_SM_A},
        {NS_SM3, "r", XMPP_EL_SM_R},
        {NS_SM3, "enable", XMPP_EL_SM_ENABLE},
        {NS_SM3, "enabled", XMPP_EL_SM_ENABLED},
        {NS_SM3, "resume", XMPP_EL_SM_RESUME},
        {NS_SM3, "resumed", XMPP_EL_SM_RESUMED},
        {NS_SM3, "failed", XMPP_EL_SM_FAILED},
        {NS_STREAMS, "features", XMPP_EL_FEATURES},
        {NS_STREAMS, "error", XMPP_EL_STREAM_ERROR},
        {NS_TLS, "starttls", XMPP_EL_STARTTLS},
        {NS_TLS, "proceed", XMPP_EL_PROCEED},
        {NS_TLS, "failure", XMPP_EL_TLS_FAILURE},
        {NS_SASL, "auth", XMPP_EL_SASL_AUTH},
        {NS_SASL, "challenge", XMPP_EL_SASL_CHALLENGE},
        {NS_SASL, "response", XMPP_EL_SASL_RESPONSE},
        {NS_SASL, "success", XMPP_EL_SASL_SUCCESS},
        {NS_SASL, "failure", XMPP_EL_SASL_FAILURE},
        {NS_SASL, "abort", XMPP_EL_SASL_ABORT},
    };
    if (uri == NULL || ln == 0)
        return XMPP_EL_OTHER;
    for (size_t k = 0; k < sizeof(tab) / sizeof(tab[0]); k++)
        if (tab[k].name[0] == local[0] && eq(local, ln, tab[k].name) && uri_is(uri, un, tab[k].ns))
            return tab[k].kind;
    return XMPP_EL_OTHER;
}

static struct xmpp_span span(uint64_t off, size_t len, uint64_t origin)
{
    struct xmpp_span s = {(size_t)(off - origin), len, true};
    return s;
}

/* A start tag is complete ('>' at stream offset gt; empty for "/>"): namespaces, duplicate
 * attributes, prefixes, then what the element means at its depth. Returns SW_OK (keep
 * scanning), DONE_EVENT (an event is ready in p->ev) or SW_ERROR. */
enum { DONE_EVENT = 1 };
static int start_tag(struct xmpp_parser *p, const unsigned char *buf, uint64_t base, uint64_t gt,
                     bool empty)
{
    struct xmpp_open *o = &p->open[p->depth];
    const char *qn = at(buf, base, o->name_off);
    size_t nattrs = p->nattrs;
    o->ns_n = (uint16_t)p->nns;
    o->role = ROLE_NONE;

    /* namespace declarations */
    for (size_t k = 0; k < nattrs; k++) {
        const struct xmpp_attr *a = &p->attrs[k];
        const char *an = at(buf, base, a->name_off);
        const char *val = at(buf, base, a->val_off);
        size_t pl;
        uint64_t po;
        if (a->colon == 0 && eq(an, a->name_len, "xmlns")) {
            pl = 0;
            po = a->name_off;
            if (uri_is(val, a->val_len, NS_XML))
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, gt, "xml namespace as default");
        } else if (a->colon == 5 && memcmp(an, "xmlns", 5) == 0) {
            pl = a->name_len - 6u;
            po = a->name_off + 6;
            const char *pf = an + 6;
            bool is_xml_uri = uri_is(val, a->val_len, NS_XML);
            if (eq(pf, pl, "xml")) {
                if (!is_xml_uri)
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, gt, "xml prefix rebound");
                continue;
            }
            if (eq(pf, pl, "xmlns") || is_xml_uri)
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, gt, "reserved namespace prefix");
            if (a->val_len == 0)
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, gt, "empty namespace for a prefix");
        } else {
            continue;
        }
        if (p->nns >= p->lim.ns_max)
            return fail(p, XMPP_ERR_POLICY_VIOLATION, gt, "too many namespace declarations");
        struct xmpp_ns *d = &p->ns[p->nns++];
        d->pfx_off = po;
        d->pfx_len = (uint16_t)pl;
        d->uri_off = a->val_off;
        d->uri_len = a->val_len;
        d->stored = false;
    }

    /* duplicate attributes (by qualified name) and unbound attribute prefixes */
    for (size_t k = 0; k < nattrs; k++) {
        const struct xmpp_attr *a = &p->attrs[k];
        const char *an = at(buf, base, a->name_off);
        for (size_t j = 0; j < k; j++) {
            const struct xmpp_attr *b = &p->attrs[j];
            if (b->name_len == a->name_len &&
                memcmp(at(buf, base, b->name_off), an, a->name_len) == 0)
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, gt, "duplicate attribute");
        }
        if (a->colon != 0 && !(a->colon == 5 && memcmp(an, "xmlns", 5) == 0)) {
            const char *u;
            size_t ul;
            if (!ns_lookup(p, buf, base, an, a->colon, &u, &ul))
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, gt, "unbound attribute prefix");
        }
    }

    /* the element's namespace */
    const char *uri;
    size_t ul;
    size_t colon = 0;
    {
        const char *c = memchr(qn, ':', o->name_len);
        if (c != NULL)
            colon = (size_t)(c - qn);
    }
    if (!ns_lookup(p, buf, base, qn, colon, &uri, &ul))
        return fail(p, XMPP_ERR_NOT_WELL_FORMED, gt, "unbound element prefix");
    const char *local = colon ? qn + colon + 1 : qn;
    size_t local_len = colon ? o->name_len - colon - 1 : o->name_len;
    uint64_t local_off = o->name_off + (colon ? colon + 1 : 0);

    if (p->depth == 0) {
        /* the stream header */
        struct xmpp_event *ev = &p->ev;
        memset(ev, 0, sizeof(*ev));
        if (!eq(local, local_len, "stream"))
            return fail(p, XMPP_ERR_BAD_FORMAT, gt, "root element is not a stream");
        if (!uri_is(uri, ul, NS_STREAMS))
            return fail(p, XMPP_ERR_INVALID_NAMESPACE, gt, "wrong stream namespace");
        const char *du;
        size_t dl;
        ns_lookup(p, buf, base, "", 0, &du, &dl);
        if (uri_is(du, dl, NS_SERVER))
            ev->server_ns = true;
        else if (!uri_is(du, dl, NS_CLIENT))
            return fail(p, XMPP_ERR_INVALID_NAMESPACE, gt, "wrong content namespace");
        if (empty)
            return fail(p, XMPP_ERR_BAD_FORMAT, gt, "empty stream header");
        ev->kind = XMPP_EL_STREAM;
        ev->name = span(o->name_off, o->name_len, p->start);
        ev->local = span(local_off, local_len, p->start);
        ev->prefix = span(o->name_off, colon, p->start);
        ev->xml_decl = p->xml_decl;
        ev->ns = NS_STREAMS;
        ev->ns_len = sizeof(NS_STREAMS) - 1;
        /* keep what later elements need: the name, the declarations, xml:lang */
        long si = store_put(p, qn, o->name_len);
        if (si < 0)
            return fail(p, XMPP_ERR_POLICY_VIOLATION, gt, "stream header too large");
        o->name_off = (uint64_t)si;
        for (size_t k = 0; k < p->nns; k++) {
            struct xmpp_ns *d = &p->ns[k];
            long a = store_put(p, at(buf, base, d->pfx_off), d->pfx_len);
            long b = store_put(p, at(buf, base, d->uri_off), d->uri_len);
            if (a < 0 || b < 0)
                return fail(p, XMPP_ERR_POLICY_VIOLATION, gt, "stream header too large");
            d->pfx_off = (uint64_t)a;
            d->uri_off = (uint64_t)b;
            d->stored = true;
        }
    } else if (p->depth == 1) {
        struct xmpp_event *ev = &p->ev;
        memset(ev, 0, sizeof(*ev));
        ev->kind = classify(uri, ul, local, local_len);
        ev->name = span(o->name_off, o->name_len, p->start);
        ev->local = span(local_off, local_len, p->start);
        /* the namespace is read again when the event is delivered; remember where it is */
        p->ev_ns.stored = false;
        p->ev_ns.uri_len = (uint32_t)ul;
        if (uri == NULL) {
            p->ev_ns_kind = 0;
        } else if (uri >= p->store && uri < p->store + sizeof(p->store)) {
            p->ev_ns_kind = 1;
            p->ev_ns.uri_off = (uint64_t)(uri - p->store);
        } else if (uri == NS_XML) {
            p->ev_ns_kind = 3;
        } else {
            p->ev_ns_kind = 2;
            p->ev_ns.uri_off = base + (uint64_t)(uri - (const char *)buf);
        }
        p->body_pref = false;
    } else if (p->depth == 2 && p->ev.kind == XMPP_EL_MESSAGE) {
        struct xmpp_event *ev = &p->ev;
        if (eq(local, local_len, "body") &&
            (uri_is(uri, ul, NS_CLIENT) || uri_is(uri, ul, NS_SERVER))) {
            bool pref = true;
            for (size_t k = 0; k < nattrs; k++) {
                const struct xmpp_attr *a = &p->attrs[k];
                if (!eq(at(buf, base, a->name_off), a->name_len, "xml:lang"))
                    continue;
                const char *ml;
                size_t mll;
                if (ev->lang.set) {
                    ml = at(buf, base, p->start + ev->lang.pos);
                    mll = ev->lang.len;
                } else if (p->stream_lang) {
                    ml = p->store + p->stream_lang_off;
                    mll = p->stream_lang_len;
                } else {
                    ml = NULL;
                    mll = 0;
                }
                pref = ml != NULL && mll == a->val_len &&
                       memcmp(ml, at(buf, base, a->val_off), mll) == 0;
            }
            if (!ev->body.set || (!p->body_pref && pref)) {
                if (empty) {
                    ev->body = span(gt + 1, 0, p->start);
                    p->body_pref = pref;
                } else {
                    o->role = pref ? ROLE_BODY_PREF : ROLE_BODY;
                }
            }
        } else if (eq(local, local_len, "encrypted") &&
                   uri_is(uri, ul, "eu.siacs.conversations.axolotl")) {
            ev->encrypted |= XMPP_ENC_OMEMO;
        } else if (eq(local, local_len, "encrypted") && uri_is(uri, ul, "urn:xmpp:omemo:2")) {
            ev->encrypted |= XMPP_ENC_OMEMO2;
        } else if (eq(local, local_len, "openpgp") && uri_is(uri, ul, "urn:xmpp:openpgp:0")) {
            ev->encrypted |= XMPP_ENC_OPENPGP;
        } else if (eq(local, local_len, "x") && uri_is(uri, ul, "jabber:x:encrypted")) {
            ev->encrypted |= XMPP_ENC_LEGACY_PGP;
        } else if (eq(local, local_len, "headers") && uri_is(uri, ul, NS_SHIM)) {
            ev->has_shim = true;
        }
    }

    /* attributes reported on events */
    if (p->depth <= 1) {
        struct xmpp_event *ev = &p->ev;
        for (size_t k = 0; k < nattrs; k++) {
            const struct xmpp_attr *a = &p->attrs[k];
            const char *an = at(buf, base, a->name_off);
            struct xmpp_span *s = NULL;
            switch (a->name_len) {
            case 1:
                if (an[0] == 'h')
                    s = &ev->h;
                break;
            case 2:
                if (memcmp(an, "to", 2) == 0)
                    s = &ev->to;
                else if (memcmp(an, "id", 2) == 0)
                    s = &ev->id;
                break;
            case 4:
                if (memcmp(an, "from", 4) == 0)
                    s = &ev->from;
                else if (memcmp(an, "type", 4) == 0)
                    s = &ev->type_attr;
                break;
            case 6:
                if (memcmp(an, "previd", 6) == 0)
                    s = &ev->previd;
                break;
            case 7:
                if (memcmp(an, "version", 7) == 0)
                    s = &ev->version;
                break;
            case 8:
                if (memcmp(an, "xml:lang", 8) == 0)
                    s = &ev->lang;
                break;
            default:
                break;
            }
            if (s != NULL)
                *s = span(a->val_off, a->val_len, p->start);
        }
        if (p->depth == 0 && ev->lang.set) {
            long li = store_put(p, at(buf, base, p->start + ev->lang.pos), ev->lang.len);
            if (li < 0)
                return fail(p, XMPP_ERR_POLICY_VIOLATION, gt, "stream header too large");
            p->stream_lang = true;
            p->stream_lang_off = (size_t)li;
            p->stream_lang_len = ev->lang.len;
        }
    }
    p->nattrs = 0;

    if (p->depth == 0) {
        p->depth = 1;
        p->ev.type = XMPP_EV_STREAM_OPEN;
        return DONE_EVENT;
    }
    if (empty) {
        p->nns = o->ns_n;
        if (p->depth == 1) {
            p->ev.type = XMPP_EV_ELEMENT;
            p->ev.empty = true;
            p->ev.content = span(gt - 1, 0, p->start);
            return DONE_EVENT;
        }
        return SW_OK;
    }
    if (p->depth == 1)
        p->content_off = gt + 1;
    if (o->role != ROLE_NONE)
        p->body_off = gt + 1;
    p->depth++;
    return SW_OK;
}

/* An end tag is complete (its '>' is the current byte); the name was matched already. */
static int end_tag(struct xmpp_parser *p)
{
    p->depth--;
    struct xmpp_open *o = &p->open[p->depth];
    p->nns = o->ns_n;
    if (o->role != ROLE_NONE) {
        p->ev.body = span(p->body_off, (size_t)(p->lt_off - p->body_off), p->start);
        p->body_pref = o->role == ROLE_BODY_PREF;
    }
    if (p->depth == 1) {
        p->ev.type = XMPP_EV_ELEMENT;
        p->ev.content = span(p->content_off, (size_t)(p->lt_off - p->content_off), p->start);
        return DONE_EVENT;
    }
    if (p->depth == 0) {
        memset(&p->ev, 0, sizeof(p->ev));
        p->ev.type = XMPP_EV_STREAM_CLOSE;
        p->ev.kind = XMPP_EL_STREAM;
        p->ev.name = span(p->start + 2, o->name_len, p->start);
        return DONE_EVENT;
    }
    return SW_OK;
}

/* Fills ev for the event that ends before stream offset end and resets the event state. */
static int deliver(struct xmpp_parser *p, const unsigned char *buf, uint64_t base, uint64_t end,
                   struct xmpp_event *ev)
{
    *ev = p->ev;
    ev->off = p->start;
    ev->data = at(buf, base, p->start);
    ev->size = (size_t)(end - p->start);
    if (ev->type == XMPP_EV_ELEMENT) {
        switch (p->ev_ns_kind) {
        case 1:
            ev->ns = p->store + p->ev_ns.uri_off;
            break;
        case 2:
            ev->ns = at(buf, base, p->ev_ns.uri_off);
            break;
        case 3:
            ev->ns = NS_XML;
            break;
        default:
            ev->ns = NULL;
            break;
        }
        ev->ns_len = ev->ns != NULL ? p->ev_ns.uri_len : 0;
        if (ev->kind == XMPP_EL_MESSAGE && ev->body.set) {
            char head[4];
            size_t n = xmpp_decode(ev->data + ev->body.pos, ev->body.len, head, sizeof(head));
            if (n >= 4 && memcmp(head, "?OTR", 4) == 0)
                ev->encrypted |= XMPP_ENC_OTR;
        }
    }
    p->in_event = false;
    p->ws_event = false;
    p->start = end;
    p->pos = end;
    return SW_OK;
}

static int deliver_ws(struct xmpp_parser *p, const unsigned char *buf, uint64_t base, uint64_t end,
                      struct xmpp_event *ev)
{
    memset(&p->ev, 0, sizeof(p->ev));
    p->ev.type = XMPP_EV_WHITESPACE;
    return deliver(p, buf, base, end, ev);
}

int xmpp_parser_feed(struct xmpp_parser *p, const char *bufc, size_t len, uint64_t base,
                     struct xmpp_event *ev)
{
    const unsigned char *buf = (const unsigned char *)bufc;
    if (p->state == S_ERROR)
        return SW_ERROR;
    if (base > xmpp_parser_keep(p) || base + len < p->pos)
        return fail(p, XMPP_ERR_BAD_FORMAT, p->pos, "buffer does not hold the retained bytes");
    size_t i = (size_t)(p->pos - base);
    int rc;

    for (;;) {
        size_t end = len;
        if (p->in_event && p->start + p->lim.stanza_max - base < end)
            end = (size_t)(p->start + p->lim.stanza_max - base);
        if (i >= end) {
            if (end < len)
                return fail(p, XMPP_ERR_POLICY_VIOLATION, base + end, "stanza too large");
            break;
        }
        unsigned char c = buf[i];
        if (p->u8_need != 0) {
            if ((c & 0xC0) != 0x80)
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid UTF-8");
            p->u8_cp = (p->u8_cp << 6) | (c & 0x3Fu);
            if (--p->u8_need == 0 && (p->u8_cp < p->u8_min || !xml_char(p->u8_cp)))
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid character");
            i++;
            continue;
        }
        switch (p->state) {
        case S_DOC_START:
            if (c == 0xEF && base + i == p->start) {
                p->state = S_BOM1;
            } else if (c == '<') {
                p->state = S_DOC_LT;
            } else if (cls[c] & C_WS) {
                p->state = S_PROLOG;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "expected a stream header");
            }
            i++;
            break;
        case S_BOM1:
        case S_BOM2:
            if (c != (p->state == S_BOM1 ? 0xBB : 0xBF))
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid byte order mark");
            p->state = p->state == S_BOM1 ? S_BOM2 : S_DOC_START;
            i++;
            break;
        case S_DOC_LT:
        case S_PROLOG_LT:
            if (c == '?' && p->state == S_DOC_LT) {
                p->state = S_DECL;
                p->match = 0;
            } else if (c == '?') {
                return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "processing instruction");
            } else if (c == '!') {
                return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "comment or DOCTYPE");
            } else if ((cls[c] & C_NSTART) || c >= 0x80) {
                p->state = S_STAG_NAME;
                p->tok_off = base + i;
                p->nattrs = 0;
                break;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "expected a name");
            }
            i++;
            break;
        case S_DECL:
            if (p->match < 3) {
                if (c != (unsigned char)"xml"[p->match])
                    return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "processing instruction");
                p->match++;
            } else {
                if (!(cls[c] & C_WS))
                    return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "processing instruction");
                p->state = S_DECL_BODY;
                p->tok_off = base + i;
            }
            i++;
            break;
        case S_DECL_BODY:
        case S_DECL_Q:
            if (c == '>' && p->state == S_DECL_Q) {
                uint64_t q = base + i - 1;
                enum xmpp_error e = check_decl(at(buf, base, p->tok_off), (size_t)(q - p->tok_off));
                if (e != XMPP_ERR_NONE)
                    return fail(p, e, base + i, "invalid XML declaration");
                p->xml_decl = true;
                p->state = S_PROLOG;
            } else if (c == '?') {
                p->state = S_DECL_Q;
            } else if (c >= 0x20 && c < 0x7F) {
                p->state = S_DECL_BODY;
            } else if (cls[c] & C_WS) {
                p->state = S_DECL_BODY;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid XML declaration");
            }
            i++;
            break;
        case S_PROLOG:
            if (cls[c] & C_WS) {
                i++;
            } else if (c == '<') {
                p->state = S_PROLOG_LT;
                i++;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "expected a stream header");
            }
            break;

        case S_STAG_NAME:
        case S_ATTR_NAME:
        case S_ETAG_NAME: {
            while (i < end && (cls[buf[i]] & C_NAME))
                i++;
            uint64_t n = base + i - p->tok_off;
            if (n > p->lim.name_max)
                return fail(p, XMPP_ERR_POLICY_VIOLATION, p->tok_off + p->lim.name_max,
                            "name too long");
            if (i >= end)
                break;
            c = buf[i];
            if (c >= 0x80) {
                if (!utf8_lead(p, c))
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid UTF-8");
                i++;
                break;
            }
            const char *name = at(buf, base, p->tok_off);
            int colon = qname_colon(name, (size_t)n);
            /* start tags and attributes checked the first byte; end tags check it here */
            if (n == 0 ||
                (!(cls[(unsigned char)name[0]] & C_NSTART) && (unsigned char)name[0] < 0x80))
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "expected a name");
            if (colon < 0)
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid qualified name");
            if (p->state == S_STAG_NAME) {
                p->open[p->depth].name_off = p->tok_off;
                p->open[p->depth].name_len = (uint16_t)n;
                if (cls[c] & C_WS) {
                    p->state = S_STAG_ATTRS;
                    p->space = true;
                } else if (c == '/') {
                    p->state = S_STAG_EMPTY;
                } else if (c == '>') {
                    rc = start_tag(p, buf, base, base + i, false);
                    goto tag_done;
                } else {
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i,
                                "invalid character in a name");
                }
            } else if (p->state == S_ATTR_NAME) {
                struct xmpp_attr *a = &p->attrs[p->nattrs];
                a->name_off = p->tok_off;
                a->name_len = (uint16_t)n;
                a->colon = (uint16_t)colon;
                if (c == '=') {
                    p->state = S_ATTR_QUOTE;
                } else if (cls[c] & C_WS) {
                    p->state = S_ATTR_EQ;
                } else {
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i,
                                "invalid character in a name");
                }
            } else {
                const struct xmpp_open *o = &p->open[p->depth - 1];
                const char *on =
                    p->depth == 1 ? p->store + o->name_off : at(buf, base, o->name_off);
                if (n != o->name_len || memcmp(on, name, (size_t)n) != 0)
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "mismatched end tag");
                if (c == '>') {
                    rc = end_tag(p);
                    goto tag_done;
                }
                if (!(cls[c] & C_WS))
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i,
                                "invalid character in a name");
                p->state = S_ETAG_WS;
            }
            i++;
            break;
        }
        case S_ETAG_WS:
            if (cls[c] & C_WS) {
                i++;
                break;
            }
            if (c != '>')
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "expected '>'");
            rc = end_tag(p);
            goto tag_done;
        case S_STAG_ATTRS:
            if (cls[c] & C_WS) {
                p->space = true;
                i++;
            } else if (c == '/') {
                p->state = S_STAG_EMPTY;
                i++;
            } else if (c == '>') {
                rc = start_tag(p, buf, base, base + i, false);
                goto tag_done;
            } else if ((cls[c] & C_NSTART) || c >= 0x80) {
                if (!p->space)
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "no space before attribute");
                if (p->nattrs >= p->lim.attrs_max)
                    return fail(p, XMPP_ERR_POLICY_VIOLATION, base + i, "too many attributes");
                p->tok_off = base + i;
                p->state = S_ATTR_NAME;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid character in a tag");
            }
            break;
        case S_STAG_EMPTY:
            if (c != '>')
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "expected '>' after '/'");
            rc = start_tag(p, buf, base, base + i, true);
            goto tag_done;
        case S_ATTR_EQ:
        case S_ATTR_QUOTE:
            if (cls[c] & C_WS) {
                i++;
            } else if (c == '=' && p->state == S_ATTR_EQ) {
                p->state = S_ATTR_QUOTE;
                i++;
            } else if ((c == '\'' || c == '"') && p->state == S_ATTR_QUOTE) {
                p->quote = c;
                p->tok_off = base + i + 1;
                p->state = S_ATTR_VALUE;
                i++;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid attribute syntax");
            }
            break;
        case S_ATTR_VALUE: {
            i = skip_plain(buf, i, end, C_ATTRV, '<', '&', '\'', '"');
            if (base + i - p->tok_off > p->lim.value_max)
                return fail(p, XMPP_ERR_POLICY_VIOLATION, p->tok_off + p->lim.value_max,
                            "attribute value too long");
            if (i >= end)
                break;
            c = buf[i];
            if (c == p->quote) {
                struct xmpp_attr *a = &p->attrs[p->nattrs++];
                a->val_off = p->tok_off;
                a->val_len = (uint32_t)(base + i - p->tok_off);
                p->space = false;
                p->state = S_STAG_ATTRS;
            } else if (c == '\'' || c == '"') {
                /* the other quote is plain */
            } else if (c == '&') {
                p->ret_state = S_ATTR_VALUE;
                p->state = S_ENT;
            } else if (c == '<') {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "'<' in attribute value");
            } else if (c >= 0x80) {
                if (!utf8_lead(p, c))
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid UTF-8");
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid character");
            }
            i++;
            break;
        }

        case S_TOP:
        case S_CLOSED:
            if (cls[c] & C_WS) {
                if (!p->ws_event) {
                    p->ws_event = true;
                    p->start = base + i;
                }
                while (i < end && (cls[buf[i]] & C_WS))
                    i++;
                break;
            }
            if (p->ws_event)
                return deliver_ws(p, buf, base, base + i, ev);
            if (p->state == S_CLOSED)
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "data after the stream end");
            if (c != '<') {
                if (c < 0x20)
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid character");
                return fail(p, XMPP_ERR_BAD_FORMAT, base + i, "text at stream level");
            }
            p->start = base + i;
            p->in_event = true;
            p->lt_off = base + i;
            p->state = S_LT;
            i++;
            break;
        case S_CONTENT:
            if (p->brackets != 0) {
                if (c == ']') {
                    p->brackets = 2;
                    i++;
                    break;
                }
                if (c == '>' && p->brackets == 2)
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "']]>' in text");
                p->brackets = 0;
            }
            i = skip_plain(buf, i, end, C_TEXT, '<', '&', ']', ']');
            if (i >= end)
                break;
            c = buf[i];
            if (c == '<') {
                p->lt_off = base + i;
                p->state = S_LT;
            } else if (c == '&') {
                p->ret_state = S_CONTENT;
                p->state = S_ENT;
            } else if (c == ']') {
                p->brackets = 1;
            } else if (c >= 0x80) {
                if (!utf8_lead(p, c))
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid UTF-8");
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid character");
            }
            i++;
            break;
        case S_LT:
            if (c == '/') {
                p->state = S_ETAG_NAME;
                p->tok_off = base + i + 1;
                i++;
                break;
            }
            if (c == '!') {
                p->state = S_BANG;
            } else if (c == '?') {
                return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "processing instruction");
            } else if ((cls[c] & C_NSTART) || c >= 0x80) {
                if (p->depth > p->lim.depth_max)
                    return fail(p, XMPP_ERR_POLICY_VIOLATION, base + i, "elements nested too deep");
                p->state = S_STAG_NAME;
                p->tok_off = base + i;
                p->nattrs = 0;
                break;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "expected a name after '<'");
            }
            i++;
            break;
        case S_BANG:
            if (c == '-')
                return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "comment");
            if (c == 'D')
                return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "DOCTYPE");
            if (c != '[')
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid markup");
            if (p->depth <= 1)
                return fail(p, XMPP_ERR_BAD_FORMAT, base + i, "CDATA at stream level");
            p->state = S_CDATA_OPEN;
            p->match = 1;
            i++;
            break;
        case S_CDATA_OPEN:
            if (c != (unsigned char)"[CDATA["[p->match])
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid CDATA section");
            if (++p->match == 7) {
                p->state = S_CDATA;
                p->brackets = 0;
            }
            i++;
            break;
        case S_CDATA:
            if (p->brackets != 0) {
                if (c == ']') {
                    p->brackets = 2;
                    i++;
                    break;
                }
                if (c == '>' && p->brackets == 2) {
                    p->brackets = 0;
                    p->state = S_CONTENT;
                    i++;
                    break;
                }
                p->brackets = 0;
            }
            i = skip_plain(buf, i, end, C_CDATA, ']', ']', ']', ']');
            if (i >= end)
                break;
            c = buf[i];
            if (c == ']') {
                p->brackets = 1;
            } else if (c >= 0x80) {
                if (!utf8_lead(p, c))
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid UTF-8");
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid character");
            }
            i++;
            break;

        case S_ENT:
            if (c == '#') {
                p->state = S_CHARREF;
            } else if (cls[c] & C_NSTART) {
                p->ent[0] = (char)c;
                p->ref_n = 1;
                p->state = S_ENT_NAME;
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "'&' not starting a reference");
            }
            i++;
            break;
        case S_ENT_NAME:
            if (c == ';') {
                const char *e = p->ent;
                size_t n = p->ref_n;
                if (!eq(e, n, "amp") && !eq(e, n, "lt") && !eq(e, n, "gt") && !eq(e, n, "quot") &&
                    !eq(e, n, "apos"))
                    return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "undefined entity");
                p->state = p->ret_state;
            } else if (cls[c] & C_NAME) {
                if (p->ref_n >= 4)
                    return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "undefined entity");
                p->ent[p->ref_n++] = (char)c;
            } else if (c >= 0x80) {
                return fail(p, XMPP_ERR_RESTRICTED_XML, base + i, "undefined entity");
            } else {
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "entity reference without ';'");
            }
            i++;
            break;
        case S_CHARREF:
            p->ref_val = 0;
            p->ref_n = 0;
            if (c == 'x') {
                p->state = S_CHARREF_HEX0;
                i++;
                break;
            }
            p->state = S_CHARREF_DEC;
            /* fall through */
        case S_CHARREF_DEC:
        case S_CHARREF_HEX0:
        case S_CHARREF_HEX: {
            bool hex = p->state != S_CHARREF_DEC;
            int d = sw_digit_val(c, hex);
            if (d < 0) { /* not a digit: the end of the reference, or an error */
                if (c != ';' || p->ref_n == 0 || !xml_char(p->ref_val))
                    return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i,
                                "invalid character reference");
                p->state = p->ret_state;
                i++;
                break;
            }
            p->ref_val = p->ref_val * (hex ? 16u : 10u) + (unsigned)d;
            if (p->ref_val > 0x10FFFF)
                return fail(p, XMPP_ERR_NOT_WELL_FORMED, base + i, "invalid character reference");
            p->ref_n = 1;
            if (p->state == S_CHARREF_HEX0)
                p->state = S_CHARREF_HEX;
            i++;
            break;
        }
        default:
            return fail(p, XMPP_ERR_BAD_FORMAT, base + i, "internal state");
        }
        continue;

    tag_done:
        /* rc from start_tag/end_tag; buf[i] is the tag's '>' */
        if (rc == SW_ERROR)
            return SW_ERROR;
        i++;
        if (rc == DONE_EVENT) {
            p->state = p->depth == 0 ? S_CLOSED : S_TOP;
            return deliver(p, buf, base, base + i, ev);
        }
        p->state = S_CONTENT;
    }

    p->pos = base + i;
    if (p->ws_event && (p->state == S_TOP || p->state == S_CLOSED))
        return deliver_ws(p, buf, base, base + i, ev);
    return SW_AGAIN;
}
