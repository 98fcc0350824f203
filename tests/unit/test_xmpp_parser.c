/* Unit tests for protocols/xmpp/xmpp_parser.c and xmpp_escape.c: real client and server
 * streams (XML declaration, features, STARTTLS, SASL, restarts, bind, roster, messages with
 * entities, character references and CDATA, presence, XEP-0198, OMEMO/OTR, SHIM, stream
 * close), every error class, the limits, and the escape helpers.
 *
 * Every vector is fed whole, one byte at a time, split in two at every offset and (for short
 * vectors) in three at every pair of offsets, and must give exactly the same events: type,
 * stream offset and size, names, namespace, attributes, decoded body and flags, or the same
 * error at the same stream offset. Adjacent whitespace events are merged before comparing
 * (their boundaries depend on how bytes arrive, by contract). Each call gets a fresh
 * allocation holding only the bytes the retention contract says the caller keeps (from
 * xmpp_parser_keep()), so ASan catches a parser that reads outside them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/xmpp/xmpp_escape.h"
#include "protocols/xmpp/xmpp_parser.h"

#define OUT_MAX 16384

/* what the harness does after an element: restart the parser (as the proxy does) */
#define RESTART_PROCEED 1
#define RESTART_SUCCESS 2
#define RESTART_STARTTLS 4
#define RESTART_AUTH 8

struct vector {
    const char *name;
    const char *in;
    unsigned restart;
    size_t stanza_max, depth_max; /* 0 = default */
    const char *expect;           /* rendered events without offsets */
};

static const char *kind_name(enum xmpp_kind k)
{
    static const char *const names[] = {
        "other",        "stream",     "message",      "presence",    "iq",       "features",
        "stream-error", "starttls",   "proceed",      "tls-failure", "auth",     "challenge",
        "response",     "success",    "sasl-failure", "abort",       "sm-a",     "sm-r",
        "sm-enable",    "sm-enabled", "sm-resume",    "sm-resumed",  "sm-failed"};
    return (size_t)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

struct out {
    char s[OUT_MAX];
    size_t n;
};

__attribute__((format(printf, 2, 3))) static void emit(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->s + o->n, sizeof(o->s) - o->n, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof(o->s) - o->n);
    o->n += (size_t)k;
}

static void emit_attr(struct out *o, const struct xmpp_event *ev, const char *key,
                      struct xmpp_span s)
{
    char d[512];
    if (!s.set)
        return;
    assert_true(s.pos + s.len <= ev->size);
    size_t n = xmpp_decode(ev->data + s.pos, s.len, d, sizeof(d));
    assert_true(n <= sizeof(d));
    emit(o, " %s=%.*s", key, (int)n, d);
}

/* Renders one event; offsets only when full. */
static void render(struct out *o, const struct xmpp_event *ev, const char *stream, bool full)
{
    assert_memory_equal(ev->data, stream + ev->off, ev->size);
    if (full)
        emit(o, "@%llu+%zu ", (unsigned long long)ev->off, ev->size);
    switch (ev->type) {
    case XMPP_EV_WHITESPACE:
        emit(o, "ws");
        break;
    case XMPP_EV_STREAM_CLOSE:
        emit(o, "close %.*s", (int)ev->name.len, ev->data + ev->name.pos);
        break;
    case XMPP_EV_STREAM_OPEN:
    case XMPP_EV_ELEMENT:
        emit(o, "%s %s %.*s", ev->type == XMPP_EV_STREAM_OPEN ? "open" : "el", kind_name(ev->kind),
             (int)ev->name.len, ev->data + ev->name.pos);
        if (ev->type == XMPP_EV_STREAM_OPEN)
            emit(o, "%s%s prefix=%.*s", ev->server_ns ? " server" : " client",
                 ev->xml_decl ? " decl" : "", (int)ev->prefix.len, ev->data + ev->prefix.pos);
        else if (ev->ns != NULL)
            emit(o, " {%.*s}", (int)ev->ns_len, ev->ns);
        emit_attr(o, ev, "to", ev->to);
        emit_attr(o, ev, "from", ev->from);
        emit_attr(o, ev, "type", ev->type_attr);
        emit_attr(o, ev, "id", ev->id);
        emit_attr(o, ev, "lang", ev->lang);
        emit_attr(o, ev, "h", ev->h);
        emit_attr(o, ev, "previd", ev->previd);
        emit_attr(o, ev, "version", ev->version);
        if (ev->empty)
            emit(o, " empty");
        if (ev->body.set) {
            char d[1024];
            size_t n = xmpp_decode(ev->data + ev->body.pos, ev->body.len, d, sizeof(d));
            assert_true(n <= sizeof(d));
            emit(o, " body=[%.*s]", (int)n, d);
        }
        if (ev->encrypted)
            emit(o, " enc=%u", ev->encrypted);
        if (ev->has_shim)
            emit(o, " shim");
        if (ev->type == XMPP_EV_ELEMENT) {
            assert_true(ev->content.set && ev->content.pos + ev->content.len <= ev->size);
            /* content lies between the start tag's '>' and the end tag's '<', or at "/>" */
            if (ev->empty) {
                assert_memory_equal(ev->data + ev->content.pos, "/>", 2);
            } else {
                assert_int_equal(ev->data[ev->content.pos - 1], '>');
                assert_memory_equal(ev->data + ev->content.pos + ev->content.len, "</", 2);
            }
            if (ev->body.set)
                assert_int_equal(ev->data[ev->body.pos - 1], '>');
            if (full)
                emit(o, " content=%zu+%zu", ev->content.pos, ev->content.len);
        }
        break;
    }
    emit(o, "\n");
}

/* Feeds v->in in pieces ending at the offsets cuts[0..ncuts) (then the rest), each piece in
 * a fresh allocation of the retained bytes. Renders the events (whitespace merged). */
static void run(const struct vector *v, const size_t *cuts, size_t ncuts, bool full, struct out *o)
{
    struct xmpp_parser p;
    struct xmpp_limits lim;
    struct xmpp_event ev;
    size_t len = strlen(v->in);
    xmpp_limits_default(&lim);
    if (v->stanza_max) {
        lim.stanza_max = v->stanza_max;
        if (lim.value_max > lim.stanza_max)
            lim.value_max = lim.stanza_max;
    }
    if (v->depth_max)
        lim.depth_max = v->depth_max;
    assert_int_equal(xmpp_parser_init(&p, &lim), SW_OK);
    o->n = 0;
    o->s[0] = '\0';
    uint64_t ws_off = 0, ws_end = 0;
    bool ws = false;
    int rc = SW_AGAIN;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t fed = k < ncuts ? cuts[k] : len;
        uint64_t keep = xmpp_parser_keep(&p);
        assert_true(keep <= fed);
        size_t blen = fed - (size_t)keep;
        char *b = malloc(blen > 0 ? blen : 1);
        assert_non_null(b);
        memcpy(b, v->in + keep, blen);
        while ((rc = xmpp_parser_feed(&p, b, blen, keep, &ev)) == SW_OK) {
            assert_int_equal(xmpp_parser_keep(&p), ev.off + ev.size);
            if (ev.type == XMPP_EV_WHITESPACE) {
                if (ws && ws_end == ev.off) {
                    ws_end += ev.size;
                } else {
                    ws = true;
                    ws_off = ev.off;
                    ws_end = ev.off + ev.size;
                }
                continue;
            }
            if (ws) {
                if (full)
                    emit(o, "@%llu+%llu ", (unsigned long long)ws_off,
                         (unsigned long long)(ws_end - ws_off));
                emit(o, "ws\n");
                ws = false;
            }
            render(o, &ev, v->in, full);
            unsigned r = v->restart;
            if (ev.type == XMPP_EV_ELEMENT &&
                (((r & RESTART_PROCEED) && ev.kind == XMPP_EL_PROCEED) ||
                 ((r & RESTART_SUCCESS) && ev.kind == XMPP_EL_SASL_SUCCESS) ||
                 ((r & RESTART_STARTTLS) && ev.kind == XMPP_EL_STARTTLS) ||
                 ((r & RESTART_AUTH) && ev.kind == XMPP_EL_SASL_AUTH)))
                xmpp_parser_restart(&p);
        }
        free(b);
        if (rc == SW_ERROR)
            break;
        assert_int_equal(rc, SW_AGAIN);
    }
    if (ws) {
        if (full)
            emit(o, "@%llu+%llu ", (unsigned long long)ws_off,
                 (unsigned long long)(ws_end - ws_off));
        emit(o, "ws\n");
    }
    if (rc == SW_ERROR) {
        emit(o, "error %s", xmpp_error_condition(p.err));
        if (full)
            emit(o, "@%llu", (unsigned long long)p.err_pos);
        emit(o, "\n");
        /* errors are sticky */
        assert_int_equal(xmpp_parser_feed(&p, "", 0, xmpp_parser_keep(&p), &ev), SW_ERROR);
    } else {
        emit(o, "again keep=%llu\n", full ? (unsigned long long)xmpp_parser_keep(&p) : 0ull);
    }
}

static void check_vector(const struct vector *v)
{
    static struct out whole, got, tmp;
    size_t len = strlen(v->in);
    run(v, NULL, 0, false, &tmp);
    if (strcmp(tmp.s, v->expect) != 0)
        fail_msg("%s: got\n%s\nexpected\n%s", v->name, tmp.s, v->expect);
    run(v, NULL, 0, true, &whole);
    /* one byte at a time */
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t k = 0; k < len; k++)
        cuts[k] = k;
    run(v, cuts, len, true, &got);
    if (strcmp(got.s, whole.s) != 0)
        fail_msg("%s byte-wise: got\n%s\nexpected\n%s", v->name, got.s, whole.s);
    /* split in two at every offset */
    for (size_t k = 0; k <= len; k++) {
        run(v, &k, 1, true, &got);
        if (strcmp(got.s, whole.s) != 0)
            fail_msg("%s split at %zu: got\n%s\nexpected\n%s", v->name, k, got.s, whole.s);
    }
    /* split in three at every pair of offsets, for short vectors */
    if (len <= 220) {
        for (size_t a = 0; a <= len; a++) {
            for (size_t b = a; b <= len; b++) {
                size_t c2[2] = {a, b};
                run(v, c2, 2, true, &got);
                if (strcmp(got.s, whole.s) != 0)
                    fail_msg("%s split at %zu,%zu", v->name, a, b);
            }
        }
    }
    free(cuts);
}

#define HDR_C                                                                                      \
    "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "                  \
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>"
#define OPEN_C                                                                                     \
    "open stream stream:stream client decl prefix=stream to=example.com lang=en version=1.0\n"
#define HDR_S                                                                                      \
    "<?xml version='1.0' encoding='UTF-8'?>\n<stream:stream from='example.com' id='s1d' "          \
    "to='juliet@example.com' version='1.0' xml:lang='en' xmlns='jabber:client' "                   \
    "xmlns:stream='http://etherx.jabber.org/streams'>"
#define OPEN_S                                                                                     \
    "open stream stream:stream client decl prefix=stream to=juliet@example.com "                   \
    "from=example.com id=s1d lang=en version=1.0\n"
#define SASL "{urn:ietf:params:xml:ns:xmpp-sasl}"
#define TLS "{urn:ietf:params:xml:ns:xmpp-tls}"
#define SM "{urn:xmpp:sm:3}"
#define CL "{jabber:client}"
#define STREAMS "{http://etherx.jabber.org/streams}"

static const struct vector good[] = {
    {"c2s starttls",
     HDR_C "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
           "<stream:stream to='example.com' xmlns='jabber:client' "
           "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
     RESTART_STARTTLS, 0, 0,
     OPEN_C "el starttls starttls " TLS " empty\n"
            "open stream stream:stream client prefix=stream to=example.com version=1.0\n"
            "again keep=0\n"},
    {"s2c features, proceed, sasl success, restarts",
     HDR_S
     "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
     "</stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" HDR_S
     "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>"
     "SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
     "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1meWtv</challenge>"
     "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1ybUY5cHFW</success>" HDR_S
     "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/>"
     "</stream:features>",
     RESTART_PROCEED | RESTART_SUCCESS, 0, 0,
     OPEN_S "el features stream:features " STREAMS "\n"
            "el proceed proceed " TLS " empty\n" OPEN_S "el features stream:features " STREAMS "\n"
            "el challenge challenge " SASL "\n"
            "el success success " SASL "\n" OPEN_S "el features stream:features " STREAMS "\n"
            "again keep=0\n"},
    {"c2s session",
     HDR_C "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
           "AGp1bGlldABwYXNz</auth>" HDR_C
           "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"
           "balcony</resource></bind></iq>\n"
           "<iq type='get' id='roster_1'><query xmlns='jabber:iq:roster'/></iq>"
           "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"
           "<presence><show>away</show><status>Out &amp; about</status></presence> \r\n\t "
           "<message to='romeo@example.net' type='chat' id='m1'><body>Art thou not Romeo, &amp; a "
           "Montague? &lt;3 &#x1F600;&#128512; &#233;t&#xE9; &quot;&apos;&gt;</body>"
           "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
           "<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='5'/> </stream:stream>",
     RESTART_AUTH, 0, 0,
     OPEN_C "el auth auth " SASL "\n" OPEN_C "el iq iq " CL " type=set id=bind_1\nws\n"
            "el iq iq " CL " type=get id=roster_1\n"
            "el sm-enable enable " SM " empty\n"
            "el presence presence " CL "\nws\n"
            "el message message " CL
            " to=romeo@example.net type=chat id=m1 body=[Art thou not Romeo, "
            "& a Montague? <3 \xF0\x9F\x98\x80\xF0\x9F\x98\x80 \xC3\xA9t\xC3\xA9 \"'>]\n"
            "el sm-r r " SM " empty\n"
            "el sm-a a " SM " h=5 empty\nws\n"
            "close stream:stream\n"
            "again keep=0\n"},
    {"s2c roster, spim, encrypted, sm",
     HDR_S
     "<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>"
     "juliet@example.com/balcony</jid></bind></iq>"
     "<iq type='result' id='roster_1' to='juliet@example.com/balcony'><query "
     "xmlns='jabber:iq:roster' "
     "ver='ver7'><item jid='nurse@example.com'/><item jid='romeo@example.net' name=\"Romeo "
     "&quot;R&quot;\" subscription='both'><group>Friends</group></item></query></iq>"
     "<enabled xmlns='urn:xmpp:sm:3' id='sm-id-1' resume='true'/>"
     "<message from='mallory@evil.example/x' to='juliet@example.com' type='chat'><body>lol! see "
     "it! u&apos;ll like it. http://bad.example/pic.zip</body></message>"
     "<message from='romeo@example.net/o'><encrypted xmlns='eu.siacs.conversations.axolotl'>"
     "<header sid='1'><iv>aaa</iv></header><payload>bbb</payload></encrypted><body>I sent you an "
     "OMEMO message</body><headers xmlns='http://jabber.org/protocol/shim'><header "
     "name='X-Spam-Flag'>"
     "NO</header></headers></message>"
     "<message><body>?OTRv23?</body><encrypted xmlns='urn:xmpp:omemo:2'/><openpgp "
     "xmlns='urn:xmpp:openpgp:0'/>"
     "<x xmlns='jabber:x:encrypted'>x</x></message>"
     "<resumed xmlns='urn:xmpp:sm:3' h='4294967295' previd='sm-id-1'/>"
     "<failed xmlns='urn:xmpp:sm:3' h='3'><item-not-found "
     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
     "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
     "</stream:stream>\n",
     0, 0, 0,
     OPEN_S "el iq iq " CL " type=result id=bind_1\n"
            "el iq iq " CL " to=juliet@example.com/balcony type=result id=roster_1\n"
            "el sm-enabled enabled " SM " id=sm-id-1 empty\n"
            "el message message " CL " to=juliet@example.com from=mallory@evil.example/x type=chat "
            "body=[lol! see it! u'll like it. http://bad.example/pic.zip]\n"
            "el message message " CL
            " from=romeo@example.net/o body=[I sent you an OMEMO message] enc=1 shim\n"
            "el message message " CL " body=[?OTRv23?] enc=30\n"
            "el sm-resumed resumed " SM " h=4294967295 previd=sm-id-1 empty\n"
            "el sm-failed failed " SM " h=3\n"
            "el stream-error stream:error " STREAMS "\n"
            "close stream:stream\nws\n"
            "again keep=0\n"},
    {"cdata bodies and body choice",
     "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
     "xml:lang='en'>"
     "<message><body xml:lang='de'>Hallo</body><body><![CDATA[<b>bold</b> & ]] "
     "]]]></body></message>"
     "<message xml:lang='fr'><body xml:lang='de'>Hallo</body><body "
     "xml:lang='fr'>Salut</body></message>"
     "<message><body xml:lang='de'>Hallo</body></message>"
     "<message><body/><body>second</body></message>"
     "<message><body>a<![CDATA[]]>b<![CDATA[<]]></body></message>",
     0, 0, 0,
     "open stream stream:stream client prefix=stream lang=en\n"
     "el message message " CL " body=[<b>bold</b> & ]] ]]\n"
     "el message message " CL " lang=fr body=[Salut]\n"
     "el message message " CL " body=[Hallo]\n"
     "el message message " CL " body=[]\n"
     "el message message " CL " body=[ab<]\n"
     "again keep=0\n"},
    {"s2s with prefixes and BOM",
     "\xEF\xBB\xBF<s:stream xmlns='jabber:server' xmlns:s='http://etherx.jabber.org/streams' "
     "xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version=\"1.0\">"
     "<db:result from='a.example' to='b.example'>abc</db:result>"
     "<message from='a@a.example' to='b@b.example'><x:body "
     "xmlns:x='jabber:server'>prefixed</x:body></message>"
     "<c:message xmlns:c='jabber:client'><c:body>other content ns</c:body></c:message>"
     "<iq xmlns='urn:other'/>"
     "<s:features/></s:stream>",
     0, 0, 0,
     "open stream s:stream server prefix=s to=b.example from=a.example version=1.0\n"
     "el other db:result {jabber:server:dialback} to=b.example from=a.example\n"
     "el message message {jabber:server} to=b@b.example from=a@a.example body=[prefixed]\n"
     "el message c:message " CL " body=[other content ns]\n"
     "el other iq {urn:other} empty\n"
     "el features s:features " STREAMS " empty\n"
     "close s:stream\n"
     "again keep=0\n"},
    {"unprefixed stream, utf-8, attribute quirks",
     "<stream xmlns='http://etherx.jabber.org/streams'><message xmlns='jabber:client' "
     "to = \"a&amp;b\"  from='x\"y' id='&#x10FFFF;'  ><body>\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
     "\xEF\xBF\xBD tab\there</body></message ></stream >",
     0, 0, 0, "error invalid-namespace\n"},
    {"default namespace on each stanza",
     "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
     "<message to = \"a&amp;b\"  from='x\"y' id='&#x10FFFF;'  "
     "><body>\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
     "\xEF\xBF\xBD tab\there</body></message ></stream:stream >",
     0, 0, 0,
     "open stream stream:stream client prefix=stream\n"
     "el message message " CL
     " to=a&b from=x\"y id=\xF4\x8F\xBF\xBF body=[\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
     "\xEF\xBF\xBD tab\there]\n"
     "close stream:stream\n"
     "again keep=0\n"},
    {"no namespace, xml prefix, non-ASCII names",
     "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
     "<x xmlns=''/><xml:y/><m\xC3\xA9ssage a\xC3\xA9='1' \xE2\x82\xAC='2'>t</m\xC3\xA9ssage>"
     "\t<?xml?>",
     0, 0, 0,
     "open stream stream:stream client prefix=stream\n"
     "el other x empty\n"
     "el other xml:y {http://www.w3.org/XML/1998/namespace} empty\n"
     "el other m\xC3\xA9ssage " CL "\nws\n"
     "error restricted-xml\n"},
    {"incomplete stanza keeps its start",
     "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
     "<message><body>partial",
     0, 0, 0,
     "open stream stream:stream client prefix=stream\n"
     "again keep=0\n"},
    {"depth at the limit", HDR_C "<message><a><b><c/></b></a></message>", 0, 0, 4,
     OPEN_C "el message message " CL "\nagain keep=0\n"},
};

/* An error vector: the condition and the offset of the offending byte inside in. */
struct bad {
    const char *name;
    const char *in;
    size_t stanza_max, depth_max;
    enum xmpp_error err;
    const char *at; /* the error offset is where this substring starts (+ delta) */
    size_t delta;
};

static const struct bad bad[] = {
    {"comment", HDR_C "<message><!-- hi --></message>", 0, 0, XMPP_ERR_RESTRICTED_XML, "-- hi", 0},
    {"comment at stream level", HDR_C "<!-- hi -->", 0, 0, XMPP_ERR_RESTRICTED_XML, "-- hi", 0},
    {"processing instruction", HDR_C "<?foo bar?>", 0, 0, XMPP_ERR_RESTRICTED_XML, "?foo", 0},
    {"PI in a stanza", HDR_C "<iq><?x?></iq>", 0, 0, XMPP_ERR_RESTRICTED_XML, "?x?", 0},
    {"PI named xml-stylesheet", "<?xml-stylesheet href='a'?>", 0, 0, XMPP_ERR_RESTRICTED_XML,
     "-style", 0},
    {"late XML declaration", " <?xml version='1.0'?>", 0, 0, XMPP_ERR_RESTRICTED_XML, "?xml", 0},
    {"doctype", "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>", 0, 0,
     XMPP_ERR_RESTRICTED_XML, "!DOCTYPE", 0},
    {"doctype in content", HDR_C "<iq><!DOCTYPE x></iq>", 0, 0, XMPP_ERR_RESTRICTED_XML, "DOCTYPE",
     0},
    {"undefined entity", HDR_C "<message><body>&lol;</body></message>", 0, 0,
     XMPP_ERR_RESTRICTED_XML, ";</body>", 0},
    {"undefined entity in attribute", HDR_C "<message to='&ent;'/>", 0, 0, XMPP_ERR_RESTRICTED_XML,
     ";'/>", 0},
    {"long entity name", HDR_C "<message><body>&amplify;</body></message>", 0, 0,
     XMPP_ERR_RESTRICTED_XML, "ify;", 0},
    {"bare ampersand", HDR_C "<message><body>a & b</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, " b<", 0},
    {"entity without semicolon", HDR_C "<message><body>&amp </body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, " </body>", 0},
    {"char ref to NUL", HDR_C "<message><body>&#0;</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, ";</body>", 0},
    {"char ref to surrogate", HDR_C "<message><body>&#xD800;</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, ";</body>", 0},
    {"char ref too big", HDR_C "<message><body>&#x110000;</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "0;</body>", 0},
    {"empty char ref", HDR_C "<message><body>&#x;</body></message>", 0, 0, XMPP_ERR_NOT_WELL_FORMED,
     ";</body>", 0},
    {"mismatched tag", HDR_C "<message><body>x</bodx></message>", 0, 0, XMPP_ERR_NOT_WELL_FORMED,
     "></message>", 0},
    {"prefix mismatch in end tag", HDR_C "<message></stream:message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "></stream:message>", 17},
    {"end tag at stream level", HDR_C "</message>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">", 0},
    {"oversize stanza",
     HDR_C "<message><body>0123456789012345678901234567890123456789"
           "0123456789012345678901234567890123456789"
           "0123456789012345678901234567890123456789"
           "0123456789012345678901234567890123456789"
           "0123456789012345678901234567890123456789</body></message>",
     200, 0, XMPP_ERR_POLICY_VIOLATION, "<message>", 200},
    {"oversize stream header", HDR_C, 64, 0, XMPP_ERR_POLICY_VIOLATION, "<?xml", 64},
    {"too deep", HDR_C "<message><a><b><c><d/></c></b></a></message>", 0, 4,
     XMPP_ERR_POLICY_VIOLATION, "d/>", 0},
    {"bad UTF-8 continuation", HDR_C "<message><body>\xC3\x28</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "(</body>", 0},
    {"overlong UTF-8", HDR_C "<message><body>\xE0\x80\xAF</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "\x80\xAF", 1},
    {"UTF-8 surrogate", HDR_C "<message><body>\xED\xA0\x80</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "\xA0\x80", 1},
    {"invalid UTF-8 lead", HDR_C "<message><body>\xFF</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "\xFF", 0},
    {"U+FFFE", HDR_C "<message><body>\xEF\xBF\xBE</body></message>", 0, 0, XMPP_ERR_NOT_WELL_FORMED,
     "\xBF\xBE", 1},
    {"control character", HDR_C "<message><body>\x01</body></message>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "\x01", 0},
    {"control character in attribute", HDR_C "<message to='\x1b'/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED,
     "\x1b", 0},
    {"bad stream namespace", "<stream:stream xmlns='jabber:client' xmlns:stream='http://wrong/'>",
     0, 0, XMPP_ERR_INVALID_NAMESPACE, ">", 0},
    {"bad content namespace",
     "<stream:stream xmlns='jabber:x' xmlns:stream='http://etherx.jabber.org/streams'>", 0, 0,
     XMPP_ERR_INVALID_NAMESPACE, ">", 0},
    {"root is not a stream", "<html xmlns='http://etherx.jabber.org/streams'>", 0, 0,
     XMPP_ERR_BAD_FORMAT, ">", 0},
    {"encoding is not UTF-8", "<?xml version='1.0' encoding='ISO-8859-1'?>", 0, 0,
     XMPP_ERR_UNSUPPORTED_ENCODING, ">", 0},
    {"malformed XML declaration", "<?xml versio='1.0'?>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">", 0},
    {"unbound element prefix", HDR_C "<foo:bar/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">", 0},
    {"unbound attribute prefix", HDR_C "<message foo:x='1'/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">",
     0},
    {"duplicate attribute", HDR_C "<message to='a' to='b'/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">",
     0},
    {"duplicate xmlns", HDR_C "<message xmlns='a' xmlns='b'/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">",
     0},
    {"']]>' in text", HDR_C "<message><body>a]]>b</body></message>", 0, 0, XMPP_ERR_NOT_WELL_FORMED,
     ">b</body>", 0},
    {"'<' in attribute", HDR_C "<message to='a<b'/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "<b'", 0},
    {"missing space between attributes", HDR_C "<message to='a'id='b'/>", 0, 0,
     XMPP_ERR_NOT_WELL_FORMED, "id=", 0},
    {"attribute without value", HDR_C "<message to/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "/>", 0},
    {"unquoted attribute", HDR_C "<message to=a/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "a/>", 0},
    {"bad name start", HDR_C "<1message/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "1m", 0},
    {"bad end tag name", HDR_C "<message></-message>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "-message>",
     8},
    {"double colon", HDR_C "<a:b:c/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "/>", 0},
    {"text at stream level", HDR_C "hello", 0, 0, XMPP_ERR_BAD_FORMAT, "hello", 0},
    {"CDATA at stream level", HDR_C "<![CDATA[x]]>", 0, 0, XMPP_ERR_BAD_FORMAT, "[CDATA", 0},
    {"bad CDATA open", HDR_C "<m><![CDAT x]]></m>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, " x]]", 0},
    {"data after stream end", HDR_C "</stream:stream> <x/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "<x/>",
     0},
    {"empty stream header",
     "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'/>", 0, 0,
     XMPP_ERR_BAD_FORMAT, ">", 0},
    {"xml prefix rebound", HDR_C "<m xmlns:xml='urn:x'/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">", 0},
    {"xmlns prefix declared", HDR_C "<m xmlns:xmlns='urn:x'/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">",
     0},
    {"empty prefixed namespace", HDR_C "<m xmlns:a=''/>", 0, 0, XMPP_ERR_NOT_WELL_FORMED, ">", 0},
    {"garbage before header", "hello", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "hello", 0},
    {"broken BOM", "\xEF\xBB<", 0, 0, XMPP_ERR_NOT_WELL_FORMED, "<", 0},
};

static void test_streams(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++)
        check_vector(&good[k]);
}

static void test_errors(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        const struct bad *b = &bad[k];
        struct vector v = {b->name, b->in, 0, b->stanza_max, b->depth_max, NULL};
        static struct out o;
        run(&v, NULL, 0, true, &o);
        const char *at = strstr(b->in, b->at);
        if (at == NULL || strstr(b->in, b->at) != at)
            fail_msg("%s: marker not found", b->name);
        char want[128];
        /* the last substring occurrence is the marker when the header repeats it */
        const char *last = at, *q = at;
        while ((q = strstr(q + 1, b->at)) != NULL)
            last = q;
        snprintf(want, sizeof(want), "error %s@%zu\n", xmpp_error_condition(b->err),
                 (size_t)(last - b->in) + b->delta);
        const char *e = strstr(o.s, "error ");
        if (e == NULL || strcmp(e, want) != 0)
            fail_msg("%s: got\n%s\nwant %s", b->name, o.s, want);
        /* the same error at the same offset however the bytes are split */
        struct vector w = v;
        w.expect = NULL;
        size_t len = strlen(b->in);
        static struct out whole, got;
        run(&w, NULL, 0, true, &whole);
        for (size_t c = 0; c <= len; c++) {
            run(&w, &c, 1, true, &got);
            if (strcmp(got.s, whole.s) != 0)
                fail_msg("%s split at %zu: got\n%s\nexpected\n%s", b->name, c, got.s, whole.s);
        }
    }
}

/* A 10 MB stanza is rejected after stanza_max + 1 bytes, and the caller never holds more than
 * stanza_max of them. */
static void test_oversize_streaming(void **state)
{
    (void)state;
    struct xmpp_parser p;
    struct xmpp_limits lim;
    struct xmpp_event ev;
    xmpp_limits_default(&lim);
    assert_int_equal(xmpp_parser_init(&p, &lim), SW_OK);
    const char *hdr = HDR_C "<message><body>";
    size_t hl = strlen(hdr);
    size_t total = 10u << 20, cap = lim.stanza_max + 4096;
    char *win = malloc(cap);
    assert_non_null(win);
    uint64_t win_base = 0, end = 0;
    size_t win_len = 0;
    int rc = SW_AGAIN;
    uint64_t stanza_start = strstr(hdr, "<message>") - hdr;
    while (end < total) {
        /* drop what the parser no longer needs, then append a chunk */
        uint64_t keep = xmpp_parser_keep(&p);
        assert_true(keep >= win_base);
        memmove(win, win + (keep - win_base), win_len - (size_t)(keep - win_base));
        win_len -= (size_t)(keep - win_base);
        win_base = keep;
        size_t chunk = 1000;
        assert_true(win_len + chunk <= cap);
        for (size_t k = 0; k < chunk; k++, end++)
            win[win_len + k] = end < hl ? hdr[end] : 'a';
        win_len += chunk;
        while ((rc = xmpp_parser_feed(&p, win, win_len, win_base, &ev)) == SW_OK)
            assert_int_equal(ev.type, XMPP_EV_STREAM_OPEN);
        if (rc == SW_ERROR)
            break;
    }
    assert_int_equal(rc, SW_ERROR);
    assert_int_equal(p.err, XMPP_ERR_POLICY_VIOLATION);
    assert_int_equal(p.err_pos, stanza_start + lim.stanza_max);
    assert_true(end <= stanza_start + lim.stanza_max + 1000);
    free(win);
}

/* The retention contract: keep is the start of the pending event; offsets continue across a
 * restart; the caller may pass a buffer starting before keep. */
static void test_keep_and_restart(void **state)
{
    (void)state;
    struct xmpp_parser p;
    struct xmpp_event ev;
    assert_int_equal(xmpp_parser_init(&p, NULL), SW_OK);
    const char *s = HDR_C
        "<message><body>hi</body></message><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>junk";
    size_t hl = strlen(HDR_C), len = strlen(s);
    assert_int_equal(xmpp_parser_feed(&p, s, hl + 5, 0, &ev), SW_OK);
    assert_int_equal(ev.type, XMPP_EV_STREAM_OPEN);
    assert_int_equal(ev.off, 0);
    assert_int_equal(ev.size, hl);
    assert_int_equal(xmpp_parser_feed(&p, s, hl + 5, 0, &ev), SW_AGAIN);
    assert_int_equal(xmpp_parser_keep(&p), hl);
    /* more bytes, buffer starting at 0 (before keep) is allowed */
    assert_int_equal(xmpp_parser_feed(&p, s, len, 0, &ev), SW_OK);
    assert_int_equal(ev.kind, XMPP_EL_MESSAGE);
    assert_int_equal(ev.off, hl);
    assert_true(ev.body.set);
    assert_memory_equal(ev.data + ev.body.pos, "hi", 2);
    assert_memory_equal(ev.data + ev.content.pos, "<body>hi</body>", 15);
    assert_int_equal(xmpp_parser_feed(&p, s, len, 0, &ev), SW_OK);
    assert_int_equal(ev.kind, XMPP_EL_PROCEED);
    uint64_t after = ev.off + ev.size;
    /* STARTTLS: discard the plaintext after <proceed/>, restart, feed the TLS bytes */
    xmpp_parser_restart(&p);
    assert_int_equal(xmpp_parser_keep(&p), after);
    const char *tls = HDR_C "<presence/>";
    assert_int_equal(xmpp_parser_feed(&p, tls, strlen(tls), after, &ev), SW_OK);
    assert_int_equal(ev.type, XMPP_EV_STREAM_OPEN);
    assert_int_equal(ev.off, after);
    assert_int_equal(xmpp_parser_feed(&p, tls, strlen(tls), after, &ev), SW_OK);
    assert_int_equal(ev.kind, XMPP_EL_PRESENCE);
    assert_true(ev.empty);
    /* a buffer that does not cover the retained bytes is a contract error */
    struct xmpp_parser q;
    assert_int_equal(xmpp_parser_init(&q, NULL), SW_OK);
    assert_int_equal(xmpp_parser_feed(&q, "<", 1, 5, &ev), SW_ERROR);
}

static void test_limits(void **state)
{
    (void)state;
    struct xmpp_parser p;
    struct xmpp_limits lim;
    xmpp_limits_default(&lim);
    assert_int_equal(lim.stanza_max, 262144);
    lim.stanza_max = 10;
    assert_int_equal(xmpp_parser_init(&p, &lim), SW_ERROR);
    xmpp_limits_default(&lim);
    lim.depth_max = XMPP_DEPTH_MAX_LIMIT + 1;
    assert_int_equal(xmpp_parser_init(&p, &lim), SW_ERROR);
    xmpp_limits_default(&lim);
    lim.value_max = lim.stanza_max + 1;
    assert_int_equal(xmpp_parser_init(&p, &lim), SW_ERROR);

    /* attribute count, name length, value length, namespace declarations */
    static const struct {
        const char *in;
        size_t attrs, name, value, ns;
    } v[] = {
        {HDR_C "<m a='1' b='2' c='3'/>", 2, 0, 0, 0},
        {HDR_C "<abcdefghijklmnopqrstuvwxyz/>", 0, 16, 0, 0},
        {HDR_C "<m a='0123456789012345678901234567890123456789'/>", 0, 0, 32, 0},
        {HDR_C "<m xmlns:a='1' xmlns:b='2' xmlns:c='3'/>", 0, 0, 0, 4},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        struct xmpp_event ev;
        xmpp_limits_default(&lim);
        if (v[k].attrs)
            lim.attrs_max = v[k].attrs;
        if (v[k].name)
            lim.name_max = v[k].name;
        if (v[k].value)
            lim.value_max = v[k].value;
        if (v[k].ns)
            lim.ns_max = v[k].ns;
        assert_int_equal(xmpp_parser_init(&p, &lim), SW_OK);
        int rc;
        while ((rc = xmpp_parser_feed(&p, v[k].in, strlen(v[k].in), 0, &ev)) == SW_OK)
            ;
        assert_int_equal(rc, SW_ERROR);
        assert_int_equal(p.err, XMPP_ERR_POLICY_VIOLATION);
    }
}

static void test_decode_escape(void **state)
{
    (void)state;
    char out[64];
    const char *raw =
        "a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;&#x1F600;<![CDATA[<x>&amp;]]><i a='>'>t</i>";
    size_t n = xmpp_decode(raw, strlen(raw), out, sizeof(out));
    const char *want = "a&b<>\"'AB\xF0\x9F\x98\x80<x>&amp;t";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    /* truncation: snprintf-like length, only cap bytes written */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(xmpp_decode("&amp;bcdef", 10, out, 3), 6);
    assert_memory_equal(out, "&bcZ", 4);
    /* malformed input is copied through */
    n = xmpp_decode("&bogus; &#xZZ; &", 16, out, sizeof(out));
    assert_memory_equal(out, "&bogus; &#xZZ; &", n);
    /* references with leading zeros, which the parser accepts however many there are, decode
     * (the matcher must see the letter the recipient sees); capital X is not XML */
    raw = "&#0000000000000000102;ree &#x00000000000070;ics &#X41; &#x00000000110000;";
    n = xmpp_decode(raw, strlen(raw), out, sizeof(out));
    want = "free pics &#X41; &#x00000000110000;";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_true(xmpp_raw_eq("jabber&#x3A;client", 18, "jabber:client"));
    assert_true(xmpp_raw_eq("jabber:client", 13, "jabber:client"));
    assert_false(xmpp_raw_eq("jabber:clients", 14, "jabber:client"));
    n = xmpp_escape("<a href=\"x\">&'", 14, out, sizeof(out));
    const char *esc = "&lt;a href=&quot;x&quot;&gt;&amp;&apos;";
    assert_int_equal(n, strlen(esc));
    assert_memory_equal(out, esc, n);
    assert_int_equal(xmpp_escape("&&", 2, out, 3), 10);
    assert_string_equal(xmpp_error_condition(XMPP_ERR_RESTRICTED_XML), "restricted-xml");
    assert_string_equal(xmpp_error_condition(XMPP_ERR_POLICY_VIOLATION), "policy-violation");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_oversize_streaming),
        cmocka_unit_test(test_keep_and_restart),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_decode_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
