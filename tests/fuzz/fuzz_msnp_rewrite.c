/* Fuzz target for the msnp proxy's rewriters with the parser (proxy/msnp_session.c): the input
 * (first byte: direction) is framed by msnp_parse; every XFR SB / RNG goes through the address
 * rewriter and every MSG with a MIME body through the tagger. Checks besides memory safety:
 * each rewritten command frames again as exactly one command of the same name and size; the
 * rewritten XFR/RNG names the proxy's switchboard and keeps the cookie; a tagged MSG declares
 * exactly its new payload length, carries the X-Spam headers and ends with the original body. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/msnp/msnp_mime.h"
#include "protocols/msnp/msnp_parser.h"
#include "proxy/msnp_session.h"

static uint8_t out[1 << 17];
static struct msnp_mime mime;

static void check(int cond)
{
    if (!cond)
        abort();
}

static const char sb[] = "192.0.2.7:1864";

/* Frames out[0..n) as one command of direction dir. */
static void reframe(const uint8_t *buf, size_t n, enum msnp_dir dir, const char *cmd,
                    struct msnp_event *ev)
{
    static struct msnp_parser p;
    struct msnp_limits lim;
    msnp_limits_default(&lim);
    lim.payload_max = MSNP_PAYLOAD_MAX_LIMIT;
    lim.line_max = MSNP_LINE_MAX_LIMIT;
    check(msnp_parser_init(&p, dir, &lim) == SW_OK);
    check(msnp_parse(&p, buf, n, 0, ev) == SW_OK);
    check(ev->size == n && strcmp(ev->cmd, cmd) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct msnp_parser p;
    struct msnp_event ev, e2;
    if (size < 1)
        return 0;
    enum msnp_dir dir = data[0] & 1 ? MSNP_DIR_S2C : MSNP_DIR_C2S;
    check(msnp_parser_init(&p, dir, NULL) == SW_OK);
    const uint8_t *s = data + 1;
    size_t len = size - 1;
    while (msnp_parse(&p, s, len, 0, &ev) == SW_OK) {
        struct msnp_xfr xf;
        struct msnp_rng rg;
        const struct msnp_hostport *hp = NULL;
        const struct msnp_span *cookie = NULL;
        if (dir == MSNP_DIR_S2C && msnp_parse_xfr(&ev, &xf) == SW_OK && xf.sb) {
            hp = &xf.hp;
            cookie = &xf.cookie;
        } else if (dir == MSNP_DIR_S2C && msnp_parse_rng(&ev, &rg) == SW_OK) {
            hp = &rg.hp;
            cookie = &rg.cookie;
        }
        if (hp != NULL) {
            size_t n = msnp_session_rewrite_addr(&ev, hp, sb, out, sizeof(out));
            check(n == ev.size - hp->addr.len + strlen(sb));
            reframe(out, n, dir, ev.cmd, &e2);
            check(memmem(out, e2.line_len, sb, strlen(sb)) != NULL);
            check(memmem(out, e2.line_len, ev.data + cookie->pos, cookie->len) != NULL);
        }
        if (strcmp(ev.cmd, "MSG") == 0 && ev.has_payload &&
            msnp_mime_parse(ev.data + ev.payload.pos, ev.payload.len, NULL, &mime) == SW_OK) {
            size_t n = msnp_session_tag(&ev, mime.body_pos, 7.5, "A,B", out, sizeof(out));
            if (n != 0 && n != SIZE_MAX) {
                reframe(out, n, dir, "MSG", &e2);
                /* framing by the declared length covered all n bytes (reframe); the payload
                 * grew by exactly the inserted headers */
                check(e2.payload.len > ev.payload.len && e2.payload.len <= 1664);
                check(memmem(out + e2.payload.pos, e2.payload.len, "X-Spam-Flag: YES\r\n", 18) !=
                      NULL);
                size_t blen = ev.payload.len - mime.body_pos;
                check(e2.payload.len >= blen &&
                      memcmp(out + e2.payload.pos + e2.payload.len - blen,
                             ev.data + ev.payload.pos + mime.body_pos, blen) == 0);
            }
            if (n == SIZE_MAX)
                check(ev.payload.len > 1664 - 60);
        }
    }
    return 0;
}
