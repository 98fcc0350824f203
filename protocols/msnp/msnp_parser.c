/* MSNP framing parser and line helpers. See msnp_parser.h for the contract and docs/msnp.md
 * for the rules and the decisions behind the command table.
 *
 * The parser is byte-wise (nginx mail-proxy style): it saves its state and the stream offsets
 * of the tokens it has seen, never pointers, so the caller may move its buffer between calls.
 * Only three things are remembered of the argument tokens: the first (the trid candidate), the
 * start of the second (where args begin after a trid) and the last (the byte count). */
#include "protocols/msnp/msnp_parser.h"

#include <string.h>

/* Command table flags: trid carried / payload follows, per sending direction. */
#define F_TRID_C 0x01u /* client-sent form carries a trid */
#define F_TRID_S 0x02u /* server-sent form carries a trid */
#define F_PAY_C 0x04u  /* client-sent form is a payload command */
#define F_PAY_S 0x08u  /* server-sent form is a payload command */
#define F_T (F_TRID_C | F_TRID_S)
#define F_P (F_PAY_C | F_PAY_S)

struct cmd_info {
    char name[4];
    unsigned flags;
};

/* Sorted by name (binary search). Commands not listed pass through as lines with no trid and
 * no payload. Decisions (docs/msnp.md): GCF is a payload command only server to client (the
 * MSNP11 client request `GCF trid file` has none); QRY only client to server; UUM (MSNP14
 * message to a Yahoo! contact) is added to the DESIGN.md list because it has a payload too.
 * Server-sent MSG, RNG, JOI, BYE, NLN, FLN, UBX, UBN, UBM, NOT, IPG, NFY, QNG, LST, LSG, BPR and
 * OUT carry no trid, whatever their second token looks like (RNG's session id, QNG's seconds
 * are digits). */
static const struct cmd_info cmd_table[] = {
    {"ACK", F_TRID_S},
    {"ADC", F_T},
    {"ADD", F_T},
    {"ADG", F_T},
    {"ADL", F_T | F_P},
    {"ANS", F_T},
    {"BLP", F_T},
    {"BPR", 0},
    {"BYE", 0},
    {"CAL", F_T},
    {"CHG", F_T},
    {"CHL", F_TRID_S},
    {"CVR", F_T},
    {"DEL", F_T | F_P},
    {"FLN", 0},
    {"FND", F_T},
    {"FQY", F_T | F_P},
    {"GCF", F_T | F_PAY_S},
    {"GTC", F_T},
    {"ILN", F_TRID_S},
    {"IMS", F_T},
    {"IPG", F_P},
    {"IRO", F_TRID_S},
    {"JOI", 0},
    {"LSG", 0},
    {"LST", 0},
    {"MSG", F_TRID_C | F_P},
    {"NAK", F_TRID_S},
    {"NFY", F_P},
    {"NLN", 0},
    {"NOT", F_P},
    {"OUT", 0},
    {"PAG", F_T | F_P},
    {"PNG", 0},
    {"PRP", F_T},
    {"PUT", F_T | F_P},
    {"QNG", 0},
    {"QRY", F_T | F_PAY_C},
    {"REA", F_T},
    {"REG", F_T},
    {"REM", F_T},
    {"RMG", F_T},
    {"RML", F_T | F_P},
    {"RNG", 0},
    {"SBP", F_T},
    {"SBS", F_TRID_S},
    {"SDC", F_T},
    {"SDG", F_T | F_P},
    {"SND", F_T},
    {"SYN", F_T},
    {"UBM", F_P},
    {"UBN", F_P},
    {"UBX", F_P},
    {"URL", F_T},
    {"USR", F_T},
    {"UUM", F_T | F_P},
    {"UUN", F_T | F_P},
    {"UUX", F_T | F_P},
    {"VER", F_T},
    {"XFR", F_T},
};

static const struct cmd_info *cmd_lookup(const char *name)
{
    size_t lo = 0, hi = sizeof(cmd_table) / sizeof(cmd_table[0]);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(name, cmd_table[mid].name, 3);
        if (c == 0)
            return &cmd_table[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static unsigned trid_flag(enum msnp_dir dir)
{
    return dir == MSNP_DIR_C2S ? F_TRID_C : F_TRID_S;
}

static unsigned pay_flag(enum msnp_dir dir)
{
    return dir == MSNP_DIR_C2S ? F_PAY_C : F_PAY_S;
}

static bool valid_cmd(const char *cmd)
{
    for (int i = 0; i < 3; i++) {
        char c = cmd[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return cmd[3] == '\0';
}

bool msnp_is_payload_cmd(const char *cmd, enum msnp_dir dir)
{
    if (cmd == NULL || !valid_cmd(cmd))
        return false;
    const struct cmd_info *ci = cmd_lookup(cmd);
    return ci != NULL && (ci->flags & pay_flag(dir)) != 0;
}

void msnp_limits_default(struct msnp_limits *lim)
{
    lim->line_max = MSNP_LINE_MAX_DEFAULT;
    lim->payload_max = MSNP_PAYLOAD_MAX_DEFAULT;
    lim->sent_max = MSNP_SENT_MAX_DEFAULT;
}

/* Parser states. One command:
 *
 *   CMD --3 x [A-Z0-9]--> AFTER_CMD --' '--> ARGS --'\r'--> LF --'\n'--+
 *                            |  '\r' -> LF     |  '\n' ------------------+--> end of line
 *                            |  '\n' ----------------------------------- +        |
 *                                                      payload n > 0: PAYLOAD --n bytes--> event
 *                                                      otherwise: event
 *   any error --> DEAD (sticky)
 */
enum {
    ST_CMD = 0,
    ST_AFTER_CMD,
    ST_ARGS,
    ST_LF,
    ST_PAYLOAD,
    ST_DEAD,
};

int msnp_parser_init(struct msnp_parser *p, enum msnp_dir dir, const struct msnp_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->dir = dir;
    if (lim != NULL)
        p->lim = *lim;
    else
        msnp_limits_default(&p->lim);
    if ((dir != MSNP_DIR_C2S && dir != MSNP_DIR_S2C) || p->lim.line_max < 16 ||
        p->lim.line_max > MSNP_LINE_MAX_LIMIT || p->lim.payload_max > MSNP_PAYLOAD_MAX_LIMIT ||
        p->lim.sent_max < 1 || p->lim.sent_max > MSNP_SENT_CAP) {
        p->state = ST_DEAD;
        p->err = "limit out of range";
        return SW_ERROR;
    }
    p->state = ST_CMD;
    return SW_OK;
}

uint64_t msnp_parser_keep(const struct msnp_parser *p)
{
    return p->start;
}

bool msnp_parser_note_sent(struct msnp_parser *p, uint32_t trid, const char *cmd)
{
    /* the parser reads one direction; the noted command travelled the other way */
    enum msnp_dir other = p->dir == MSNP_DIR_C2S ? MSNP_DIR_S2C : MSNP_DIR_C2S;
    if (!msnp_is_payload_cmd(cmd, other))
        return false;
    size_t n = p->lim.sent_max;
    for (size_t i = 0; i < n; i++) {
        if (p->sent[i].cmd[0] != '\0' && p->sent[i].trid == trid) {
            memcpy(p->sent[i].cmd, cmd, 4);
            return true;
        }
    }
    /* a free slot, else the oldest entry is evicted */
    size_t victim = 0;
    for (size_t i = 0; i < n; i++) {
        if (p->sent[i].cmd[0] == '\0') {
            victim = i;
            break;
        }
        if (p->sent[i].seq < p->sent[victim].seq)
            victim = i;
    }
    p->sent[victim].trid = trid;
    p->sent[victim].seq = ++p->sent_seq;
    memcpy(p->sent[victim].cmd, cmd, 4);
    return true;
}

/* Removes the entry for trid, copying its command to cmd (4 bytes). */
static bool sent_take(struct msnp_parser *p, uint32_t trid, char *cmd)
{
    for (size_t i = 0; i < p->lim.sent_max; i++) {
        if (p->sent[i].cmd[0] != '\0' && p->sent[i].trid == trid) {
            memcpy(cmd, p->sent[i].cmd, 4);
            p->sent[i].cmd[0] = '\0';
            return true;
        }
    }
    return false;
}

static int fail(struct msnp_parser *p, const char *why, uint64_t pos)
{
    p->state = ST_DEAD;
    p->err = why;
    p->err_pos = pos;
    return SW_ERROR;
}

#define VAL_CAP (UINT64_C(1) << 40) /* token values saturate here: beyond any limit */

static void tok_end(struct msnp_parser *p)
{
    if (!p->in_tok)
        return;
    p->in_tok = false;
    p->ntok++;
    if (p->ntok == 1) {
        p->first_start = p->tok_start;
        p->first_len = p->tok_len;
        p->first_digits = p->tok_digits;
        p->first_val = p->tok_val;
    } else if (p->ntok == 2) {
        p->second_start = p->tok_start;
    }
    p->last_start = p->tok_start;
    p->last_len = p->tok_len;
    p->last_digits = p->tok_digits;
    p->last_val = p->tok_val;
}

static void tok_byte(struct msnp_parser *p, uint8_t c, uint64_t off)
{
    if (!p->in_tok) {
        p->in_tok = true;
        p->tok_start = off;
        p->tok_len = 0;
        p->tok_digits = true;
        p->tok_val = 0;
    }
    p->tok_len++;
    if (c >= '0' && c <= '9') {
        if (p->tok_val < VAL_CAP)
            p->tok_val = p->tok_val * 10 + (uint64_t)(c - '0');
    } else {
        p->tok_digits = false;
    }
}

/* The line is complete (terminator at p->line_end): decide trid and payload and fill the
 * pending event's line fields. The line's bytes are buf[p->start - base ..] (the caller keeps
 * them). Returns SW_OK or SW_ERROR. */
static int end_line(struct msnp_parser *p, const uint8_t *buf, uint64_t base)
{
    struct msnp_event *ev = &p->ev;
    memset(ev, 0, sizeof(*ev));
    memcpy(ev->cmd, p->cmd, 4);
    ev->numeric = p->cmd[0] >= '0' && p->cmd[0] <= '9' && p->cmd[1] >= '0' && p->cmd[1] <= '9' &&
                  p->cmd[2] >= '0' && p->cmd[2] <= '9';
    const struct cmd_info *ci = ev->numeric ? NULL : cmd_lookup(p->cmd);
    ev->known = ci != NULL;
    ev->off = p->start;
    ev->line_len = (size_t)(p->line_end - p->start);
    ev->eol_len = p->cr ? 2 : 1;

    bool trid_ok = ev->numeric || (ci != NULL && (ci->flags & trid_flag(p->dir)) != 0);
    if (trid_ok && p->ntok >= 1 && p->first_digits && p->first_len <= 10 &&
        p->first_val <= UINT32_MAX) {
        ev->has_trid = true;
        ev->trid = (uint32_t)p->first_val;
    }
    size_t rest = p->ntok - (ev->has_trid ? 1 : 0);
    uint64_t args_start = ev->has_trid ? p->second_start : p->first_start;
    if (rest > 0) {
        ev->args.pos = (size_t)(args_start - p->start);
        ev->args.len = (size_t)(p->last_start + p->last_len - args_start);
    } else {
        ev->args.pos = ev->line_len;
    }

    /* the last token, when there is one (its offsets are stale otherwise) */
    const uint8_t *last = p->ntok > 0 ? buf + (p->last_start - base) : NULL;
    bool pay = false;
    char answered[4] = "";
    if (ev->has_trid && sent_take(p, ev->trid, answered) && ev->numeric) {
        memcpy(ev->answers, answered, 4);
        /* an error answering a payload command: a payload iff a byte count ends the line */
        pay = rest > 0 && p->last_digits;
    } else if (ci != NULL && (ci->flags & pay_flag(p->dir)) != 0) {
        /* no token after cmd/trid (`QRY trid`-style reply) or a final "OK" (the ADL, RML and
         * UUN acknowledgements): no payload; anything else must be a byte count */
        pay = rest > 0 && !(p->last_len == 2 && last != NULL && last[0] == 'O' && last[1] == 'K');
        if (pay && !p->last_digits)
            return fail(p, "bad payload length", p->last_start);
    }
    p->pay_len = 0;
    if (pay) {
        /* enforced now, before any payload byte: the declared count alone decides */
        if (p->last_len > 10 || p->last_val > p->lim.payload_max)
            return fail(p, "payload too large", p->last_start);
        ev->has_payload = true;
        ev->len_tok.pos = (size_t)(p->last_start - p->start);
        ev->len_tok.len = p->last_len;
        p->pay_len = p->last_val;
    }
    p->pay_left = p->pay_len;
    return SW_OK;
}

/* Completes the pending event at stream offset end and readies the parser for the next
 * command. */
static void emit(struct msnp_parser *p, const uint8_t *buf, uint64_t base, uint64_t end,
                 struct msnp_event *ev)
{
    *ev = p->ev;
    ev->data = buf + (p->start - base);
    ev->size = (size_t)(end - p->start);
    ev->payload.pos = ev->line_len + ev->eol_len;
    ev->payload.len = (size_t)p->pay_len;
    p->pos = end;
    p->start = end;
    p->state = ST_CMD;
    p->cmd_n = 0;
    p->in_tok = false;
    p->ntok = 0;
    p->pay_len = 0;
    p->pay_left = 0;
}

int msnp_parse(struct msnp_parser *p, const uint8_t *buf, size_t len, uint64_t base,
               struct msnp_event *ev)
{
    if (p->state == ST_DEAD)
        return SW_ERROR;
    if (base > p->start || base + len < p->pos)
        return fail(p, "caller did not keep the retained bytes", p->start);

    size_t i = (size_t)(p->pos - base);
    while (i < len) {
        if (p->state == ST_PAYLOAD) {
            size_t n = len - i;
            if (n > p->pay_left)
                n = (size_t)p->pay_left;
            i += n;
            p->pay_left -= n;
            if (p->pay_left == 0) {
                emit(p, buf, base, base + i, ev);
                return SW_OK;
            }
            continue;
        }

        uint8_t c = buf[i];
        uint64_t off = base + i;
        if (off - p->start >= p->lim.line_max)
            return fail(p, "line too long", off);
        i++;
        bool eol = false;

        switch (p->state) {
        case ST_CMD:
            if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
                return fail(p, "bad command", off);
            p->cmd[p->cmd_n++] = (char)c;
            if (p->cmd_n == 3) {
                p->cmd[3] = '\0';
                p->state = ST_AFTER_CMD;
            }
            break;
        case ST_AFTER_CMD:
        case ST_ARGS:
            if (c == ' ') {
                tok_end(p);
                p->state = ST_ARGS;
            } else if (c == '\r' || c == '\n') {
                tok_end(p);
                p->line_end = off;
                p->cr = c == '\r';
                if (c == '\r')
                    p->state = ST_LF;
                else
                    eol = true;
            } else if (p->state == ST_AFTER_CMD) {
                return fail(p, "bad command", off);
            } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return fail(p, "control byte in command line", off);
            } else {
                tok_byte(p, c, off);
            }
            break;
        case ST_LF:
            if (c != '\n')
                return fail(p, "CR not followed by LF", off);
            eol = true;
            break;
        default:
            return fail(p, "internal state", off);
        }
        if (!eol)
            continue;

        if (end_line(p, buf, base) != SW_OK)
            return SW_ERROR;
        if (p->pay_left > 0) {
            p->state = ST_PAYLOAD;
            continue;
        }
        emit(p, buf, base, base + i, ev);
        return SW_OK;
    }
    p->pos = base + len;
    return SW_AGAIN;
}

/* ---- line helpers --------------------------------------------------------------------------- */

/* Splits the next space-separated token of d[*i..end) into t. Returns false at the end. */
static bool next_tok(const uint8_t *d, size_t end, size_t *i, struct msnp_span *t)
{
    size_t k = *i;
    while (k < end && d[k] == ' ')
        k++;
    if (k == end) {
        *i = k;
        return false;
    }
    t->pos = k;
    while (k < end && d[k] != ' ')
        k++;
    t->len = k - t->pos;
    *i = k;
    return true;
}

/* Splits ev's args into at most max tokens; returns how many there are (may exceed max). */
static size_t split_args(const struct msnp_event *ev, struct msnp_span *t, size_t max)
{
    size_t i = ev->args.pos, end = ev->args.pos + ev->args.len, n = 0;
    struct msnp_span s;
    while (next_tok(ev->data, end, &i, &s)) {
        if (n < max)
            t[n] = s;
        n++;
    }
    return n;
}

static bool span_is(const struct msnp_event *ev, struct msnp_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(ev->data + s.pos, lit, n) == 0;
}

static bool is_cmd(const struct msnp_event *ev, const char *cmd)
{
    return ev != NULL && ev->data != NULL && memcmp(ev->cmd, cmd, 4) == 0;
}

/* host:port, hostname | IPv4 | [IPv6], port 1..65535. */
static bool parse_hostport(const struct msnp_event *ev, struct msnp_span s,
                           struct msnp_hostport *hp)
{
    const uint8_t *d = ev->data;
    size_t end = s.pos + s.len, colon;
    hp->addr = s;
    if (s.len > 0 && d[s.pos] == '[') {
        size_t k = s.pos + 1;
        while (k < end && d[k] != ']')
            k++;
        if (k == end || k == s.pos + 1 || k + 1 >= end || d[k + 1] != ':')
            return false;
        hp->host.pos = s.pos + 1;
        hp->host.len = k - hp->host.pos;
        colon = k + 1;
    } else {
        colon = end;
        for (size_t k = s.pos; k < end; k++) {
            if (d[k] == ':') {
                if (colon != end)
                    return false; /* bare IPv6 is ambiguous */
                colon = k;
            }
        }
        if (colon == end || colon == s.pos)
            return false;
        hp->host.pos = s.pos;
        hp->host.len = colon - s.pos;
    }
    size_t plen = end - colon - 1;
    if (plen < 1 || plen > 5)
        return false;
    uint32_t port = 0;
    for (size_t k = colon + 1; k < end; k++) {
        if (d[k] < '0' || d[k] > '9')
            return false;
        port = port * 10 + (uint32_t)(d[k] - '0');
    }
    if (port < 1 || port > 65535)
        return false;
    hp->port = (uint16_t)port;
    return true;
}

int msnp_parse_xfr(const struct msnp_event *ev, struct msnp_xfr *out)
{
    struct msnp_span t[4];
    if (!is_cmd(ev, "XFR") || !ev->has_trid)
        return SW_DECLINED;
    memset(out, 0, sizeof(*out));
    size_t n = split_args(ev, t, 4);
    if (n < 2)
        return SW_DECLINED;
    if (span_is(ev, t[0], "NS")) {
        out->sb = false;
    } else if (span_is(ev, t[0], "SB")) {
        out->sb = true;
        if (n < 4 || !span_is(ev, t[2], "CKI"))
            return SW_ERROR;
        out->cookie = t[3];
    } else {
        return SW_DECLINED; /* a client's request `XFR trid SB` has no address either */
    }
    if (!parse_hostport(ev, t[1], &out->hp))
        return SW_ERROR;
    return SW_OK;
}

int msnp_parse_rng(const struct msnp_event *ev, struct msnp_rng *out)
{
    struct msnp_span t[6];
    if (!is_cmd(ev, "RNG"))
        return SW_DECLINED;
    memset(out, 0, sizeof(*out));
    size_t n = split_args(ev, t, 6);
    if (n < 5 || !span_is(ev, t[2], "CKI"))
        return SW_ERROR;
    out->sessid = t[0];
    if (!parse_hostport(ev, t[1], &out->hp))
        return SW_ERROR;
    out->cookie = t[3];
    out->email = t[4];
    if (n >= 6)
        out->nick = t[5];
    return SW_OK;
}

int msnp_parse_sb_login(const struct msnp_event *ev, struct msnp_sb_login *out)
{
    struct msnp_span t[4];
    bool ans = is_cmd(ev, "ANS");
    if ((!ans && !is_cmd(ev, "USR")) || !ev->has_trid)
        return SW_DECLINED;
    memset(out, 0, sizeof(*out));
    size_t n = split_args(ev, t, 4);
    out->ans = ans;
    out->trid = ev->trid;
    if (!ans) {
        /* NS logins are `USR trid TWN|MD5|SSO|SHA I|S ...`: three or more tokens */
        if (n != 2)
            return n > 2 ? SW_DECLINED : SW_ERROR;
    } else if (n != 3) {
        return SW_ERROR;
    }
    out->email = t[0];
    out->cookie = t[1];
    if (ans)
        out->sessid = t[2];
    return SW_OK;
}

int msnp_parse_msg_line(const struct msnp_event *ev, enum msnp_dir dir, struct msnp_msg_line *out)
{
    struct msnp_span t[4];
    if (!is_cmd(ev, "MSG"))
        return SW_DECLINED;
    memset(out, 0, sizeof(*out));
    if (!ev->has_payload)
        return SW_ERROR;
    size_t n = split_args(ev, t, 4);
    if (dir == MSNP_DIR_C2S) {
        if (!ev->has_trid || n != 2 || t[0].len != 1)
            return SW_ERROR;
        char a = (char)ev->data[t[0].pos];
        if (a != 'U' && a != 'N' && a != 'A' && a != 'D' && a != 'S')
            return SW_ERROR;
        out->ack = a;
    } else {
        if (n != 3)
            return SW_ERROR;
        out->email = t[0];
        out->nick = t[1];
    }
    return SW_OK;
}
