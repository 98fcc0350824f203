/* Rule files and list files: parsing into a ruleset. See rules.h and docs/rules.md.
 *
 * Both parsers work line by line over a borrowed buffer and append to the ruleset; on the first
 * error they roll the ruleset back to where it was, so a caller that keeps going after an error
 * (or retries) never sees half a file. Nothing here allocates per byte: each rule costs a few
 * small strdup'ed strings. */
#include "matcher/rules.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "matcher/hash.h"

#define RULES_DEFAULT_MAX_RULES 200000
#define RULES_DEFAULT_MAX_LINE 16384
#define RULES_DEFAULT_MAX_PATTERN 8192
#define RULES_ID_MAX 63
#define RULES_SCORE_MAX 1000.0
/* Longest local part of a sender entry (RFC 7622 caps each JID part at 1023 bytes). */
#define RULES_LOCAL_MAX 1023
#define RULES_DOMAIN_MAX 253
#define RULES_LABEL_MAX 63

/* Bumped whenever the mapping from rules to Hyperscan input changes, so old caches miss. */
#define RULES_DIGEST_VERSION 2

static const char *const kind_names[RULE_KIND_COUNT] = {
    "rule", "domain_block", "domain_allow", "sender_block", "sender_allow", "shortener",
};
static const char *const kind_reasons[RULE_KIND_COUNT] = {
    "RULE",
    "LIST_DOMAIN_BLOCK",
    "LIST_DOMAIN_ALLOW",
    "LIST_SENDER_BLOCK",
    "LIST_SENDER_ALLOW",
    "LIST_SHORTENER",
};
static const char *const target_names[RULE_TARGET_COUNT] = {"body", "url", "domain", "sender"};

const char *rule_kind_name(enum rule_kind kind)
{
    if ((unsigned)kind >= RULE_KIND_COUNT)
        return "?";
    return kind_names[kind];
}

const char *rule_kind_reason(enum rule_kind kind)
{
    if ((unsigned)kind >= RULE_KIND_COUNT)
        return "?";
    return kind_reasons[kind];
}

const char *rule_target_name(enum rule_target target)
{
    if ((unsigned)target >= RULE_TARGET_COUNT)
        return "?";
    return target_names[target];
}

/* --- growable string ------------------------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sbuf_putn(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sbuf_puts(struct sbuf *b, const char *s)
{
    sbuf_putn(b, s, strlen(s));
}

/* Appends byte c so that the regex matches it literally: letters, digits, '_' and non-ASCII
 * bytes stand for themselves (non-ASCII so that a UTF-8 literal stays one character in 'u'
 * mode); everything else is written \xHH, which Hyperscan never reads as an operator. */
static void sbuf_put_lit(struct sbuf *b, unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c >= 0x80) {
        char ch = (char)c;
        sbuf_putn(b, &ch, 1);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
    sbuf_putn(b, esc, 4);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* --- ruleset ---------------------------------------------------------------------------------- */

struct ruleset *ruleset_new(const struct ruleset_limits *limits)
{
    struct ruleset *rs = calloc(1, sizeof(*rs));
    if (rs == NULL)
        return NULL;
    if (limits != NULL)
        rs->limits = *limits;
    if (rs->limits.max_rules == 0)
        rs->limits.max_rules = RULES_DEFAULT_MAX_RULES;
    if (rs->limits.max_line == 0)
        rs->limits.max_line = RULES_DEFAULT_MAX_LINE;
    if (rs->limits.max_pattern == 0)
        rs->limits.max_pattern = RULES_DEFAULT_MAX_PATTERN;
    return rs;
}

static void rule_deinit(struct rule *r)
{
    free(r->id);
    free(r->expr);
    free(r->entry);
    free(r->desc);
    memset(r, 0, sizeof(*r));
}

/* Drops rules [n, rs->n) and file names [n_files, rs->n_files): the rollback of a failed parse. */
static void ruleset_truncate(struct ruleset *rs, size_t n, size_t n_files)
{
    while (rs->n > n)
        rule_deinit(&rs->rules[--rs->n]);
    while (rs->n_files > n_files) {
        rs->n_files--;
        free(rs->files[rs->n_files]);
        rs->files[rs->n_files] = NULL;
    }
}

void ruleset_free(struct ruleset *rs)
{
    if (rs == NULL)
        return;
    ruleset_truncate(rs, 0, 0);
    free(rs->rules);
    free(rs->files);
    free(rs);
}

/* Returns the interned copy of file (adding it if new), or NULL on ENOMEM. */
static const char *ruleset_intern(struct ruleset *rs, const char *file)
{
    for (size_t i = 0; i < rs->n_files; i++)
        if (strcmp(rs->files[i], file) == 0)
            return rs->files[i];
    char **nf = realloc(rs->files, (rs->n_files + 1) * sizeof(*nf));
    if (nf == NULL)
        return NULL;
    rs->files = nf;
    char *copy = strdup(file);
    if (copy == NULL)
        return NULL;
    rs->files[rs->n_files++] = copy;
    return copy;
}

static struct rule *ruleset_push(struct ruleset *rs)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        struct rule *nr = realloc(rs->rules, cap * sizeof(*nr));
        if (nr == NULL)
            return NULL;
        rs->rules = nr;
        rs->cap = cap;
    }
    struct rule *r = &rs->rules[rs->n++];
    memset(r, 0, sizeof(*r));
    return r;
}

/* Appends a zeroed entry for line lineno of ifile (interned), within limits.max_rules ("what"
 * names the bound in the error). NULL with err "file:line: ..." when full or out of memory. */
static struct rule *ruleset_push_at(struct ruleset *rs, const char *ifile, unsigned lineno,
                                    const char *what, struct sw_err *err)
{
    if (rs->n >= rs->limits.max_rules) {
        sw_err_set(err, "%s:%u: too many %s (max %zu)", ifile, lineno, what,
                   rs->limits.max_rules);
        return NULL;
    }
    struct rule *r = ruleset_push(rs);
    if (r == NULL) {
        sw_err_set(err, "%s:%u: out of memory", ifile, lineno);
        return NULL;
    }
    r->file = ifile;
    r->line = lineno;
    return r;
}

struct ruleset *ruleset_clone(const struct ruleset *rs)
{
    struct ruleset *c = ruleset_new(&rs->limits);
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < rs->n_files; i++)
        if (ruleset_intern(c, rs->files[i]) == NULL)
            goto fail;
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *s = &rs->rules[i];
        struct rule *r = ruleset_push(c);
        if (r == NULL)
            goto fail;
        *r = *s;
        r->id = r->expr = r->entry = r->desc = NULL;
        r->file = ruleset_intern(c, s->file);
        r->id = strdup(s->id);
        r->expr = strdup(s->expr);
        if (s->entry != NULL)
            r->entry = strdup(s->entry);
        if (s->desc != NULL)
            r->desc = strdup(s->desc);
        if (r->file == NULL || r->id == NULL || r->expr == NULL ||
            (s->entry != NULL && r->entry == NULL) || (s->desc != NULL && r->desc == NULL))
            goto fail;
    }
    return c;
fail:
    ruleset_free(c);
    return NULL;
}

uint64_t ruleset_digest(const struct ruleset *rs)
{
    uint64_t h = sw_hash64("spimwall-ruleset", 16, RULES_DIGEST_VERSION);
    h = sw_hash_combine(h, (uint64_t)rs->n);
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->rules[i];
        /* requires=link keeps a body rule out of the second body database (hsdb.h,
         * HSDB_GROUP_BODY_PLAIN); provides= and the score change nothing compiled */
        uint64_t meta = (uint64_t)r->flags | (uint64_t)r->target << 16 | (uint64_t)r->kind << 24 |
                        (uint64_t)r->requires << 32;
        h = sw_hash_combine(h, sw_hash64(r->expr, strlen(r->expr), meta));
    }
    return h;
}

/* --- line scanning ---------------------------------------------------------------------------- */

/* Iterates over the lines of buf. A final line without '\n' counts; a '\r' before '\n' is
 * dropped. Returns false at the end. */
struct line_iter {
    const char *buf;
    size_t len, pos;
    unsigned lineno;
};

static bool line_next(struct line_iter *it, const char **line, size_t *line_len)
{
    if (it->pos >= it->len)
        return false;
    const char *start = it->buf + it->pos;
    const char *nl = memchr(start, '\n', it->len - it->pos);
    size_t n = nl ? (size_t)(nl - start) : it->len - it->pos;
    it->pos += n + (nl ? 1 : 0);
    it->lineno++;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    *line_len = n;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Copies at most 32 bytes of a token for an error message, replacing unprintable bytes, so a
 * hostile file cannot put control characters into a log line. */
static const char *quote_tok(char *out, size_t cap, const char *s, size_t n)
{
    size_t i = 0, j = 0;
    for (; i < n && j + 4 < cap && i < 32; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (i < n && j + 4 < cap) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
    return out;
}

/* --- rule id set (duplicate detection) ---------------------------------------------------------
 * Open addressing over pointers to ids; built per parse call from the rules already in the set,
 * so it needs no state in struct ruleset. */
struct id_set {
    const char **slots;
    size_t mask;
};

static int id_set_init(struct id_set *s, size_t expect)
{
    size_t cap = 16;
    while (cap < expect * 2)
        cap *= 2;
    s->slots = calloc(cap, sizeof(*s->slots));
    s->mask = cap - 1;
    return s->slots ? 0 : -1;
}

/* Inserts id unless present; returns true if it was already there. */
static bool id_set_insert(struct id_set *s, const char *id)
{
    size_t i = (size_t)sw_hash64(id, strlen(id), 0) & s->mask;
    while (s->slots[i] != NULL) {
        if (strcmp(s->slots[i], id) == 0)
            return true;
        i = (i + 1) & s->mask;
    }
    s->slots[i] = id;
    return false;
}

/* --- rule lines ----------------------------------------------------------------------------- */

static bool is_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Strict decimal: [+-]?digits[.digits]; no exponent, hex, inf or nan (strtod takes all of
 * those and depends on the locale). */
static bool parse_score(const char *s, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    double v = 0, scale = 1;
    unsigned digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 12) {
        v = v * 10 + (s[i++] - '0');
        digits++;
    }
    if (i < n && s[i] == '.') {
        i++;
        unsigned frac = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && frac < 9) {
            scale /= 10;
            v += (s[i++] - '0') * scale;
            frac++;
        }
        digits += frac;
    }
    if (i != n || digits == 0)
        return false;
    *out = neg ? -v : v;
    return true;
}

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && is_space(*c->p))
        c->p++;
}

/* Next whitespace-delimited token. */
static bool next_token(struct cursor *c, const char **tok, size_t *n)
{
    skip_space(c);
    const char *s = c->p;
    while (c->p < c->end && !is_space(*c->p))
        c->p++;
    *tok = s;
    *n = (size_t)(c->p - s);
    return *n > 0;
}

/* Parses the rest of a "rule" line (after the keyword) into r. Returns 0, or -1 with the reason
 * in why (r keeps whatever it had allocated; the caller's rollback frees it). */
static int parse_rule_line(struct ruleset *rs, struct cursor *c, struct rule *r, char *why,
                           size_t why_cap)
{
    char q[48];
    const char *tok;
    size_t n;
    struct sbuf expr = {0}, desc = {0};

    /* id */
    if (!next_token(c, &tok, &n)) {
        snprintf(why, why_cap, "missing rule id");
        goto fail;
    }
    if (n > RULES_ID_MAX) {
        snprintf(why, why_cap, "bad rule id '%s': longer than %d", quote_tok(q, sizeof(q), tok, n),
                 RULES_ID_MAX);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_id_char(tok[i])) {
            snprintf(why, why_cap, "bad rule id '%s': only A-Z a-z 0-9 _ . - allowed",
                     quote_tok(q, sizeof(q), tok, n));
            goto fail;
        }
    }
    r->id = dup_n(tok, n);
    if (r->id == NULL)
        goto oom;

    /* target */
    if (!next_token(c, &tok, &n)) {
        snprintf(why, why_cap, "rule %s: missing target", r->id);
        goto fail;
    }
    bool found = false;
    for (unsigned t = 0; t < RULE_TARGET_COUNT; t++) {
        if (strlen(target_names[t]) == n && memcmp(target_names[t], tok, n) == 0) {
            r->target = (enum rule_target)t;
            found = true;
        }
    }
    if (!found) {
        snprintf(why, why_cap, "rule %s: unknown target '%s' (body, url, domain or sender)", r->id,
                 quote_tok(q, sizeof(q), tok, n));
        goto fail;
    }

    /* score */
    if (!next_token(c, &tok, &n)) {
        snprintf(why, why_cap, "rule %s: missing score", r->id);
        goto fail;
    }
    if (!parse_score(tok, n, &r->score) || r->score > RULES_SCORE_MAX ||
        r->score < -RULES_SCORE_MAX) {
        snprintf(why, why_cap, "rule %s: bad score '%s' (a decimal between -1000 and 1000)", r->id,
                 quote_tok(q, sizeof(q), tok, n));
        goto fail;
    }

    /* pattern */
    skip_space(c);
    if (c->p == c->end) {
        snprintf(why, why_cap, "rule %s: missing pattern", r->id);
        goto fail;
    }
    char delim = *c->p;
    if (delim != '/' && delim != '"') {
        snprintf(why, why_cap, "rule %s: pattern must be /regex/flags or \"literal\"flags", r->id);
        goto fail;
    }
    c->p++;
    bool closed = false;
    size_t raw_len = 0;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == delim) {
            closed = true;
            break;
        }
        raw_len++;
        if (ch == '\\') {
            if (c->p == c->end)
                break;
            char nx = *c->p++;
            raw_len++;
            if (delim == '/') {
                /* "\/" is a '/' that does not end the regex; other escapes are the regex's. */
                if (nx == '/') {
                    sbuf_putn(&expr, "/", 1);
                } else {
                    sbuf_putn(&expr, "\\", 1);
                    sbuf_putn(&expr, &nx, 1);
                }
            } else if (nx == '"' || nx == '\\') {
                sbuf_put_lit(&expr, (unsigned char)nx);
            } else {
                snprintf(why, why_cap, "rule %s: bad escape '\\%s' in literal (only \\\" and \\\\)",
                         r->id, quote_tok(q, sizeof(q), &nx, 1));
                goto fail;
            }
            continue;
        }
        if (delim == '/')
            sbuf_putn(&expr, &ch, 1);
        else
            sbuf_put_lit(&expr, (unsigned char)ch);
    }
    if (raw_len > rs->limits.max_pattern) {
        snprintf(why, why_cap, "rule %s: pattern too long (%zu bytes, max %zu)", r->id, raw_len,
                 rs->limits.max_pattern);
        goto fail;
    }
    if (!closed) {
        snprintf(why, why_cap, "rule %s: unterminated pattern (missing closing %c)", r->id, delim);
        goto fail;
    }
    if (raw_len == 0) {
        snprintf(why, why_cap, "rule %s: empty pattern", r->id);
        goto fail;
    }
    if (delim == '"')
        r->flags |= RULE_F_LITERAL;
    while (c->p < c->end && !is_space(*c->p) && *c->p != '"') {
        unsigned f;
        switch (*c->p) {
        case 'i':
            f = RULE_F_CASELESS;
            break;
        case 'u':
            f = RULE_F_UTF8;
            break;
        case 's':
            f = RULE_F_DOTALL;
            break;
        case 'm':
            f = RULE_F_MULTILINE;
            break;
        default:
            snprintf(why, why_cap, "rule %s: unknown flag '%s' (i, u, s or m)", r->id,
                     quote_tok(q, sizeof(q), c->p, 1));
            goto fail;
        }
        if (r->flags & f) {
            snprintf(why, why_cap, "rule %s: flag '%c' given twice", r->id, *c->p);
            goto fail;
        }
        r->flags |= f;
        c->p++;
    }
    if (c->p < c->end && *c->p == '"') {
        snprintf(why, why_cap, "rule %s: need a space between the pattern and the description",
                 r->id);
        goto fail;
    }

    /* options: key=value tokens before the description */
    for (;;) {
        skip_space(c);
        if (c->p == c->end || *c->p == '"' || *c->p == '#')
            break;
        const char *opt = c->p;
        while (c->p < c->end && !is_space(*c->p))
            c->p++;
        size_t on = (size_t)(c->p - opt);
        const char *eq = memchr(opt, '=', on);
        size_t kn = eq != NULL ? (size_t)(eq - opt) : on;
        unsigned *field = NULL;
        if (kn == 8 && memcmp(opt, "requires", 8) == 0)
            field = &r->requires;
        else if (kn == 8 && memcmp(opt, "provides", 8) == 0)
            field = &r->provides;
        if (field == NULL || eq == NULL) {
            snprintf(why, why_cap, "rule %s: unknown option '%s' (requires=link, provides=link)",
                     r->id, quote_tok(q, sizeof(q), opt, on));
            goto fail;
        }
        const char *val = eq + 1;
        size_t vn = on - kn - 1;
        if (vn != 4 || memcmp(val, "link", 4) != 0) {
            snprintf(why, why_cap, "rule %s: unknown condition '%s' (link)", r->id,
                     quote_tok(q, sizeof(q), val, vn));
            goto fail;
        }
        if (*field & RULE_REQ_LINK) {
            snprintf(why, why_cap, "rule %s: option '%.*s' given twice", r->id, (int)kn, opt);
            goto fail;
        }
        if (r->target != RULE_BODY) {
            snprintf(why, why_cap, "rule %s: option '%.*s' applies to body rules only", r->id,
                     (int)kn, opt);
            goto fail;
        }
        *field |= RULE_REQ_LINK;
    }
    if (r->requires & r->provides & RULE_REQ_LINK) {
        snprintf(why, why_cap, "rule %s: requires=link and provides=link together", r->id);
        goto fail;
    }

    /* optional "description" */
    skip_space(c);
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        bool dclosed = false;
        while (c->p < c->end) {
            char ch = *c->p++;
            if (ch == '"') {
                dclosed = true;
                break;
            }
            if (ch == '\\' && c->p < c->end && (*c->p == '"' || *c->p == '\\'))
                ch = *c->p++;
            sbuf_putn(&desc, &ch, 1);
        }
        if (!dclosed) {
            snprintf(why, why_cap, "rule %s: unterminated description", r->id);
            goto fail;
        }
        if (desc.p == NULL)
            sbuf_putn(&desc, "", 0);
    }
    skip_space(c);
    if (c->p < c->end && *c->p != '#') {
        snprintf(why, why_cap, "rule %s: trailing garbage '%s'", r->id,
                 quote_tok(q, sizeof(q), c->p, (size_t)(c->end - c->p)));
        goto fail;
    }
    if (expr.oom || desc.oom)
        goto oom;
    r->expr = expr.p;
    r->desc = desc.p;
    return 0;
oom:
    snprintf(why, why_cap, "out of memory");
fail:
    free(expr.p);
    free(desc.p);
    return -1;
}

static bool has_nul(const char *s, size_t n)
{
    return memchr(s, '\0', n) != NULL;
}

int ruleset_parse_rules(struct ruleset *rs, const char *buf, size_t len, const char *file,
                        struct sw_err *err)
{
    size_t n0 = rs->n, f0 = rs->n_files;
    struct id_set ids = {0};
    struct line_iter it = {.buf = buf, .len = len};
    const char *line;
    size_t line_len;
    char why[SW_ERR_MAX - 64];
    char q[48];

    const char *ifile = ruleset_intern(rs, file);
    if (ifile == NULL) {
        sw_err_set(err, "%s: out of memory", file);
        goto fail;
    }

    /* Size the id set for the existing rules plus at most one rule per line. */
    size_t lines = 1;
    for (const char *p = buf; len > 0 && (p = memchr(p, '\n', (size_t)(buf + len - p))) != NULL;
         p++)
        lines++;
    if (id_set_init(&ids, rs->n + lines) != 0) {
        sw_err_set(err, "%s: out of memory", file);
        goto fail;
    }
    for (size_t i = 0; i < rs->n; i++)
        if (rs->rules[i].kind == RULE_KIND_RULE)
            id_set_insert(&ids, rs->rules[i].id);

    while (line_next(&it, &line, &line_len)) {
        if (line_len > rs->limits.max_line) {
            sw_err_set(err, "%s:%u: line too long (%zu bytes, max %zu)", file, it.lineno, line_len,
                       rs->limits.max_line);
            goto fail;
        }
        if (has_nul(line, line_len)) {
            sw_err_set(err, "%s:%u: NUL byte in line", file, it.lineno);
            goto fail;
        }
        struct cursor c = {line, line + line_len};
        const char *tok;
        size_t n;
        if (!next_token(&c, &tok, &n) || tok[0] == '#')
            continue;
        if (n != 4 || memcmp(tok, "rule", 4) != 0) {
            sw_err_set(err, "%s:%u: unknown keyword '%s' (expected 'rule')", file, it.lineno,
                       quote_tok(q, sizeof(q), tok, n));
            goto fail;
        }
        struct rule *r = ruleset_push_at(rs, ifile, it.lineno, "rules", err);
        if (r == NULL)
            goto fail;
        r->kind = RULE_KIND_RULE;
        if (parse_rule_line(rs, &c, r, why, sizeof(why)) != 0) {
            sw_err_set(err, "%s:%u: %s", file, it.lineno, why);
            goto fail;
        }
        if (id_set_insert(&ids, r->id)) {
            const struct rule *first = NULL;
            for (size_t i = 0; i + 1 < rs->n && first == NULL; i++)
                if (rs->rules[i].kind == RULE_KIND_RULE && strcmp(rs->rules[i].id, r->id) == 0)
                    first = &rs->rules[i];
            sw_err_set(err, "%s:%u: duplicate rule id %s (first defined at %s:%u)", file, it.lineno,
                       r->id, first ? first->file : "?", first ? first->line : 0);
            goto fail;
        }
    }
    free(ids.slots);
    return SW_OK;
fail:
    free(ids.slots);
    ruleset_truncate(rs, n0, f0);
    return SW_ERROR;
}

/* --- list lines ----------------------------------------------------------------------------- */

/* Checks and lower-cases a hostname in place: labels of [a-z0-9-] (1..63 bytes, no leading or
 * trailing '-'), joined by single dots, 253 bytes at most. */
static bool check_domain(char *d, size_t n, char *why, size_t why_cap)
{
    if (n == 0) {
        snprintf(why, why_cap, "bad list entry: empty domain");
        return false;
    }
    if (n > RULES_DOMAIN_MAX) {
        snprintf(why, why_cap, "bad list entry: domain longer than %d bytes", RULES_DOMAIN_MAX);
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = i < n ? d[i] : '.';
        if (ch == '.') {
            if (label == 0) {
                snprintf(why, why_cap, "bad list entry: empty label in domain");
                return false;
            }
            if (d[i - 1] == '-' || d[i - label] == '-') {
                snprintf(why, why_cap, "bad list entry: label starts or ends with '-'");
                return false;
            }
            label = 0;
            continue;
        }
        if (ch >= 'A' && ch <= 'Z')
            d[i] = ch = (char)(ch - 'A' + 'a');
        if ((unsigned char)ch >= 0x80) {
            snprintf(why, why_cap,
                     "bad list entry: non-ASCII domain (write IDNs in punycode, xn--...)");
            return false;
        }
        if (ch == '@') {
            snprintf(why, why_cap, "bad list entry: '@' in a domain");
            return false;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) {
            snprintf(why, why_cap, "bad list entry: invalid character in domain");
            return false;
        }
        if (++label > RULES_LABEL_MAX) {
            snprintf(why, why_cap, "bad list entry: label longer than %d bytes", RULES_LABEL_MAX);
            return false;
        }
    }
    return true;
}

static void put_domain_regex(struct sbuf *b, const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sbuf_put_lit(b, (unsigned char)d[i]);
}

/* Turns one trimmed list entry into r->expr / r->entry. */
static int parse_list_entry(struct rule *r, enum rule_kind kind, const char *tok, size_t n,
                            char *why, size_t why_cap)
{
    struct sbuf expr = {0};
    char *e = dup_n(tok, n);
    if (e == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        if (is_space(e[i])) {
            snprintf(why, why_cap, "bad list entry: contains whitespace");
            goto fail;
        }
        if ((unsigned char)e[i] < 0x20 || e[i] == 0x7f) {
            snprintf(why, why_cap, "bad list entry: control character");
            goto fail;
        }
    }
    if (kind == RULE_KIND_DOMAIN_BLOCK || kind == RULE_KIND_DOMAIN_ALLOW ||
        kind == RULE_KIND_SHORTENER) {
        char *d = e;
        size_t dn = n;
        if (dn >= 2 && d[0] == '*' && d[1] == '.') {
            d += 2;
            dn -= 2;
        } else if (dn >= 1 && d[0] == '.') {
            d++;
            dn--;
        }
        if (dn > 0 && d[dn - 1] == '.') /* absolute form "evil.example." */
            dn--;
        if (!check_domain(d, dn, why, why_cap)) {
            goto fail;
        }
        memmove(e, d, dn);
        e[dn] = '\0';
        /* the host itself or any subdomain, anchored at both ends of the field */
        sbuf_puts(&expr, "(?:^|\\.)");
        put_domain_regex(&expr, e, dn);
        sbuf_puts(&expr, "$");
    } else {
        char *at = memchr(e, '@', n);
        if (at == NULL) {
            snprintf(why, why_cap, "bad list entry: expected user@domain or @domain");
            goto fail;
        }
        size_t ln = (size_t)(at - e), dn = n - ln - 1;
        if (memchr(at + 1, '@', dn) != NULL) {
            snprintf(why, why_cap, "bad list entry: more than one '@'");
            goto fail;
        }
        if (ln > RULES_LOCAL_MAX) {
            snprintf(why, why_cap, "bad list entry: local part longer than %d bytes",
                     RULES_LOCAL_MAX);
            goto fail;
        }
        for (size_t i = 0; i < ln; i++) {
            /* RFC 7622 forbids these in a localpart; '/' would be a resource. */
            if (strchr("\"&'/:<>", e[i]) != NULL) {
                snprintf(why, why_cap, "bad list entry: '%c' in local part", e[i]);
                goto fail;
            }
            if (e[i] >= 'A' && e[i] <= 'Z')
                e[i] = (char)(e[i] - 'A' + 'a');
        }
        if (!check_domain(at + 1, dn, why, why_cap)) {
            goto fail;
        }
        if (ln == 0) {
            /* any address at the domain or a subdomain of it */
            sbuf_puts(&expr, "@(?:[^@]*\\.)?");
        } else {
            sbuf_puts(&expr, "^");
            for (size_t i = 0; i < ln; i++)
                sbuf_put_lit(&expr, (unsigned char)e[i]);
            sbuf_puts(&expr, "\\x40");
        }
        put_domain_regex(&expr, at + 1, dn);
        sbuf_puts(&expr, "$");
    }
    if (expr.oom)
        goto oom;
    r->expr = expr.p;
    r->entry = e;
    return 0;
oom:
    snprintf(why, why_cap, "out of memory");
fail:
    free(expr.p);
    free(e);
    return -1;
}

int ruleset_parse_list(struct ruleset *rs, enum rule_kind kind, const char *buf, size_t len,
                       const char *file, struct sw_err *err)
{
    size_t n0 = rs->n, f0 = rs->n_files;
    struct line_iter it = {.buf = buf, .len = len};
    const char *line;
    size_t line_len;
    char why[SW_ERR_MAX - 64];

    if (kind == RULE_KIND_RULE || (unsigned)kind >= RULE_KIND_COUNT) {
        sw_err_set(err, "%s: not a list kind", file);
        return SW_ERROR;
    }
    const char *ifile = ruleset_intern(rs, file);
    if (ifile == NULL) {
        sw_err_set(err, "%s: out of memory", file);
        goto fail;
    }
    bool sender = kind == RULE_KIND_SENDER_BLOCK || kind == RULE_KIND_SENDER_ALLOW;

    while (line_next(&it, &line, &line_len)) {
        if (line_len > rs->limits.max_line) {
            sw_err_set(err, "%s:%u: line too long (%zu bytes, max %zu)", file, it.lineno, line_len,
                       rs->limits.max_line);
            goto fail;
        }
        if (has_nul(line, line_len)) {
            sw_err_set(err, "%s:%u: NUL byte in line", file, it.lineno);
            goto fail;
        }
        const char *hash = memchr(line, '#', line_len);
        if (hash != NULL)
            line_len = (size_t)(hash - line);
        while (line_len > 0 && is_space(line[0])) {
            line++;
            line_len--;
        }
        while (line_len > 0 && is_space(line[line_len - 1]))
            line_len--;
        if (line_len == 0)
            continue;
        struct rule *r = ruleset_push_at(rs, ifile, it.lineno, "rules and list entries", err);
        if (r == NULL)
            goto fail;
        r->kind = kind;
        r->target = sender ? RULE_SENDER : RULE_DOMAIN;
        r->flags = RULE_F_CASELESS;
        if (parse_list_entry(r, kind, line, line_len, why, sizeof(why)) != 0) {
            sw_err_set(err, "%s:%u: %s", file, it.lineno, why);
            goto fail;
        }
        r->id = strdup(kind_reasons[kind]);
        if (r->id == NULL) {
            sw_err_set(err, "%s:%u: out of memory", file, it.lineno);
            goto fail;
        }
    }
    return SW_OK;
fail:
    ruleset_truncate(rs, n0, f0);
    return SW_ERROR;
}
