/* The msnp protocol: notification-server (role ns) and switchboard (role sb) connections.
 * One framing parser per direction over the session's pending bytes; every command is judged
 * in stream order. See docs/msnp.md ("The proxy") for the behaviour and its reasons. */
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "matcher/hash.h"
#include "matcher/matcher.h"
#include "protocols/msnp/msnp_chunks.h"
#include "protocols/msnp/msnp_mime.h"
#include "protocols/msnp/msnp_oim.h"
#include "protocols/msnp/msnp_parser.h"
#include "proxy/judge.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/msnp_session.h"
#include "proxy/session.h"

#define MS_EMAIL_MAX 256  /* passports kept (sender, switchboard participant) */
#define MS_COOKIE_MAX 512 /* bytes of a cookie kept as a key */
#define MS_MSG_MAX 1664   /* MSG payload limit of the official clients and servers */
#define MS_OUT_MAX 16384  /* rewritten lines and tagged messages */
#define MS_TEXT_MAX 65536 /* decoded text handed to the matcher */
#define MS_ROOM 1024      /* room a verdict needs: tag headers here, an ACK/NAK or error back */
#define MS_WAIT 3         /* handler result: not judged yet, an insertion would not fit */
/* room in ms_text for one decoded OIM field (name, subject): two of them and a space fit */
#define MS_OIM_HALF MSNP_OIM_DECODED_MAX(MSNP_OIM_FIELD_MAX_LIMIT)
_Static_assert(2 * MS_OIM_HALF + 1 <= MS_TEXT_MAX, "decoded OIM fields must fit in ms_text");

/* --- switchboard cookies: process-wide, since the client's switchboard connection may reach
 * another worker ------------------------------------------------------------------------ */

struct ck_entry {
    uint64_t key; /* hash of the cookie; 0 = free */
    uint64_t expires_ms;
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

static struct {
    pthread_mutex_t lock;
    struct ck_entry *e;
    unsigned cap; /* power of 2, fixed at the first use (msnp.cookie_max rounded up) */
} ck_table = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

#define CK_PROBES 8

static uint64_t ck_key(const uint8_t *c, size_t len)
{
    uint64_t k = sw_hash64(c, len, 0xc00c1e);
    return k != 0 ? k : 1;
}

/* Remembers cookie -> addr. Returns false when the table could not be allocated. */
static bool ck_put(const uint8_t *c, size_t len, const struct sockaddr_storage *addr,
                   socklen_t alen, uint64_t now, const struct config_msnp *cfg)
{
    uint64_t k = ck_key(c, len);
    bool ok = false;
    pthread_mutex_lock(&ck_table.lock);
    if (ck_table.e == NULL) {
        unsigned cap = 16;
        while (cap < cfg->cookie_max)
            cap *= 2;
        ck_table.e = calloc(cap, sizeof(*ck_table.e));
        ck_table.cap = ck_table.e != NULL ? cap : 0;
    }
    if (ck_table.e != NULL) {
        struct ck_entry *victim = NULL;
        for (unsigned i = 0; i < CK_PROBES; i++) {
            struct ck_entry *e = &ck_table.e[(k + i) & (ck_table.cap - 1)];
            if (e->key == k || e->key == 0 || e->expires_ms <= now) {
                victim = e;
                break;
            }
            if (victim == NULL || e->expires_ms < victim->expires_ms)
                victim = e; /* full window: the entry closest to expiry goes */
        }
        victim->key = k;
        victim->expires_ms = now + (uint64_t)(cfg->cookie_ttl * 1000.0);
        victim->addr = *addr;
        victim->addr_len = alen;
        ok = true;
    }
    pthread_mutex_unlock(&ck_table.lock);
    return ok;
}

/* Takes (and forgets: a cookie is good for one connection) the address of cookie. */
static bool ck_take(const uint8_t *c, size_t len, uint64_t now, struct sockaddr_storage *addr,
                    socklen_t *alen)
{
    uint64_t k = ck_key(c, len);
    bool found = false;
    pthread_mutex_lock(&ck_table.lock);
    for (unsigned i = 0; ck_table.e != NULL && i < CK_PROBES; i++) {
        struct ck_entry *e = &ck_table.e[(k + i) & (ck_table.cap - 1)];
        if (e->key == k) {
            found = e->expires_ms > now;
            if (found) {
                *addr = e->addr;
                *alen = e->addr_len;
            }
            e->key = 0;
            break;
        }
    }
    pthread_mutex_unlock(&ck_table.lock);
    return found;
}

/* --- per-session state ------------------------------------------------------------------- */

struct ms_dir {
    struct msnp_parser p;
    uint64_t judged; /* stream offset of the first pending byte */
    /* a command whose handler answered MS_WAIT: the parser has moved past it, so it is kept
     * here and handed to the handler again (its bytes stay the first pending ones) */
    struct msnp_event held;
    bool has_held;
};

struct ms {
    struct session *s;
    const struct config_listener *cfg;
    unsigned lidx;
    bool connecting; /* upstream requested */
    bool failed;     /* an error was sent: judge nothing more */
    uint32_t last_trid;
    char me[MS_EMAIL_MAX]; /* the authenticated passport (USR) */
    size_t me_len;
    char peer[MS_EMAIL_MAX]; /* switchboard: the first other participant */
    size_t peer_len;
    struct judge judge;
    struct sockaddr_storage sb_addr; /* msnp.switchboard, written into XFR/RNG */
    socklen_t sb_addr_len;
    struct msnp_chunks chunks[2]; /* per direction; arenas below */
    uint8_t *chunk_mem[2];
    struct ms_dir d[2];
    struct ms_dns *dns; /* the switchboard host being looked up, or NULL */
};

/* An asynchronous lookup of a switchboard host name (glibc getaddrinfo_a, polled by a timer
 * on the worker's loop): a name in XFR/RNG never blocks the worker. The session holds its
 * server-to-client direction meanwhile (on_data answers MS_WAIT) and is judged again when the
 * lookup ends or times out.
 *
 *   idle --XFR/RNG with a name--> pending --done / msnp.resolve_timeout--> consumed, freed
 *                                    |
 *                                 session closed: cancelled, or orphaned until glibc is done
 */
struct ms_dns {
    struct gaicb req; /* ar_name = host, ar_service = port, ar_request = &hints */
    struct addrinfo hints;
    char host[256];
    char port[8];
    ev_timer poll;
    double deadline; /* ev_now() past which the lookup counts as failed */
    bool timed_out;
    struct ms *x;
    struct ms_dns *next; /* on the orphan list */
};

/* Lookups of closed sessions that glibc could not cancel: freed once they finish. */
static _Thread_local struct ms_dns *ms_dns_orphans;

static _Thread_local uint8_t ms_out[MS_OUT_MAX];
static _Thread_local char ms_text[MS_TEXT_MAX];
/* the MIME view of the MSG being judged: too big for the stack, and one per worker is enough
 * (on_msg never runs twice at once on a thread) */
static _Thread_local struct msnp_mime ms_mime;
/* the OIM entries of the Mail-Data being judged (on_oim, called from on_msg) */
static _Thread_local struct msnp_oim ms_oim;

/* verdict and scan_failed lines of this protocol (one rate limit each, mod=msnp) */
static struct judge_sites ms_judge_sites = JUDGE_SITES_INIT(LOG_MOD_MSNP);

/* Queues "CMD trid\r\n" (an ACK, NAK or numeric error) in direction dir. */
static int insert_line(struct ms *x, enum session_dir dir, const char *cmd, uint32_t trid)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "%s %u\r\n", cmd, (unsigned)trid);
    return session_insert(x->s, dir, (const uint8_t *)line, (size_t)n);
}

/* An error in MSNP's terms toward the client, then the end of the session. */
static void ms_fail(struct ms *x, const char *reply, const char *why, enum session_dir dir,
                    bool bad_input)
{
    if (x->failed)
        return;
    x->failed = true;
    if (reply != NULL)
        (void)session_insert(x->s, SESSION_S2C, (const uint8_t *)reply, strlen(reply));
    if (bad_input)
        metrics_inc(session_metrics(x->s), METRIC_PROTOCOL_ERRORS, x->lidx, 0);
    LOG(LOG_MOD_MSNP, LOG_LEVEL_INFO, session_worker_id(x->s), session_id(x->s), "msnp_error",
        "listener=%s direction=%s reason=%s", x->cfg->name, session_dir_name(dir), why);
    session_end(x->s);
}

static void copy_str(char *dst, size_t cap, size_t *dlen, const uint8_t *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    *dlen = len;
}

/* URL-decodes src[0..len) (friendly names travel URL-encoded) into out; returns the length. */
static size_t url_decode(const uint8_t *src, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o < cap; i++) {
        unsigned v;
        if (src[i] == '%' && i + 2 < len && sscanf((const char *)src + i + 1, "%2x", &v) == 1) {
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = (char)src[i];
        }
    }
    return o;
}

/* --- classification ---------------------------------------------------------------------- */

/* Judges text from sender to the other party of the session (the peer outbound, the user
 * inbound); what names the kind of text in the verdict line. Returns the listener's action. */
static enum verdict_action judge_text(struct ms *x, enum session_dir dir, const char *sender,
                                      size_t sender_len, const char *text, size_t text_len,
                                      const char *what, struct judge_result *r)
{
    struct matcher_msg m = {0};
    m.sender = sender;
    m.sender_len = sender_len;
    m.recipient = dir == SESSION_C2S ? x->peer : x->me;
    m.recipient_len = dir == SESSION_C2S ? x->peer_len : x->me_len;
    m.body = text;
    m.body_len = text_len;
    return judge_message(&x->judge, dir, &m, what, r);
}

/* Writes the command line of the MSG event ev with its byte count set to nplen, terminator
 * included, to out[0..cap). Returns its length, or 0 if it does not fit. */
static size_t msg_line(const struct msnp_event *ev, size_t nplen, uint8_t *out, size_t cap)
{
    char num[24];
    int nn = snprintf(num, sizeof(num), "%zu", nplen);
    size_t total = ev->line_len - ev->len_tok.len + (size_t)nn + ev->eol_len;
    if (total > cap)
        return 0;
    size_t o = 0;
    memcpy(out + o, ev->data, ev->len_tok.pos);
    o += ev->len_tok.pos;
    memcpy(out + o, num, (size_t)nn);
    o += (size_t)nn;
    size_t after = ev->len_tok.pos + ev->len_tok.len;
    memcpy(out + o, ev->data + after, ev->line_len + ev->eol_len - after);
    o += ev->line_len + ev->eol_len - after;
    return o;
}

/* Builds the tagged form of a MSG event: X-Spam-* headers before the blank line ending the
 * MIME headers, the command line's byte count fixed. Returns its length, or 0 if it cannot be
 * built (no header block) and SIZE_MAX if the payload would pass MS_MSG_MAX. */
size_t msnp_session_tag(const struct msnp_event *ev, size_t body_pos, double score,
                        const char *reasons, uint8_t *out, size_t cap)
{
    const uint8_t *pay = ev->data + ev->payload.pos;
    size_t plen = ev->payload.len;
    if (body_pos < 1 || body_pos > plen || !ev->has_payload)
        return 0;
    /* the blank line: "\r\n" or "\n" right before the body */
    size_t at = body_pos >= 2 && pay[body_pos - 2] == '\r' ? body_pos - 2 : body_pos - 1;
    if (pay[at] != '\r' && pay[at] != '\n')
        return 0;
    char hdr[600];
    int hn = snprintf(hdr, sizeof(hdr),
                      "X-Spam-Flag: YES\r\nX-Spam-Score: %.1f\r\nX-Spam-Reasons: %.480s\r\n", score,
                      reasons != NULL && reasons[0] != '\0' ? reasons : "-");
    if (hn < 0 || (size_t)hn >= sizeof(hdr))
        return 0;
    size_t nplen = plen + (size_t)hn;
    if (nplen > MS_MSG_MAX)
        return SIZE_MAX;
    size_t o = msg_line(ev, nplen, out, cap);
    if (o == 0 || nplen > cap - o)
        return 0;
    memcpy(out + o, pay, at);
    o += at;
    memcpy(out + o, hdr, (size_t)hn);
    o += (size_t)hn;
    memcpy(out + o, pay + at, plen - at);
    o += plen - at;
    return o;
}

size_t msnp_session_rewrite_addr(const struct msnp_event *ev, const struct msnp_hostport *hp,
                                 const char *sb, uint8_t *out, size_t cap)
{
    size_t sbl = strlen(sb);
    if (hp->addr.pos > ev->line_len || hp->addr.len > ev->line_len - hp->addr.pos)
        return 0;
    size_t total = ev->size - hp->addr.len + sbl;
    if (total > cap)
        return 0;
    memcpy(out, ev->data, hp->addr.pos);
    memcpy(out + hp->addr.pos, sb, sbl);
    memcpy(out + hp->addr.pos + sbl, ev->data + hp->addr.pos + hp->addr.len,
           ev->size - hp->addr.pos - hp->addr.len);
    return total;
}

/* An OIM metadata notification: at sign-in, or a new OIM while signed in. */
static bool is_oim_type(const struct msnp_mime *m)
{
    static const char *const types[] = {"text/x-msmsgsinitialmdatanotification",
                                        "text/x-msmsgsoimnotification"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (m->media_type_len == strlen(types[i]) &&
            strncasecmp((const char *)m->media_type, types[i], m->media_type_len) == 0)
            return true;
    }
    return false;
}

/* The notification server's offline-message metadata (docs/msnp.md, "Offline messages"): each
 * <M> entry of the Mail-Data header is judged as inbound text "name subject" from its sender;
 * a dropped entry is cut out of the XML, so the client never lists or fetches that OIM. The
 * bodies themselves travel over SOAP, out of this connection's reach. Metadata has nowhere to
 * show a tag, so a tag passes. Anything that does not parse passes untouched and is counted. */
static int on_oim(struct ms *x, const struct msnp_event *ev, const struct msnp_mime *m)
{
    struct session *s = x->s;
    const struct msnp_mime_header *h = msnp_mime_header(m, "Mail-Data");
    if (h == NULL)
        return session_forward(s, SESSION_S2C, ev->size);
    struct msnp_oim *o = &ms_oim;
    const struct msnp_oim_limits lim = {.entries_max = x->cfg->msnp.oim_entries_max,
                                        .field_max = x->cfg->msnp.oim_field_max};
    if (msnp_oim_parse(h->value, h->value_len, &lim, o) != SW_OK) {
        metrics_inc(session_metrics(s), METRIC_PROTOCOL_ERRORS, x->lidx, 0);
        LOG(LOG_MOD_MSNP, LOG_LEVEL_INFO, session_worker_id(s), session_id(s), "oim_unparsed",
            "listener=%s reason=\"%s\" offset=%zu", x->cfg->name, o->err, o->err_pos);
        return session_forward(s, SESSION_S2C, ev->size);
    }
    bool drop[MSNP_OIM_ENTRIES_CAP] = {false};
    size_t cut = 0;
    for (size_t i = 0; i < o->nentries; i++) {
        const struct msnp_oim_entry *e = &o->entries[i];
        size_t n = 0, k = 0;
        /* the parser bounds each field, so both fit: the return value cannot be SW_ERROR */
        (void)msnp_oim_decode(h->value + e->n.pos, e->n.len, ms_text, MS_OIM_HALF, &n);
        ms_text[n++] = ' ';
        (void)msnp_oim_decode(h->value + e->su.pos, e->su.len, ms_text + n, MS_OIM_HALF, &k);
        struct judge_result r;
        if (judge_text(x, SESSION_S2C, (const char *)h->value + e->e.pos, e->e.len, ms_text, n + k,
                       "oim", &r) == VERDICT_DROP) {
            drop[i] = true;
            cut += e->m.len;
        }
    }
    if (cut == 0)
        return session_forward(s, SESSION_S2C, ev->size);
    /* the line with its byte count fixed, then the payload as slices without the cut entries */
    size_t ln = msg_line(ev, ev->payload.len - cut, ms_out, sizeof(ms_out));
    if (ln == 0 || session_drop(s, SESSION_S2C, ev->line_len + ev->eol_len) != SW_OK ||
        session_insert(s, SESSION_S2C, ms_out, ln) != SW_OK)
        return SW_ERROR;
    size_t done = 0, base = (size_t)(h->value - (ev->data + ev->payload.pos));
    for (size_t i = 0; i < o->nentries; i++) {
        if (!drop[i])
            continue;
        size_t from = base + o->entries[i].m.pos;
        if (session_forward(s, SESSION_S2C, from - done) != SW_OK ||
            session_drop(s, SESSION_S2C, o->entries[i].m.len) != SW_OK)
            return SW_ERROR;
        done = from + o->entries[i].m.len;
    }
    return session_forward(s, SESSION_S2C, ev->payload.len - done);
}

/* Judges one MSG. */
static int on_msg(struct ms *x, enum session_dir dir, const struct msnp_event *ev)
{
    struct session *s = x->s;
    struct msnp_msg_line ml;
    if (msnp_parse_msg_line(ev, dir == SESSION_C2S ? MSNP_DIR_C2S : MSNP_DIR_S2C, &ml) != SW_OK) {
        ms_fail(x, dir == SESSION_C2S ? "OUT\r\n" : "OUT\r\n", "malformed MSG line", dir, true);
        return SW_OK;
    }
    if (session_room(s, dir) < MS_ROOM || session_room(s, SESSION_S2C) < MS_ROOM)
        return MS_WAIT;
    struct msnp_mime *m = &ms_mime;
    const uint8_t *pay = ev->data + ev->payload.pos;
    struct msnp_mime_limits lim;
    msnp_mime_limits_default(&lim);
    bool ns_notice = dir == SESSION_S2C && x->cfg->msnp.role == CONFIG_MSNP_NS;
    if (ns_notice && lim.header_len_max < ev->payload.len)
        lim.header_len_max = ev->payload.len; /* Mail-Data: the OIM list on one header line */
    if (msnp_mime_parse(pay, ev->payload.len, &lim, m) != SW_OK) {
        /* not MIME: binary or broken; nothing to read, pass it on */
        return session_forward(s, dir, ev->size);
    }
    if (ns_notice && m->kind == MSNP_MIME_PROFILE && is_oim_type(m))
        return on_oim(x, ev, m);
    const char *sender = dir == SESSION_C2S ? x->me : (const char *)ev->data + ml.email.pos;
    size_t sender_len = dir == SESSION_C2S ? x->me_len : ml.email.len;
    const char *text = NULL;
    size_t text_len = 0;
    const char *what = "im";
    bool chunked = m->has_chunks || m->has_chunk;
    if (chunked && m->kind != MSNP_MIME_P2P) {
        /* judged once whole: the last chunk carries the verdict (a client never shows a
         * message whose chunks are incomplete) */
        size_t got = 0;
        int rc =
            msnp_chunks_add(&x->chunks[dir], session_now_ms(s), (const uint8_t *)sender, sender_len,
                            pay, ev->payload.len, m, (uint8_t *)ms_text, sizeof(ms_text), &got);
        if (rc != SW_OK)
            return session_forward(s, dir, ev->size);
        text = ms_text;
        text_len = got;
        what = "chunked_im";
    } else if (m->kind == MSNP_MIME_TEXT) {
        text = (const char *)m->body;
        text_len = m->body_len;
    } else if ((m->kind == MSNP_MIME_INVITE || m->kind == MSNP_MIME_P2P) && m->file_name != NULL) {
        /* a file offer: its name is the content ("pics.zip", "photo.scr") */
        text_len = (size_t)snprintf(ms_text, sizeof(ms_text), "file %.*s", (int)m->file_name_len,
                                    (const char *)m->file_name);
        text = ms_text;
        what = "file";
    }
    if (text == NULL) /* typing, caps, emoticons, P2P data: not scanned */
        return session_forward(s, dir, ev->size);
    struct judge_result r;
    enum verdict_action act = judge_text(x, dir, sender, sender_len, text, text_len, what, &r);
    size_t body_pos = m->body_pos;
    if (act == VERDICT_TAG && !chunked && strcmp(what, "im") == 0) {
        size_t tn = msnp_session_tag(ev, body_pos, r.v.score, r.reasons, ms_out, sizeof(ms_out));
        if (tn == SIZE_MAX)
            act = x->cfg->msnp.tag_overflow_drop ? VERDICT_DROP : VERDICT_PASS;
        else if (tn > 0)
            return session_drop(s, dir, ev->size) == SW_OK &&
                           session_insert(s, dir, ms_out, tn) == SW_OK
                       ? SW_OK
                       : SW_ERROR;
        else
            act = VERDICT_PASS;
    }
    if (act != VERDICT_DROP)
        return session_forward(s, dir, ev->size);
    uint32_t trid = ev->trid;
    bool has_trid = ev->has_trid;
    if (session_drop(s, dir, ev->size) != SW_OK)
        return SW_ERROR;
    /* the sender of an acknowledged message waits for an answer, or reports a failure */
    if (dir == SESSION_C2S && has_trid && (ml.ack == 'A' || ml.ack == 'D' || ml.ack == 'S'))
        return insert_line(x, SESSION_S2C, x->cfg->msnp.drop_ack == CONFIG_MSNP_ACK ? "ACK" : "NAK",
                           trid);
    return SW_OK;
}

/* Friendly names and personal messages: dropped (never tagged: there is nowhere to put a tag). */
static int on_profile_text(struct ms *x, enum session_dir dir, const struct msnp_event *ev,
                           const char *what, const uint8_t *raw, size_t raw_len, bool url_encoded)
{
    if (session_room(x->s, SESSION_S2C) < MS_ROOM)
        return MS_WAIT;
    char buf[2048];
    size_t n = url_encoded ? url_decode(raw, raw_len, buf, sizeof(buf))
                           : (raw_len < sizeof(buf) ? raw_len : sizeof(buf));
    if (!url_encoded)
        memcpy(buf, raw, n);
    struct judge_result r;
    const char *sender = dir == SESSION_C2S ? x->me : "";
    size_t sender_len = dir == SESSION_C2S ? x->me_len : 0;
    enum verdict_action act = judge_text(x, dir, sender, sender_len, buf, n, what, &r);
    if (act != VERDICT_DROP)
        return session_forward(x->s, dir, ev->size);
    if (session_drop(x->s, dir, ev->size) != SW_OK)
        return SW_ERROR;
    /* a refused name change from the client gets "209 trid" (nickname change illegal) */
    if (dir == SESSION_C2S && ev->has_trid)
        return insert_line(x, SESSION_S2C, "209", ev->trid);
    return SW_OK;
}

/* The n-th (0-based) space-separated token of the line's arguments. */
static bool arg_token(const struct msnp_event *ev, unsigned n, const uint8_t **tok, size_t *len)
{
    const uint8_t *p = ev->data + ev->args.pos, *end = p + ev->args.len;
    for (unsigned i = 0;; i++) {
        while (p < end && *p == ' ')
            p++;
        const uint8_t *t = p;
        while (p < end && *p != ' ')
            p++;
        if (t == p)
            return false;
        if (i == n) {
            *tok = t;
            *len = (size_t)(p - t);
            return true;
        }
    }
}

/* The personal message inside a UBX/UUX payload: the text of <PSM>...</PSM>. */
static bool psm_text(const uint8_t *pay, size_t len, const uint8_t **t, size_t *tl)
{
    const uint8_t *a = memmem(pay, len, "<PSM>", 5);
    if (a == NULL)
        return false;
    a += 5;
    const uint8_t *b = memmem(a, len - (size_t)(a - pay), "</PSM>", 6);
    if (b == NULL)
        return false;
    *t = a;
    *tl = (size_t)(b - a);
    return *tl > 0;
}

/* A switchboard address spimwall cannot stand in for (a host it cannot resolve or hold, a
 * cookie it cannot keep): the real address is never passed on, since the client would then
 * reach that switchboard unfiltered. An XFR answer becomes "601 trid" (server unavailable: the
 * client may ask again); an RNG invitation is dropped (the caller sees the callee not join). */
static int refuse_sb(struct ms *x, const struct msnp_event *ev, const char *why, const char *host)
{
    struct session *s = x->s;
    metrics_inc(session_metrics(s), METRIC_PROTOCOL_ERRORS, x->lidx, 0);
    LOG(LOG_MOD_MSNP, LOG_LEVEL_WARN, session_worker_id(s), session_id(s), "sb_refused",
        "listener=%s command=%s reason=\"%s\" host=%.64s", x->cfg->name, ev->cmd, why, host);
    if (session_drop(s, SESSION_S2C, ev->size) != SW_OK)
        return SW_ERROR;
    if (strcmp(ev->cmd, "XFR") == 0 && ev->has_trid)
        return insert_line(x, SESSION_S2C, "601", ev->trid);
    return SW_OK;
}

#define MS_DNS_POLL 0.002 /* seconds between status checks of a pending lookup */

/* Copies the first address of a lookup's result into ss/sl; false if there is none or it does
 * not fit. */
static bool take_addr(const struct addrinfo *res, struct sockaddr_storage *ss, socklen_t *sl)
{
    if (res == NULL || res->ai_addrlen > sizeof(*ss))
        return false;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sl = res->ai_addrlen;
    return true;
}

static void dns_free(struct ms_dns *d)
{
    if (d->req.ar_result != NULL)
        freeaddrinfo(d->req.ar_result);
    free(d);
}

/* Frees the orphans whose lookups have ended. */
static void dns_reap(void)
{
    struct ms_dns **pp = &ms_dns_orphans;
    while (*pp != NULL) {
        struct ms_dns *d = *pp;
        if (gai_error(&d->req) == EAI_INPROGRESS) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        dns_free(d);
    }
}

/* Ends x's lookup: stops its timer and frees it, or leaves it to the orphan list while glibc
 * still works on it. */
static void dns_drop(struct ms *x)
{
    struct ms_dns *d = x->dns;
    if (d == NULL)
        return;
    x->dns = NULL;
    ev_timer_stop(session_loop(x->s), &d->poll);
    if (gai_error(&d->req) == EAI_INPROGRESS && gai_cancel(&d->req) != EAI_CANCELED) {
        dns_reap(); /* the list holds only lookups still running at the last close */
        d->x = NULL;
        d->next = ms_dns_orphans;
        ms_dns_orphans = d;
        return;
    }
    dns_free(d);
}

static void dns_poll_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct ms_dns *d = t->data;
    (void)revents;
    bool busy = gai_error(&d->req) == EAI_INPROGRESS;
    if (busy && ev_now(loop) < d->deadline)
        return;
    d->timed_out = busy;
    ev_timer_stop(loop, t);
    session_retry(d->x->s); /* judges the held XFR/RNG again; may close the session */
}

/* The address of switchboard host:port (a name) for x, looked up without blocking: SW_OK with
 * ss and sl, SW_AGAIN while the lookup runs (started on the first call), SW_ERROR if the name
 * does not resolve, the lookup timed out or could not start. */
static int dns_lookup(struct ms *x, const char *host, const char *port, struct sockaddr_storage *ss,
                      socklen_t *sl)
{
    struct ms_dns *d = x->dns;
    if (d != NULL && (strcmp(d->host, host) != 0 || strcmp(d->port, port) != 0))
        dns_drop(x); /* another name: start over (the held event cannot change, but be safe) */
    d = x->dns;
    if (d == NULL) {
        dns_reap();
        d = calloc(1, sizeof(*d));
        if (d == NULL)
            return SW_ERROR;
        snprintf(d->host, sizeof(d->host), "%s", host);
        snprintf(d->port, sizeof(d->port), "%s", port);
        d->hints.ai_socktype = SOCK_STREAM;
        d->hints.ai_flags = AI_NUMERICSERV;
        d->req.ar_name = d->host;
        d->req.ar_service = d->port;
        d->req.ar_request = &d->hints;
        d->x = x;
        struct gaicb *list[1] = {&d->req};
        if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
            free(d);
            return SW_ERROR;
        }
        struct ev_loop *loop = session_loop(x->s);
        d->deadline = ev_now(loop) + x->cfg->msnp.resolve_timeout;
        ev_timer_init(&d->poll, dns_poll_cb, MS_DNS_POLL, MS_DNS_POLL);
        d->poll.data = d;
        ev_timer_start(loop, &d->poll);
        x->dns = d;
        return SW_AGAIN;
    }
    int e = gai_error(&d->req);
    if (e == EAI_INPROGRESS && !d->timed_out)
        return SW_AGAIN;
    int rc = e == 0 && take_addr(d->req.ar_result, ss, sl) ? SW_OK : SW_ERROR;
    dns_drop(x);
    return rc;
}

/* XFR SB / RNG: the switchboard address becomes ours; the real one is kept under the cookie. */
static int rewrite_sb(struct ms *x, const struct msnp_event *ev, const struct msnp_hostport *hp,
                      const struct msnp_span *cookie)
{
    struct session *s = x->s;
    char host[256];
    if (session_room(s, SESSION_S2C) < MS_ROOM)
        return MS_WAIT;
    if (hp->host.len >= sizeof(host))
        return refuse_sb(x, ev, "host name too long", "");
    if (cookie->len == 0 || cookie->len > MS_COOKIE_MAX)
        return refuse_sb(x, ev, "cookie empty or too long", "");
    memcpy(host, ev->data + hp->host.pos, hp->host.len);
    host[hp->host.len] = '\0';
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)hp->port);
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV; /* an address: no lookup, no wait */
    if (getaddrinfo(host, port, &hints, &res) == 0)
        (void)take_addr(res, &ss, &sl);
    if (res != NULL)
        freeaddrinfo(res);
    if (sl == 0) {
        int rc = dns_lookup(x, host, port, &ss, &sl); /* a name */
        if (rc == SW_AGAIN)
            return MS_WAIT;
        if (rc != SW_OK)
            return refuse_sb(x, ev, "switchboard host not resolved", host);
    }
    if (!ck_put(ev->data + cookie->pos, cookie->len, &ss, sl, session_now_ms(s), &x->cfg->msnp))
        return SW_ERROR;
    size_t total =
        msnp_session_rewrite_addr(ev, hp, x->cfg->msnp.switchboard, ms_out, sizeof(ms_out));
    if (total == 0)
        return SW_ERROR;
    if (session_drop(s, SESSION_S2C, ev->size) != SW_OK)
        return SW_ERROR;
    return session_insert(s, SESSION_S2C, ms_out, total);
}

static int on_c2s(struct ms *x, const struct msnp_event *ev)
{
    struct session *s = x->s;
    const struct config_msnp *mc = &x->cfg->msnp;
    if (ev->has_trid)
        x->last_trid = ev->trid;
    if (!x->connecting) {
        if (mc->role == CONFIG_MSNP_SB && !mc->transparent) {
            /* the first line names the switchboard by cookie */
            struct msnp_sb_login lg;
            struct sockaddr_storage ss;
            socklen_t sl = 0;
            if (msnp_parse_sb_login(ev, &lg) != SW_OK) {
                ms_fail(x, "911 0\r\n", "first switchboard line is not USR/ANS", SESSION_C2S, true);
                return SW_OK;
            }
            if (!ck_take(ev->data + lg.cookie.pos, lg.cookie.len, session_now_ms(s), &ss, &sl)) {
                char reply[32];
                snprintf(reply, sizeof(reply), "911 %u\r\n", (unsigned)lg.trid);
                ms_fail(x, reply, "unknown or expired switchboard cookie", SESSION_C2S, true);
                return SW_OK;
            }
            copy_str(x->me, sizeof(x->me), &x->me_len, ev->data + lg.email.pos, lg.email.len);
            x->connecting = true;
            if (session_forward(s, SESSION_C2S, ev->size) != SW_OK)
                return SW_ERROR;
            return session_connect_upstream(s, (const struct sockaddr *)&ss, sl);
        }
        x->connecting = true;
        if (session_forward(s, SESSION_C2S, ev->size) != SW_OK)
            return SW_ERROR;
        return session_connect_upstream(s, NULL, 0);
    }
    /* numeric errors from the server answering a payload command carry a payload */
    if (ev->has_trid && msnp_is_payload_cmd(ev->cmd, MSNP_DIR_C2S))
        (void)msnp_parser_note_sent(&x->d[SESSION_S2C].p, ev->trid, ev->cmd);
    const uint8_t *t;
    size_t tl;
    if (strcmp(ev->cmd, "USR") == 0 && arg_token(ev, 1, &t, &tl) && tl == 1 && t[0] == 'I' &&
        arg_token(ev, 2, &t, &tl)) {
        copy_str(x->me, sizeof(x->me), &x->me_len, t, tl); /* USR trid TWN|MD5|SSO I email */
    } else if (strcmp(ev->cmd, "CAL") == 0 && x->peer_len == 0 && arg_token(ev, 0, &t, &tl)) {
        copy_str(x->peer, sizeof(x->peer), &x->peer_len, t, tl);
    } else if (strcmp(ev->cmd, "MSG") == 0) {
        return on_msg(x, SESSION_C2S, ev);
    } else if (strcmp(ev->cmd, "PRP") == 0 && arg_token(ev, 0, &t, &tl) && tl == 3 &&
               memcmp(t, "MFN", 3) == 0 && arg_token(ev, 1, &t, &tl)) {
        return on_profile_text(x, SESSION_C2S, ev, "nick", t, tl, true);
    } else if (strcmp(ev->cmd, "UUX") == 0 && ev->has_payload &&
               psm_text(ev->data + ev->payload.pos, ev->payload.len, &t, &tl)) {
        return on_profile_text(x, SESSION_C2S, ev, "psm", t, tl, false);
    }
    return session_forward(s, SESSION_C2S, ev->size);
}

static int on_s2c(struct ms *x, const struct msnp_event *ev)
{
    struct session *s = x->s;
    const struct config_msnp *mc = &x->cfg->msnp;
    const uint8_t *t;
    size_t tl;
    if (strcmp(ev->cmd, "XFR") == 0 && !mc->transparent && mc->role == CONFIG_MSNP_NS) {
        struct msnp_xfr xf;
        if (msnp_parse_xfr(ev, &xf) == SW_OK && xf.sb)
            return rewrite_sb(x, ev, &xf.hp, &xf.cookie);
    } else if (strcmp(ev->cmd, "RNG") == 0 && !mc->transparent && mc->role == CONFIG_MSNP_NS) {
        struct msnp_rng rg;
        if (msnp_parse_rng(ev, &rg) == SW_OK)
            return rewrite_sb(x, ev, &rg.hp, &rg.cookie);
    } else if (strcmp(ev->cmd, "MSG") == 0) {
        return on_msg(x, SESSION_S2C, ev);
    } else if ((strcmp(ev->cmd, "JOI") == 0 && arg_token(ev, 0, &t, &tl)) ||
               (strcmp(ev->cmd, "IRO") == 0 && arg_token(ev, 2, &t, &tl))) {
        if (x->peer_len == 0)
            copy_str(x->peer, sizeof(x->peer), &x->peer_len, t, tl);
    } else if (strcmp(ev->cmd, "UBX") == 0 && ev->has_payload &&
               psm_text(ev->data + ev->payload.pos, ev->payload.len, &t, &tl)) {
        return on_profile_text(x, SESSION_S2C, ev, "psm", t, tl, false);
    } else if ((strcmp(ev->cmd, "NLN") == 0 || strcmp(ev->cmd, "ILN") == 0) &&
               arg_token(ev, strcmp(ev->cmd, "ILN") == 0 ? 3 : 2, &t, &tl)) {
        return on_profile_text(x, SESSION_S2C, ev, "nick", t, tl, true);
    }
    return session_forward(s, SESSION_S2C, ev->size);
}

/* --- proto_ops --------------------------------------------------------------------------- */

static int ms_open(struct session *s, void **state)
{
    const struct config_listener *cfg = session_listener(s);
    struct ms *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return SW_ERROR;
    x->s = s;
    x->cfg = cfg;
    x->lidx = session_listener_index(s);
    struct msnp_limits lim;
    msnp_limits_default(&lim);
    lim.line_max = cfg->msnp.line_max;
    lim.payload_max = cfg->msnp.payload_max;
    struct msnp_chunks_limits cl;
    msnp_chunks_limits_default(&cl);
    cl.pending_max =
        cfg->msnp.chunks_max < MSNP_CHUNKS_SLOTS_CAP ? cfg->msnp.chunks_max : MSNP_CHUNKS_SLOTS_CAP;
    for (int i = 0; i < 2; i++) {
        if (msnp_parser_init(&x->d[i].p, i == 0 ? MSNP_DIR_C2S : MSNP_DIR_S2C, &lim) != SW_OK)
            goto fail;
        x->chunk_mem[i] = malloc(cl.bytes_max);
        if (x->chunk_mem[i] == NULL ||
            msnp_chunks_init(&x->chunks[i], &cl, x->chunk_mem[i]) != SW_OK)
            goto fail;
    }
    judge_init(&x->judge, s, &ms_judge_sites);
    /* the upstream is connected on the first complete line: its trid answers a failure, and a
     * switchboard's address comes from the cookie in it */
    session_defer_upstream(s);
    *state = x;
    return SW_OK;
fail:
    free(x->chunk_mem[0]);
    free(x->chunk_mem[1]);
    free(x);
    return SW_ERROR;
}

static int ms_on_data(struct session *s, void *state, enum session_dir dir, const uint8_t *data,
                      size_t len)
{
    struct ms *x = state;
    struct ms_dir *d = &x->d[dir];
    if (x->failed)
        return session_drop(s, dir, len);
    for (;;) {
        struct msnp_event ev;
        int rc = SW_OK;
        if (d->has_held) {
            ev = d->held;
            ev.data = data; /* the buffer may have moved; the command is still at its front */
            if (len < ev.size)
                return SW_ERROR; /* cannot happen: nothing of it was consumed */
        } else {
            rc = msnp_parse(&d->p, data, len, d->judged, &ev);
        }
        if (rc == SW_AGAIN)
            return SW_OK;
        if (rc == SW_ERROR) {
            char why[160];
            snprintf(why, sizeof(why), "%s at offset %llu", d->p.err != NULL ? d->p.err : "?",
                     (unsigned long long)d->p.err_pos);
            if (dir == SESSION_C2S) {
                /* 200: syntax error; the rest of the connection cannot be framed */
                char reply[32];
                snprintf(reply, sizeof(reply), "200 %u\r\n", (unsigned)x->last_trid);
                ms_fail(x, reply, why, dir, true);
            } else {
                ms_fail(x, "OUT\r\n", why, dir, true);
            }
            return SW_OK;
        }
        size_t size = ev.size;
        rc = dir == SESSION_C2S ? on_c2s(x, &ev) : on_s2c(x, &ev);
        if (rc == MS_WAIT) {
            /* the session calls again once bytes were written (or session_retry) */
            d->held = ev;
            d->has_held = true;
            return SW_AGAIN;
        }
        d->has_held = false;
        if (rc != SW_OK)
            return SW_ERROR;
        d->judged += size;
        if (x->failed)
            return SW_OK;
        data = session_pending(s, dir, &len);
    }
}

static void ms_on_eof(struct session *s, void *state, enum session_dir dir)
{
    struct ms *x = state;
    if (dir == SESSION_S2C && !x->failed) {
        /* the server went away: tell the client as a server shutting down would */
        ms_fail(x, "OUT\r\n", "upstream closed", dir, false);
    }
    (void)s;
}

static int ms_upstream_failed(struct session *s, void *state)
{
    struct ms *x = state;
    char reply[32];
    snprintf(reply, sizeof(reply), "601 %u\r\n", (unsigned)x->last_trid); /* server unavailable */
    ms_fail(x, reply, "upstream unreachable", SESSION_S2C, false);
    (void)s;
    return SW_OK;
}

static void ms_close(void *state)
{
    struct ms *x = state;
    if (x == NULL)
        return;
    dns_drop(x);
    free(x->chunk_mem[0]);
    free(x->chunk_mem[1]);
    free(x);
}

const struct proto_ops msnp_proto = {
    .name = "msnp",
    .open = ms_open,
    .on_data = ms_on_data,
    .close = ms_close,
    .on_eof = ms_on_eof,
    .upstream_failed = ms_upstream_failed,
};
