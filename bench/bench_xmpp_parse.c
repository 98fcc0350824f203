/* bench-xmpp-parse: throughput of the XMPP stream parser (protocols/xmpp/) against expat on
 * the same generated client-to-server stream, in the same run.
 *
 *   bench-xmpp-parse [--mb N] [--reps N] [--chunk BYTES] [--seed N]
 *
 * The stream: an XML declaration and stream header, then stanzas until about --mb MiB: 80%
 * <message> with a 100-300 byte <body> (a tenth with entities, a twentieth with a
 * <![CDATA[]]> body, a tenth with a chat-state or receipt child), 10% <presence> with show,
 * status and a caps child, 10% roster and ping <iq>, plus whitespace keepalives.
 *
 * Both parsers get the stream in --chunk byte pieces (as reads from a socket would give it)
 * and do the work the proxy needs per stanza:
 *   spimwall  xmpp_parser_feed() events; for every message xmpp_decode() of the chosen body
 *             into a buffer (attributes to/from/type/id come with the event);
 *   expat     XML_ParserCreateNS (namespace processing, as Prosody uses it) with start, end and
 *             character-data handlers that track depth, find top-level elements, read
 *             to/from/type/id from the attributes and copy the text of message/body into a
 *             buffer (expat decodes it). The stanza's byte range, which the proxy also needs,
 *             would cost expat more (XML_GetCurrentByteIndex); it is not counted.
 * Each parser runs --reps times (interleaved); the median CPU time gives MB/s and stanzas/s.
 * Output: one JSON line per parser and a ratio line on stdout. */
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/lib/benchutil.h"
#include "protocols/xmpp/xmpp_escape.h"
#include "protocols/xmpp/xmpp_parser.h"

#define REPS_MAX 64

struct gen {
    char *buf;
    size_t len, cap;
    uint64_t stanzas, messages;
};

static void put(struct gen *g, const char *s, size_t n)
{
    if (g->len + n > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 1 << 20;
        while (cap < g->len + n)
            cap *= 2;
        char *nb = realloc(g->buf, cap);
        if (nb == NULL) {
            fprintf(stderr, "bench-xmpp-parse: out of memory\n");
            exit(1);
        }
        g->buf = nb;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, s, n);
    g->len += n;
}

static void puts_(struct gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static const char *const words[] = {
    "hey",
    "are",
    "you",
    "coming",
    "tonight",
    "the",
    "meeting",
    "moved",
    "to",
    "three",
    "o'clock",
    "lol",
    "see",
    "this",
    "picture",
    "http://example.org/p/12345",
    "thanks",
    "ok",
    "sure",
    "what",
    "about",
    "tomorrow",
    "I",
    "think",
    "we",
    "should",
    "go",
    "with",
    "plan",
    "B",
    "caf\xC3\xA9",
    "\xF0\x9F\x98\x80",
    "na\xC3\xAFve",
    "link:",
    "https://news.example.com/a?b=c",
};

static void body_text(struct gen *g, struct bench_rng *r, size_t target, bool entities)
{
    size_t n = 0;
    while (n < target) {
        const char *w = words[bench_rng_below(r, sizeof(words) / sizeof(words[0]))];
        if (entities && bench_rng_chance(r, 0.1)) {
            puts_(g, bench_rng_chance(r, 0.5) ? "&amp; " : "&lt;3 &#x1F600; ");
            n += 6;
        }
        if (strchr(w, '\'') != NULL && !entities) {
            puts_(g, "it&apos;s ");
            n += 10;
            continue;
        }
        if (strchr(w, '\'') != NULL) {
            puts_(g, "o&apos;clock ");
            n += 13;
            continue;
        }
        puts_(g, w);
        puts_(g, " ");
        n += strlen(w) + 1;
    }
}

static void generate(struct gen *g, size_t target, uint64_t seed)
{
    struct bench_rng r;
    char tmp[512];
    bench_rng_seed(&r, seed);
    puts_(g, "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>");
    while (g->len < target) {
        uint64_t u = bench_rng_below(&r, 100);
        unsigned a = (unsigned)bench_rng_below(&r, 1000), b = (unsigned)bench_rng_below(&r, 1000);
        if (u < 80) {
            snprintf(tmp, sizeof(tmp),
                     "<message to='user%u@example.com' from='user%u@example.net/phone-%u' "
                     "type='chat' id='msg-%llu' xml:lang='en'><body>",
                     a, b, a % 7, (unsigned long long)g->stanzas);
            puts_(g, tmp);
            size_t blen = 100 + (size_t)bench_rng_below(&r, 201);
            if (bench_rng_chance(&r, 0.05)) {
                puts_(g, "<![CDATA[");
                body_text(g, &r, blen, false);
                puts_(g, "]]>");
            } else {
                body_text(g, &r, blen, bench_rng_chance(&r, 0.1));
            }
            puts_(g, "</body>");
            if (bench_rng_chance(&r, 0.1))
                puts_(g, "<active xmlns='http://jabber.org/protocol/chatstates'/>"
                         "<request xmlns='urn:xmpp:receipts'/>");
            puts_(g, "</message>");
            g->messages++;
        } else if (u < 90) {
            snprintf(tmp, sizeof(tmp),
                     "<presence from='user%u@example.net/desktop'><show>away</show><status>"
                     "Be right back</status><priority>5</priority><c xmlns='http://jabber.org/"
                     "protocol/caps' hash='sha-1' node='https://example.org' ver='q07IKJEyjvHSyhy"
                     "//CH0CxmKi8w='/></presence>",
                     b);
            puts_(g, tmp);
        } else if (u < 95) {
            snprintf(tmp, sizeof(tmp),
                     "<iq type='get' id='ping-%u' to='example.com'><ping xmlns='urn:xmpp:ping'/>"
                     "</iq>",
                     a);
            puts_(g, tmp);
        } else {
            snprintf(tmp, sizeof(tmp),
                     "<iq type='set' id='push-%u'><query xmlns='jabber:iq:roster'><item "
                     "jid='user%u@example.com' name='User %u' subscription='both'><group>"
                     "Friends</group></item></query></iq>",
                     a, b, b);
            puts_(g, tmp);
        }
        g->stanzas++;
        if (bench_rng_chance(&r, 0.02))
            puts_(g, " ");
    }
    puts_(g, "</stream:stream>");
}

/* ---- spimwall ------------------------------------------------------------------------------ */

struct result {
    uint64_t stanzas, messages, body_bytes;
};

static int run_ours(const char *s, size_t len, size_t chunk, struct result *res)
{
    struct xmpp_parser p;
    struct xmpp_event ev;
    static char body[65536];
    memset(res, 0, sizeof(*res));
    if (xmpp_parser_init(&p, NULL) != SW_OK)
        return -1;
    size_t fed = 0;
    while (fed < len) {
        fed = fed + chunk < len ? fed + chunk : len;
        uint64_t keep = xmpp_parser_keep(&p);
        int rc;
        while ((rc = xmpp_parser_feed(&p, s + keep, fed - (size_t)keep, keep, &ev)) == SW_OK) {
            if (ev.type != XMPP_EV_ELEMENT)
                continue;
            res->stanzas++;
            if (ev.kind == XMPP_EL_MESSAGE && ev.body.set) {
                res->messages++;
                res->body_bytes +=
                    xmpp_decode(ev.data + ev.body.pos, ev.body.len, body, sizeof(body));
            }
            keep = xmpp_parser_keep(&p);
        }
        if (rc == SW_ERROR) {
            fprintf(stderr, "bench-xmpp-parse: parser error %s at %llu: %s\n",
                    xmpp_error_condition(p.err), (unsigned long long)p.err_pos, p.err_msg);
            return -1;
        }
    }
    return 0;
}

/* ---- expat --------------------------------------------------------------------------------- */

struct ex {
    int depth;
    bool in_message, in_body;
    const char *to, *from, *type, *id; /* kept to mirror the event's attributes */
    char body[65536];
    size_t body_len;
    struct result res;
};

/* names are "uri local" with XML_ParserCreateNS(NULL, ' ') */
static bool ns_name(const char *name, const char *uri, const char *local)
{
    size_t ul = strlen(uri);
    return strncmp(name, uri, ul) == 0 && name[ul] == ' ' && strcmp(name + ul + 1, local) == 0;
}

static void XMLCALL ex_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct ex *x = ud;
    x->depth++;
    if (x->depth == 2) {
        x->in_message = ns_name(name, "jabber:client", "message");
        x->to = x->from = x->type = x->id = NULL;
        for (const XML_Char **a = atts; a[0] != NULL; a += 2) {
            if (strcmp(a[0], "to") == 0)
                x->to = a[1];
            else if (strcmp(a[0], "from") == 0)
                x->from = a[1];
            else if (strcmp(a[0], "type") == 0)
                x->type = a[1];
            else if (strcmp(a[0], "id") == 0)
                x->id = a[1];
        }
        x->body_len = 0;
    } else if (x->depth == 3 && x->in_message && ns_name(name, "jabber:client", "body")) {
        x->in_body = true;
    }
}

static void XMLCALL ex_end(void *ud, const XML_Char *name)
{
    struct ex *x = ud;
    (void)name;
    if (x->depth == 3 && x->in_body) {
        x->in_body = false;
        x->res.messages++;
        x->res.body_bytes += x->body_len;
    }
    if (x->depth == 2)
        x->res.stanzas++;
    x->depth--;
}

static void XMLCALL ex_text(void *ud, const XML_Char *s, int len)
{
    struct ex *x = ud;
    if (!x->in_body || len <= 0)
        return;
    size_t n = (size_t)len;
    if (n > sizeof(x->body) - x->body_len)
        n = sizeof(x->body) - x->body_len;
    memcpy(x->body + x->body_len, s, n);
    x->body_len += n;
}

static int run_expat(const char *s, size_t len, size_t chunk, struct result *res)
{
    static struct ex x;
    memset(&x, 0, sizeof(x));
    XML_Parser xp = XML_ParserCreateNS(NULL, ' ');
    if (xp == NULL)
        return -1;
    XML_SetUserData(xp, &x);
    XML_SetElementHandler(xp, ex_start, ex_end);
    XML_SetCharacterDataHandler(xp, ex_text);
    int rc = 0;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (XML_Parse(xp, s + off, (int)n, 0) != XML_STATUS_OK) {
            fprintf(stderr, "bench-xmpp-parse: expat error %s at %lu\n",
                    XML_ErrorString(XML_GetErrorCode(xp)),
                    (unsigned long)XML_GetCurrentByteIndex(xp));
            rc = -1;
            break;
        }
    }
    XML_ParserFree(xp);
    *res = x.res;
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-xmpp-parse [--mb N] [--reps N] [--chunk BYTES] [--seed N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t mb = 64, reps = 5, chunk = 16384, seed = 42;
    /* every option takes a value: step over both */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok;
        if (strcmp(a, "--mb") == 0)
            ok = v != NULL && bench_parse_u64(v, 1, 4096, &mb);
        else if (strcmp(a, "--reps") == 0)
            ok = v != NULL && bench_parse_u64(v, 1, REPS_MAX, &reps);
        else if (strcmp(a, "--chunk") == 0)
            ok = v != NULL && bench_parse_u64(v, 1, 1u << 30, &chunk);
        else if (strcmp(a, "--seed") == 0)
            ok = v != NULL && bench_parse_u64(v, 0, UINT64_MAX, &seed);
        else
            ok = false;
        if (!ok)
            usage();
    }

    struct gen g = {0};
    generate(&g, (size_t)(mb << 20), seed);
    fprintf(stderr, "bench-xmpp-parse: %zu bytes, %llu stanzas, %llu messages\n", g.len,
            (unsigned long long)g.stanzas, (unsigned long long)g.messages);

    double t_ours[REPS_MAX], t_expat[REPS_MAX];
    struct result r_ours = {0}, r_expat = {0};
    for (uint64_t k = 0; k < reps; k++) {
        struct bench_timer t;
        bench_timer_start(&t);
        if (run_ours(g.buf, g.len, (size_t)chunk, &r_ours) != 0)
            return 1;
        bench_timer_stop(&t);
        t_ours[k] = t.cpu_s;
        bench_timer_start(&t);
        if (run_expat(g.buf, g.len, (size_t)chunk, &r_expat) != 0)
            return 1;
        bench_timer_stop(&t);
        t_expat[k] = t.cpu_s;
    }
    /* both parsers must have seen the same stream */
    if (r_ours.stanzas != g.stanzas || r_expat.stanzas != g.stanzas ||
        r_ours.messages != r_expat.messages || r_ours.body_bytes != r_expat.body_bytes) {
        fprintf(stderr,
                "bench-xmpp-parse: results differ: stanzas %llu/%llu/%llu bodies %llu/%llu "
                "body bytes %llu/%llu\n",
                (unsigned long long)g.stanzas, (unsigned long long)r_ours.stanzas,
                (unsigned long long)r_expat.stanzas, (unsigned long long)r_ours.messages,
                (unsigned long long)r_expat.messages, (unsigned long long)r_ours.body_bytes,
                (unsigned long long)r_expat.body_bytes);
        return 1;
    }
    double mo = bench_median(t_ours, (size_t)reps), me = bench_median(t_expat, (size_t)reps);
    const struct {
        const char *name;
        double s;
    } rows[] = {{"spimwall", mo}, {"expat", me}};
    for (size_t k = 0; k < 2; k++) {
        struct bench_json j;
        bench_json_begin(&j);
        bench_json_str(&j, "bench", "xmpp_parse");
        bench_json_str(&j, "parser", rows[k].name);
        bench_json_u64(&j, "bytes", g.len);
        bench_json_u64(&j, "stanzas", g.stanzas);
        bench_json_u64(&j, "messages", r_ours.messages);
        bench_json_u64(&j, "chunk", chunk);
        bench_json_u64(&j, "reps", reps);
        bench_json_double(&j, "cpu_s", rows[k].s);
        bench_json_double(&j, "mb_per_s", (double)g.len / 1e6 / rows[k].s);
        bench_json_double(&j, "stanzas_per_s", (double)g.stanzas / rows[k].s);
        if (bench_json_end(&j, stdout) != 0)
            return 1;
    }
    struct bench_json j;
    bench_json_begin(&j);
    bench_json_str(&j, "bench", "xmpp_parse_ratio");
    bench_json_double(&j, "spimwall_over_expat", me / mo);
    if (bench_json_end(&j, stdout) != 0)
        return 1;
    free(g.buf);
    return 0;
}
