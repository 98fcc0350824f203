#include "bench/lib/corpus.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/lib/benchutil.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* --- vocabulary ------------------------------------------------------------------------------ */

static const char *const first_names[] = {
    "anna", "ben", "carla", "david", "elena", "felix", "greta", "hugo", "ines", "jonas",
    "karim", "lena", "marco", "nina", "oscar", "paula", "quentin", "rosa", "sami", "tara",
    "umar", "vera", "william", "xenia", "yusuf", "zoe", "alex", "bianca", "chris", "dana",
    "emil", "fatima", "george", "hanna", "ivan", "julia", "kai", "laura", "max", "noor",
    "olga", "pedro", "rahul", "sofia", "tom", "ulla", "victor", "wei", "yara", "zeynep",
};
static const char *const last_names[] = {
    "smith", "kowalski", "garcia", "muller", "rossi", "dubois", "novak", "silva", "jensen",
    "nguyen", "kim", "ivanova", "schmidt", "brown", "lopez", "martin", "wilson", "sato",
    "haddad", "okafor", "berg", "costa", "fischer", "moreau", "petrov", "santos", "weber",
    "young", "zhang", "olsen",
};
static const char *const servers[] = {
    "jabber.org", "xmpp.jp", "jabber.ccc.de", "conversations.im", "disroot.org", "jabber.fr",
    "chat.example.com", "im.example.net", "hotmail.com", "msn.com", "live.com", "yax.im",
    "xmpp.example.org", "jabber.example.de",
};
static const char *const places[] = {
    "the office", "the gym", "the station", "mum's place", "the cinema", "the park",
    "the pub", "the library", "the airport", "home", "the cafe on 5th", "the supermarket",
    "the dentist", "work", "the meeting room", "the beach",
};
static const char *const times[] = {
    "tonight", "tomorrow", "later", "on friday", "next week", "this afternoon", "in a bit",
    "after lunch", "on monday", "this weekend", "in 10 minutes", "right now",
};
static const char *const foods[] = {
    "pizza", "some bread", "milk", "coffee", "sushi", "the cake", "a burger", "noodles",
    "tacos", "salad", "ice cream", "beer",
};
static const char *const things[] = {
    "the report", "the slides", "your homework", "the tickets", "the invoice", "the car",
    "the keys", "the budget", "the photos from saturday", "the pull request", "the contract",
    "that book", "the new phone", "the game", "the laundry",
};
/* Chat sentences; {n} name, {p} place, {t} time, {c} clock, {f} food, {x} thing, {d} number. */
static const char *const chat_templates[] = {
    "hey, are you coming to {p} {t}?",
    "running {d} minutes late, sorry!",
    "did you see the game yesterday?",
    "can you send me {x} when you get a chance",
    "lunch at {c}?",
    "haha that's hilarious",
    "ok sounds good",
    "I'll call you {t}",
    "where are you?",
    "thanks, you too!",
    "the meeting moved to {c} {t}",
    "let me check and get back to you",
    "{n} said {x} is due {t}",
    "lol {n} is late again",
    "can you pick up {f} on the way home?",
    "I'm at {p}, see you {t}",
    "did you finish {x}?",
    "yes",
    "no worries",
    "good morning! how did you sleep?",
    "I think I left {x} at {p}",
    "what time does it start? {c}?",
    "brb",
    "ok",
    "love you, see you {t}",
    "just landed, taking a taxi to {p}",
    "can we move our call to {c}?",
    "happy birthday {n}!! hope you have a great day",
    "I'm so tired today",
    "do you want {f} or {f}?",
    "the train is delayed again, {d} minutes",
    "sure, no problem",
    "who is bringing {f} {t}?",
    "send me the address of {p} please",
    "have you talked to {n} about {x}?",
    "omg I can't believe it",
    "I'll be there in {d}",
    "call me when you're free",
    "we need {d} more chairs for {t}",
    "sorry I missed your call, was at {p}",
};
/* Links to well-known sites, as people paste them. {d} is a number, {w} a short token. */
static const char *const chat_links[] = {
    "https://www.youtube.com/watch?v={w}",
    "https://en.wikipedia.org/wiki/Instant_messaging",
    "https://github.com/prosody/prosody/issues/{d}",
    "https://maps.google.com/?q=52.52,13.40",
    "https://docs.google.com/document/d/{w}/edit",
    "https://www.bbc.co.uk/news/world-{d}",
    "https://twitter.com/{n}/status/{d}",
    "https://www.amazon.com/dp/B0{w}",
    "https://open.spotify.com/track/{w}",
    "http://www.imdb.com/title/tt{d}/",
    "https://www.reddit.com/r/linux/comments/{w}/",
    "https://stackoverflow.com/questions/{d}",
};
static const char *const link_intros[] = {
    "check this out {l}", "here's the link: {l}", "{l} this is what I meant",
    "did you see this? {l}", "{l}", "look {l} haha",
};
/* Non-ASCII: emoji and words in other scripts, including Cyrillic and Greek, which the
 * normaliser's look-alike folding has to get through without mangling real text. */
static const char *const utf8_bits[] = {
    "\xf0\x9f\x98\x82",             /* face with tears of joy */
    "\xf0\x9f\x91\x8d",             /* thumbs up */
    "\xe2\x9d\xa4\xef\xb8\x8f",     /* red heart + VS16 */
    "\xf0\x9f\x8e\x89",             /* party popper */
    "\xf0\x9f\x99\x82",             /* slightly smiling face */
    "caf\xc3\xa9",                  /* cafe with e-acute */
    "\xc3\xbc" "ber",               /* uber with u-umlaut */
    "d\xc3\xa9j\xc3\xa0 vu",
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",      /* Privet (Cyrillic) */
    "\xd1\x81\xd0\xbf\xd0\xb0\xd1\x81\xd0\xb8\xd0\xb1\xd0\xbe", /* spasibo */
    "\xce\xba\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1", /* kalimera */
    "\xe4\xbd\xa0\xe5\xa5\xbd",     /* ni hao */
    "Stra\xc3\x9f" "e",             /* Strasse with sharp s */
};

/* Spim lures; {u} is the link. Historical MSN/XMPP spim first, then today's phishing. */
static const char *const lures[] = {
    "lol! see it! u'll like it. {u}",
    "who is beside you in this pic {u}",
    "look at my summer pictures {u}",
    "hey, find out who blocked you on msn: {u}",
    "is this you in this video?? {u}",
    "haha look at this pic of you {u}",
    "your account will be suspended, verify your account now at {u}",
    "security alert: unusual sign-in. confirm your password here {u}",
    "free iphone for the first 100 people! claim at {u}",
    "click here to claim your gift card {u}",
    "omg {u} lol",
    "see who visited your profile {u}",
    "cheap viagra pills, no prescription needed {u}",
    "earn $500 a day working from home {u}",
    "you won! claim your prize before midnight {u}",
    "bitcoin doubling, send 0.1 btc get 0.2 back {u}",
};
/* Link shapes in lures; {h} is the spam domain, {d} a number. */
static const char *const lure_links[] = {
    "http://{h}/",
    "http://{h}/pic.php?id={d}",
    "http://{h}/photos{d}.zip",
    "http://www.{h}/?u={d}",
    "https://{h}/login/verify",
    "http://{h}/video{d}.scr",
    "http://{h}/img_{d}.jpg.pif",
    "www.{h}/gift",
    "hxxp://{h}/claim",
    "https://bit.ly/3{w}",
    "http://{h}/profile.php",
    "www[.]{h}/blocked",
};
/* Filler that stretches spim to the target size (spammers do pad to get past length rules). */
static const char *const spim_filler[] = {
    "u'll like it", "dont tell anyone ;)", "only today!", "limited offer", "100% real",
    "it's really you lol", "hurry up", "no joke", "check it before they delete it",
    "this is crazy", "act now", "trust me",
};

static const char *const dom_prefixes[] = {
    "photo", "pics", "msn", "who-blocked", "secure", "verify", "gift", "prize", "free",
    "album", "video", "login", "account", "pharma", "crypto", "promo",
};
static const char *const dom_suffixes[] = {
    "share", "view", "check", "online", "center", "zone", "box", "hub", "land", "now",
    "web", "gallery", "portal", "store", "club", "world",
};
static const char *const dom_tlds[] = {
    "ru", "cn", "info", "biz", "top", "xyz", "tk", "ws", "net", "com", "cc", "su",
};

size_t corpus_spam_domain(uint64_t i, char *buf, size_t cap)
{
    size_t np = N_OF(dom_prefixes), ns = N_OF(dom_suffixes);
    const char *p = dom_prefixes[i % np];
    const char *s = dom_suffixes[(i / np) % ns];
    uint64_t num = i / (np * ns);
    /* The TLD is a function of i too, but it does not take part in telling domains apart:
     * prefix, suffix and number already do. */
    const char *t = dom_tlds[(i * 7 + i / 5) % N_OF(dom_tlds)];
    int n;
    if (num == 0)
        n = snprintf(buf, cap, "%s-%s.%s", p, s, t);
    else
        n = snprintf(buf, cap, "%s-%s%llu.%s", p, s, (unsigned long long)num, t);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

void corpus_config_defaults(struct corpus_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->messages = 100000;
    cfg->msg_bytes = 200;
    cfg->spim_share = 0.1;
    cfg->users = 10000;
    cfg->contacts = 20;
    cfg->bot_share = 0.3;
    cfg->link_share = 0.06;
    cfg->utf8_share = 0.05;
    cfg->spam_domains = 1000;
    cfg->seed = 1;
    cfg->start_ms = 1700000000000ULL;
    cfg->mean_gap_us = 500;
}

/* --- a bounded string builder ------------------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (n > b->cap - b->len)
        n = b->cap - b->len; /* bounded: the caller sized cap for the worst case anyway */
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_putu(struct sbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    sb_putn(b, tmp, (size_t)n);
}

static void sb_token(struct sbuf *b, struct bench_rng *r, size_t n)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (size_t i = 0; i < n; i++) {
        char c = alnum[bench_rng_below(r, sizeof(alnum) - 1)];
        sb_putn(b, &c, 1);
    }
}

#define PICK(r, a) ((a)[bench_rng_below((r), N_OF(a))])

/* Expands a template. {l} and {u} take link (may be NULL: then nothing), {h} takes host. */
static void expand(struct sbuf *b, struct bench_rng *r, const char *tpl, const char *link,
                   const char *host)
{
    for (const char *s = tpl; *s != '\0'; s++) {
        if (s[0] != '{' || s[1] == '\0' || s[2] != '}') {
            sb_putn(b, s, 1);
            continue;
        }
        switch (s[1]) {
        case 'n': sb_puts(b, PICK(r, first_names)); break;
        case 'p': sb_puts(b, PICK(r, places)); break;
        case 't': sb_puts(b, PICK(r, times)); break;
        case 'f': sb_puts(b, PICK(r, foods)); break;
        case 'x': sb_puts(b, PICK(r, things)); break;
        case 'c':
            sb_putu(b, 8 + bench_rng_below(r, 12));
            sb_puts(b, bench_rng_chance(r, 0.5) ? ":30" : ":00");
            break;
        case 'd': sb_putu(b, 1 + bench_rng_below(r, bench_rng_chance(r, 0.7) ? 60 : 999999));
            break;
        case 'w': sb_token(b, r, 8 + bench_rng_below(r, 4)); break;
        case 'l':
        case 'u':
            if (link != NULL)
                sb_puts(b, link);
            break;
        case 'h':
            if (host != NULL)
                sb_puts(b, host);
            break;
        default: sb_putn(b, s, 3); break;
        }
        s += 2;
    }
}

/* Cuts b back to at most max bytes without splitting a UTF-8 sequence, preferring a word
 * boundary at or after min. Never cuts below keep (the lure and its link). */
static void trim_to(struct sbuf *b, size_t min, size_t max, size_t keep)
{
    if (b->len <= max)
        return;
    size_t cut = max < keep ? keep : max;
    if (cut >= b->len)
        return;
    size_t sp = cut;
    while (sp > min && sp > keep && b->p[sp] != ' ')
        sp--;
    if (b->p[sp] == ' ' && sp > min && sp >= keep)
        cut = sp;
    /* back off continuation bytes so the body stays valid UTF-8 */
    while (cut > keep && ((unsigned char)b->p[cut] & 0xC0) == 0x80)
        cut--;
    b->len = cut;
    while (b->len > keep && b->len > 1 && b->p[b->len - 1] == ' ')
        b->len--;
}

/* --- users ----------------------------------------------------------------------------------- */

struct user {
    uint32_t name_off, name_len;
    uint32_t ip_off, ip_len;
};

static uint32_t contact_of(const struct corpus_config *cfg, uint32_t u, uint32_t k)
{
    /* A fixed pseudo-random roster per user; symmetric enough for realistic replies. */
    uint64_t h = (uint64_t)u * 0x9e3779b97f4a7c15ULL + (uint64_t)(k + 1) * 0xc2b2ae3d27d4eb4fULL;
    h ^= h >> 29;
    uint32_t c = (uint32_t)(h % cfg->users);
    return c == u ? (c + 1) % cfg->users : c;
}

/* --- spim bursts ------------------------------------------------------------------------------ */

#define MAX_BURSTS 16

struct burst {
    uint32_t sender;      /* user index, or users + bot index for a bot */
    uint32_t sent, total; /* messages sent so far, and to send */
    bool bot;
    char body[512]; /* same text to everyone; fan-out is exactly what spim looks like */
    size_t body_len;
    bool personalise; /* per-recipient number in the link (fingerprint ignores links) */
};

struct conv {
    uint32_t a, b;
};

/* Conversations running at once. With the default rate (2000 msg/s) and 70% of messages in a
 * running conversation, 2048 of them give each participant ~0.35 msg/s: a brisk human chat. */
#define MAX_CONVS 2048

struct gen {
    const struct corpus_config *cfg;
    struct bench_rng rng;
    struct user *users; /* cfg->users real users + bots */
    uint32_t n_bots;
    char *names;
    size_t names_len, names_cap;
    struct burst bursts[MAX_BURSTS];
    unsigned n_bursts;
    struct conv convs[MAX_CONVS];
    unsigned n_convs;
    char *scratch; /* one body under construction */
    size_t scratch_cap;
};

static int names_add(struct gen *g, const char *s, size_t n, uint32_t *off, uint32_t *len)
{
    if (g->names_len + n > g->names_cap) {
        size_t ncap = g->names_cap * 2 + n + 4096;
        char *p = realloc(g->names, ncap);
        if (p == NULL)
            return -1;
        g->names = p;
        g->names_cap = ncap;
    }
    memcpy(g->names + g->names_len, s, n);
    *off = (uint32_t)g->names_len;
    *len = (uint32_t)n;
    g->names_len += n;
    return 0;
}

static int make_users(struct gen *g)
{
    const struct corpus_config *cfg = g->cfg;
    char tmp[128];
    size_t nf = N_OF(first_names), nl = N_OF(last_names);
    g->n_bots = cfg->users / 50 + 1;
    g->users = calloc((size_t)cfg->users + g->n_bots, sizeof(*g->users));
    if (g->users == NULL)
        return -1;
    for (uint32_t u = 0; u < cfg->users + g->n_bots; u++) {
        int n;
        if (u < cfg->users) {
            uint32_t combo = u / (uint32_t)(nf * nl);
            const char *sep = (u % 3 == 0) ? "." : (u % 3 == 1) ? "_" : "";
            if (combo == 0)
                n = snprintf(tmp, sizeof(tmp), "%s%s%s@%s", first_names[u % nf], sep,
                             last_names[(u / nf) % nl], servers[u % N_OF(servers)]);
            else
                n = snprintf(tmp, sizeof(tmp), "%s%s%s%u@%s", first_names[u % nf], sep,
                             last_names[(u / nf) % nl], combo, servers[u % N_OF(servers)]);
        } else {
            /* bots: throwaway accounts on open-registration servers */
            n = snprintf(tmp, sizeof(tmp), "%s%u@%s", PICK(&g->rng, first_names),
                         (unsigned)bench_rng_below(&g->rng, 100000),
                         servers[bench_rng_below(&g->rng, N_OF(servers))]);
        }
        if (names_add(g, tmp, (size_t)n, &g->users[u].name_off, &g->users[u].name_len) != 0)
            return -1;
        static const unsigned octets[] = {46, 77, 81, 84, 93, 95, 109, 176, 185, 188, 212, 217};
        n = snprintf(tmp, sizeof(tmp), "%u.%u.%u.%u", octets[bench_rng_below(&g->rng, 12)],
                     (unsigned)bench_rng_below(&g->rng, 256),
                     (unsigned)bench_rng_below(&g->rng, 256),
                     (unsigned)(1 + bench_rng_below(&g->rng, 254)));
        if (names_add(g, tmp, (size_t)n, &g->users[u].ip_off, &g->users[u].ip_len) != 0)
            return -1;
    }
    return 0;
}

/* Builds a chat body of target bytes give or take into b; the caller trims to the upper bound.
 * A link, when there is one, stands first or last and is never cut. Returns the length of a
 * leading part that must not be trimmed. */
static size_t chat_body(struct gen *g, struct sbuf *b, size_t target, size_t hi)
{
    const struct corpus_config *cfg = g->cfg;
    struct bench_rng *r = &g->rng;
    char lbuf[256];
    struct sbuf lb = {lbuf, 0, sizeof(lbuf)};
    bool link_first = false;
    size_t keep = 0;

    if (bench_rng_chance(r, cfg->link_share)) {
        char url[160];
        struct sbuf ub = {url, 0, sizeof(url) - 1};
        expand(&ub, r, PICK(r, chat_links), NULL, NULL);
        url[ub.len] = '\0';
        expand(&lb, r, PICK(r, link_intros), url, NULL);
        link_first = bench_rng_chance(r, 0.5);
    }
    bool utf8 = bench_rng_chance(r, cfg->utf8_share);
    size_t utf8_at = utf8 ? bench_rng_below(r, 3) : (size_t)-1;
    size_t room = lb.len > 0 && !link_first ? lb.len + 1 : 0; /* kept for a trailing link */

    if (link_first) {
        sb_putn(b, lbuf, lb.len);
        keep = lb.len;
    }
    for (size_t i = 0; b->len + room < target; i++) {
        if (b->len > 0)
            sb_puts(b, bench_rng_chance(r, 0.3) ? ". " : " ");
        expand(b, r, PICK(r, chat_templates), NULL, NULL);
        if (i == utf8_at) {
            sb_puts(b, " ");
            sb_puts(b, PICK(r, utf8_bits));
        }
    }
    if (room > 0) {
        size_t lo = cfg->msg_bytes - cfg->msg_bytes / 5;
        trim_to(b, lo > room ? lo - room : 0, target > room ? target - room : 0, 0);
        if (b->len > 0)
            sb_puts(b, " ");
        sb_putn(b, lbuf, lb.len);
        keep = b->len; /* all of it: the link is last */
    }
    return keep;
}

static void lure_body(struct gen *g, struct burst *bu)
{
    struct bench_rng *r = &g->rng;
    char host[96];
    char link[192];
    size_t max = g->cfg->msg_bytes + g->cfg->msg_bytes / 5;

    for (int attempt = 0; attempt < 8; attempt++) {
        corpus_spam_domain(bench_rng_below(r, g->cfg->spam_domains), host, sizeof(host));
        struct sbuf lb = {link, 0, sizeof(link) - 1};
        const char *shape = PICK(r, lure_links);
        expand(&lb, r, shape, NULL, host);
        link[lb.len] = '\0';
        struct sbuf b = {bu->body, 0, sizeof(bu->body)};
        expand(&b, r, PICK(r, lures), link, host);
        bu->body_len = b.len;
        bu->personalise = strstr(shape, "{d}") != NULL && bench_rng_chance(r, 0.5);
        if (b.len <= max)
            break;
    }
}

static void start_burst(struct gen *g)
{
    const struct corpus_config *cfg = g->cfg;
    struct bench_rng *r = &g->rng;
    struct burst *bu;

    if (g->n_bursts == MAX_BURSTS)
        g->bursts[bench_rng_below(r, MAX_BURSTS)] = g->bursts[--g->n_bursts];
    bu = &g->bursts[g->n_bursts++];
    bu->bot = bench_rng_chance(r, cfg->bot_share);
    if (bu->bot) {
        bu->sender = cfg->users + (uint32_t)bench_rng_below(r, g->n_bots);
        bu->total = 5 + (uint32_t)bench_rng_below(r, 40);
    } else {
        /* a hijacked account writes to (most of) its roster */
        bu->sender = (uint32_t)bench_rng_below(r, cfg->users);
        bu->total = cfg->contacts / 2 + (uint32_t)bench_rng_below(r, cfg->contacts / 2 + 1);
    }
    bu->sent = 0;
    lure_body(g, bu);
}

/* --- corpus ----------------------------------------------------------------------------------- */

struct corpus *corpus_new(const struct corpus_config *cfg)
{
    struct corpus *c = NULL;
    struct gen g;
    size_t *body_off = NULL;
    size_t bodies_cap, bodies_len = 0;
    uint64_t now_us;

    memset(&g, 0, sizeof(g));
    if (cfg->messages == 0 || cfg->msg_bytes < 16 || cfg->users < 2 || cfg->contacts == 0 ||
        cfg->spam_domains == 0 || !(cfg->spim_share >= 0 && cfg->spim_share <= 1) ||
        !(cfg->bot_share >= 0 && cfg->bot_share <= 1) ||
        !(cfg->link_share >= 0 && cfg->link_share <= 1) ||
        !(cfg->utf8_share >= 0 && cfg->utf8_share <= 1))
        return NULL;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->cfg = *cfg;
    g.cfg = &c->cfg;
    bench_rng_seed(&g.rng, cfg->seed);
    if (make_users(&g) != 0)
        goto fail;

    g.scratch_cap = cfg->msg_bytes * 2 + 1024;
    g.scratch = malloc(g.scratch_cap);
    c->msgs = calloc(cfg->messages, sizeof(*c->msgs));
    body_off = calloc(cfg->messages, sizeof(*body_off));
    bodies_cap = cfg->messages * (cfg->msg_bytes + cfg->msg_bytes / 5 + 16);
    c->bodies = malloc(bodies_cap);
    if (g.scratch == NULL || c->msgs == NULL || body_off == NULL || c->bodies == NULL)
        goto fail;

    now_us = cfg->start_ms * 1000;
    for (size_t i = 0; i < cfg->messages; i++) {
        struct corpus_msg *m = &c->msgs[i];
        struct bench_rng *r = &g.rng;
        struct sbuf b = {g.scratch, 0, g.scratch_cap};
        size_t lo = cfg->msg_bytes - cfg->msg_bytes / 5;
        size_t hi = cfg->msg_bytes + cfg->msg_bytes / 5;
        size_t target = lo + bench_rng_below(r, hi - lo + 1);
        uint32_t from, to;

        if (bench_rng_chance(r, cfg->spim_share)) {
            /* continue a burst, or start one when none runs or to keep several going */
            if (g.n_bursts == 0 || bench_rng_chance(r, 1.0 / cfg->contacts))
                start_burst(&g);
            unsigned bi = (unsigned)bench_rng_below(r, g.n_bursts);
            struct burst *bu = &g.bursts[bi];
            from = bu->sender;
            to = bu->bot ? (uint32_t)bench_rng_below(r, cfg->users)
                         : contact_of(&c->cfg, bu->sender, bu->sent % cfg->contacts);
            sb_putn(&b, bu->body, bu->body_len);
            if (bu->personalise) {
                sb_puts(&b, " ");
                sb_putu(&b, to);
            }
            size_t keep = b.len;
            while (b.len < target) {
                sb_puts(&b, bench_rng_chance(r, 0.5) ? " " : "!! ");
                sb_puts(&b, PICK(r, spim_filler));
            }
            trim_to(&b, lo, target, keep);
            m->spim = true;
            m->stranger = bu->bot;
            c->n_spim++;
            if (++bu->sent >= bu->total)
                g.bursts[bi] = g.bursts[--g.n_bursts];
        } else {
            /* conversations go back and forth; new ones start with a roster contact */
            if (g.n_convs > 0 && bench_rng_chance(r, 0.7)) {
                struct conv *cv = &g.convs[bench_rng_below(r, g.n_convs)];
                bool swap = bench_rng_chance(r, 0.5);
                from = swap ? cv->b : cv->a;
                to = swap ? cv->a : cv->b;
            } else {
                from = (uint32_t)bench_rng_below(r, cfg->users);
                to = contact_of(&c->cfg, from, (uint32_t)bench_rng_below(r, cfg->contacts));
                struct conv *slot = g.n_convs < MAX_CONVS ? &g.convs[g.n_convs++]
                                                          : &g.convs[bench_rng_below(r, MAX_CONVS)];
                slot->a = from;
                slot->b = to;
            }
            size_t keep = chat_body(&g, &b, target, hi);
            trim_to(&b, lo, target, keep);
            m->spim = false;
            m->stranger = false;
        }

        if (b.len > bodies_cap - bodies_len) {
            size_t ncap = bodies_cap * 2 + b.len;
            char *p = realloc(c->bodies, ncap);
            if (p == NULL)
                goto fail;
            c->bodies = p;
            bodies_cap = ncap;
        }
        memcpy(c->bodies + bodies_len, b.p, b.len);
        body_off[i] = bodies_len;
        m->body_len = b.len;
        bodies_len += b.len;
        c->body_bytes += b.len;

        m->sender_len = g.users[from].name_len;
        m->recipient_len = g.users[to].name_len;
        m->ip_len = g.users[from].ip_len;
        /* the names arena is complete (make_users) and no longer moves */
        m->sender = g.names + g.users[from].name_off;
        m->recipient = g.names + g.users[to].name_off;
        m->ip = g.names + g.users[from].ip_off;
        m->now_ms = now_us / 1000;

        /* exponential gaps: Poisson arrivals at the configured mean rate */
        double u = bench_rng_unit(r);
        double gap = -(double)cfg->mean_gap_us * log(1.0 - u);
        now_us += (uint64_t)gap;
    }

    c->n = cfg->messages;
    c->names = g.names;
    g.names = NULL;
    for (size_t i = 0; i < c->n; i++) {
        struct corpus_msg *m = &c->msgs[i];
        m->body = c->bodies + body_off[i];
    }
    c->span_ms = c->msgs[c->n - 1].now_ms - c->msgs[0].now_ms;
    free(body_off);
    free(g.users);
    free(g.scratch);
    return c;

fail:
    free(body_off);
    free(g.users);
    free(g.names);
    free(g.scratch);
    corpus_free(c);
    return NULL;
}

void corpus_free(struct corpus *c)
{
    if (c == NULL)
        return;
    free(c->msgs);
    free(c->bodies);
    free(c->names);
    free(c);
}
