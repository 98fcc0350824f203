/* Fuzz target for protocols/msnp/msnp_parser.c. Input: a flags byte (bit 0 direction, bit 1
 * tight limits from the next three bytes), a count of sent-command notes with (trid, command)
 * byte pairs, then the stream. Besides memory safety it checks the parser contract: events
 * tile the stream and describe the bytes they point at, and feeding the stream whole, one byte
 * at a time and in pseudo-random pieces (each piece in a fresh allocation holding only the
 * retained bytes) gives exactly the same events and the same error at the same offset. The
 * rewriter's line helpers run on every event and must return spans inside the line. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/msnp/msnp_parser.h"

#define EVENTS_MAX 4096

struct rec {
    uint64_t off;
    size_t size, line_len, eol_len;
    char cmd[4], answers[4];
    bool known, numeric, has_trid, has_payload;
    uint32_t trid;
    size_t args_pos, args_len, len_pos, len_len, pay_pos, pay_len;
};

struct trace {
    size_t n;
    struct rec r[EVENTS_MAX];
    int rc;
    const char *err;
    uint64_t err_pos, keep;
};

static struct trace t_whole, t_other;

static const char *const pay_cmds[] = {"MSG", "UUX", "ADL", "RML", "FQY", "UUN", "QRY", "PAG",
                                       "SDG", "PUT", "DEL", "UUM", "GCF", "USR", "XFR", "CAL"};

static void check(int cond)
{
    if (!cond)
        abort();
}

static void check_span(const struct msnp_event *ev, struct msnp_span s)
{
    check(s.pos + s.len <= ev->line_len);
}

static void helpers(const struct msnp_event *ev, enum msnp_dir dir)
{
    struct msnp_xfr x;
    struct msnp_rng r;
    struct msnp_sb_login l;
    struct msnp_msg_line m;
    if (msnp_parse_xfr(ev, &x) == SW_OK) {
        check_span(ev, x.hp.addr);
        check_span(ev, x.hp.host);
        check_span(ev, x.cookie);
        check(x.hp.port > 0 && x.hp.host.len > 0);
    }
    if (msnp_parse_rng(ev, &r) == SW_OK) {
        check_span(ev, r.sessid);
        check_span(ev, r.hp.addr);
        check_span(ev, r.cookie);
        check_span(ev, r.email);
        check_span(ev, r.nick);
    }
    if (msnp_parse_sb_login(ev, &l) == SW_OK) {
        check_span(ev, l.email);
        check_span(ev, l.cookie);
        check_span(ev, l.sessid);
        check(l.trid == ev->trid);
    }
    if (msnp_parse_msg_line(ev, dir, &m) == SW_OK) {
        check_span(ev, m.email);
        check_span(ev, m.nick);
        check(ev->has_payload);
    }
}

static void record(struct trace *t, const struct msnp_event *ev, const uint8_t *stream, size_t len,
                   enum msnp_dir dir)
{
    uint64_t expect = t->n == 0 ? 0 : t->r[t->n - 1].off + t->r[t->n - 1].size;
    check(ev->off == expect);
    check(ev->off + ev->size <= len);
    check(memcmp(ev->data, stream + ev->off, ev->size) == 0);
    check(ev->line_len + ev->eol_len + ev->payload.len == ev->size);
    check(ev->payload.pos == ev->line_len + ev->eol_len);
    check_span(ev, ev->args);
    check_span(ev, ev->len_tok);
    check(ev->has_payload || (ev->payload.len == 0 && ev->len_tok.len == 0));
    check(memcmp(ev->data, ev->cmd, 3) == 0 && ev->cmd[3] == '\0');
    helpers(ev, dir);
    check(t->n < EVENTS_MAX);
    struct rec *r = &t->r[t->n++];
    memset(r, 0, sizeof(*r));
    r->off = ev->off;
    r->size = ev->size;
    r->line_len = ev->line_len;
    r->eol_len = ev->eol_len;
    memcpy(r->cmd, ev->cmd, 4);
    memcpy(r->answers, ev->answers, 4);
    r->known = ev->known;
    r->numeric = ev->numeric;
    r->has_trid = ev->has_trid;
    r->has_payload = ev->has_payload;
    r->trid = ev->trid;
    r->args_pos = ev->args.pos;
    r->args_len = ev->args.len;
    r->len_pos = ev->len_tok.pos;
    r->len_len = ev->len_tok.len;
    r->pay_pos = ev->payload.pos;
    r->pay_len = ev->payload.len;
}

struct setup {
    enum msnp_dir dir;
    struct msnp_limits lim;
    size_t nnotes;
    uint8_t notes[16][2];
};

/* mode 0: whole; 1: one byte at a time; 2: pseudo-random pieces, each a fresh copy */
static void run(const struct setup *su, const uint8_t *s, size_t len, int mode, struct trace *t)
{
    struct msnp_parser p;
    struct msnp_event ev;
    uint32_t rng = (uint32_t)len * 2654435761u + 1;
    check(msnp_parser_init(&p, su->dir, &su->lim) == SW_OK);
    for (size_t i = 0; i < su->nnotes; i++)
        msnp_parser_note_sent(&p, su->notes[i][0], pay_cmds[su->notes[i][1] % 16]);
    t->n = 0;
    t->rc = SW_AGAIN;
    t->err = NULL;
    t->err_pos = 0;
    size_t fed = 0;
    do {
        if (mode == 0) {
            fed = len;
        } else if (mode == 1) {
            fed = fed + 1 < len ? fed + 1 : len;
        } else {
            rng = rng * 1103515245u + 12345u;
            size_t step = (rng >> 16) % 97;
            fed = fed + step < len ? fed + step : len;
        }
        uint64_t keep = msnp_parser_keep(&p);
        check(keep <= fed);
        size_t blen = fed - (size_t)keep;
        uint8_t *copy = NULL;
        const uint8_t *b = s + keep;
        if (mode == 2) {
            copy = malloc(blen > 0 ? blen : 1);
            check(copy != NULL);
            memcpy(copy, s + keep, blen);
            b = copy;
        }
        int rc;
        while ((rc = msnp_parse(&p, b, blen, keep, &ev)) == SW_OK) {
            record(t, &ev, s, len, su->dir);
            check(msnp_parser_keep(&p) == ev.off + ev.size);
        }
        free(copy);
        t->rc = rc;
        if (rc == SW_ERROR) {
            check(p.err != NULL && p.err_pos <= len);
            t->err = p.err;
            t->err_pos = p.err_pos;
            break;
        }
        check(rc == SW_AGAIN);
    } while (fed < len);
    t->keep = msnp_parser_keep(&p);
}

static void same(const struct trace *a, const struct trace *b)
{
    check(a->n == b->n);
    check(memcmp(a->r, b->r, a->n * sizeof(a->r[0])) == 0);
    check(a->rc == b->rc);
    check(a->err == b->err && a->err_pos == b->err_pos);
    check(a->keep == b->keep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct setup su;
    size_t i = 0;
    if (size < 2)
        return 0;
    memset(&su, 0, sizeof(su));
    uint8_t flags = data[i++];
    su.dir = (flags & 1) ? MSNP_DIR_S2C : MSNP_DIR_C2S;
    msnp_limits_default(&su.lim);
    if ((flags & 2) && size - i >= 3) {
        su.lim.line_max = 16 + data[i++] % 64;
        su.lim.payload_max = data[i++] % 128;
        su.lim.sent_max = 1 + data[i++] % 4;
    }
    su.nnotes = (flags >> 2) % 16;
    if (size - i < 2 * su.nnotes)
        su.nnotes = (size - i) / 2;
    for (size_t k = 0; k < su.nnotes; k++) {
        su.notes[k][0] = data[i++];
        su.notes[k][1] = data[i++];
    }
    const uint8_t *s = data + i;
    size_t len = size - i;

    run(&su, s, len, 0, &t_whole);
    run(&su, s, len, 1, &t_other);
    same(&t_whole, &t_other);
    run(&su, s, len, 2, &t_other);
    same(&t_whole, &t_other);
    return 0;
}
