/* The embedded reputation cache (see reputation.h for the contract, docs/reputation.md for the
 * design and the window semantics).
 *
 * Layout: one block allocated by rep_new and never resized:
 *
 *   [struct rep + LC table][shard 0 .. shard S-1 (64 B each)][buckets of shard 0][...]...
 *
 *   bucket (512 B = 8 cache lines):
 *   +--------------------------------+------+
 *   | key[0..6] (7 x u64)            | lru  |   line 0: the only line a probe reads
 *   +--------------------------------+------+
 *   | entry 0 (64 B: counters or spread sketch)     line 1
 *   | ...                                           ...
 *   | entry 6                                       line 7
 *
 * A probe hashes the key to a shard (one lock) and a bucket, compares the seven keys of the tag
 * line, and touches one entry line: two cache lines per operation whatever the table size. A
 * full bucket evicts the least recently used way; recency is a permutation of the seven way
 * numbers kept as nibbles in `lru` (nibble 0 = most recent). Ways holding an active quarantine
 * or spam history are flagged in `lru` too and evicted only when the whole bucket is flagged
 * (see slot_protect).
 *
 * Locking: one test-and-test-and-set spinlock per shard. Critical sections are a handful of
 * compares and one entry update: no allocation, no system call, no unbounded loop. That is
 * far shorter than a futex sleep/wake, and uncontended the spinlock costs one atomic exchange
 * and one plain release store. A waiter that spins too long yields the CPU, so a holder that
 * was preempted does not make the others burn a whole time slice. Each shard header (lock,
 * stats) fills its own cache line, so shards do not false-share. */
#include "matcher/reputation.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "matcher/hash.h"

#define REP_WAYS 7
#define REP_LRU_INIT 0x6543210ull /* nibble k holds way k: all empty, any order will do */
#define REP_PROTECT_SHIFT 32      /* lru bits 0-27: recency order; bits 32-38: protected ways */
#define REP_MIN_SHARD_BUCKETS 16
#define REP_LINE 64
#define REP_HUGE_PAGE ((size_t)2 << 20)

/* Spread sketch geometry (see struct rep_spread). */
#define REP_SPARSE_MAX 28
#define REP_DENSE_WORDS 7
#define REP_DENSE_BITS (REP_DENSE_WORDS * 32)
#define REP_EPOCH_MASK 0x7fffffffu
#define REP_EPOCH_DENSE 0x80000000u

/* Kinds are mixed into every key so that a sender and a domain with equal hashes never share
 * an entry. */
enum rep_kind {
    REP_KIND_SENDER,
    REP_KIND_IP,
    REP_KIND_DOMAIN,
    REP_KIND_FINGERPRINT,
    REP_KIND_PAIR,
    REP_KIND_COUNT
};

static const uint64_t rep_kind_salt[REP_KIND_COUNT] = {
    0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull,
    0x082efa98ec4e6c89ull, 0x452821e638d01377ull,
};

/* Sender, IP and domain entries. Times are the last update of each decayed value; a domain
 * uses only the spam pair. */
struct rep_counters {
    double rate;
    uint64_t rate_ms;
    double spam;
    uint64_t spam_ms;
    uint64_t quarantine_until_ms;
};

/* Distinct-count sketch over the current and the previous epoch (epoch = now / window).
 *
 * sparse (exact): tag[] holds up to 28 distinct 16-bit item tags, packed from index 0; bit i of
 *   `cur` says tag i was seen in the current epoch (else only in the previous one).
 * dense (estimate): bits[0] is the current epoch's 224-bit bitmap, bits[1] the previous one;
 *   the count is linear counting over their union. Entered when a 29th distinct tag arrives,
 *   left when both epochs have expired. A tag maps to bit (tag * 224) >> 16, so the sparse to
 *   dense conversion is consistent with later insertions. */
struct rep_spread {
    uint32_t epoch; /* low 31 bits: epoch of the current set; REP_EPOCH_DENSE: dense mode */
    uint32_t cur;
    union {
        uint16_t tag[REP_SPARSE_MAX];
        uint32_t bits[2][REP_DENSE_WORDS];
    } u;
};

union rep_entry {
    struct rep_counters c;
    struct rep_spread s;
    unsigned char raw[REP_LINE];
};

struct rep_bucket {
    uint64_t key[REP_WAYS]; /* 0: empty */
    uint64_t lru;           /* recency order and protected ways, see lru_touch and slot_get */
    union rep_entry e[REP_WAYS];
};

struct rep_shard {
    atomic_uint lock;
    uint32_t nbuckets;
    struct rep_bucket *buckets;
    /* under lock */
    uint64_t used, hits, misses, evictions;
    unsigned char pad[REP_LINE - 48];
};

struct rep {
    struct rep_shard *shards;
    uint32_t shard_mask;
    uint32_t window_ms;
    double inv_window;
    double inv_rate_hl;
    double inv_spam_hl;
    uint64_t capacity;
    size_t bytes;
    struct rep_bucket *bucket0;      /* the first bucket of shard 0; buckets are contiguous */
    uint64_t *history;               /* one bit per bucket: some way of it is protected (see
                                      * history_maybe); written under the bucket's shard lock with
                                      * atomic read-modify-writes (a word spans shards), read without */
    uint16_t lc[REP_DENSE_BITS + 1]; /* linear-counting estimate by number of set bits */
};

_Static_assert(sizeof(union rep_entry) == REP_LINE, "an entry is one cache line");
_Static_assert(sizeof(struct rep_spread) == REP_LINE, "the sketch fills the entry");
_Static_assert(sizeof(struct rep_bucket) == 8 * REP_LINE, "a bucket is eight lines");
_Static_assert(sizeof(struct rep_shard) == REP_LINE, "a shard header is one line");

void rep_config_defaults(struct rep_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_bytes = (size_t)64 << 20;
    cfg->shards = 64;
    cfg->window_ms = 60u * 1000u;
    cfg->rate_half_life_ms = 10u * 1000u;
    cfg->spam_half_life_ms = 6u * 3600u * 1000u;
}

static size_t rep_round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

struct rep *rep_new(const struct rep_config *cfg, struct sw_err *err)
{
    struct rep *rep = NULL;
    unsigned shards = cfg->shards == 0 ? 64 : cfg->shards;

    if (cfg->max_bytes < REP_MIN_BYTES) {
        sw_err_set(err, "reputation: max_bytes must be at least %zu (got %zu)", REP_MIN_BYTES,
                   cfg->max_bytes);
        goto fail;
    }
    if (shards > REP_MAX_SHARDS) {
        sw_err_set(err, "reputation: shards must be 1..%u (got %u)", REP_MAX_SHARDS, shards);
        goto fail;
    }
    if (cfg->window_ms == 0 || cfg->rate_half_life_ms == 0 || cfg->spam_half_life_ms == 0) {
        sw_err_set(err, "reputation: window and half-lives must be non-zero");
        goto fail;
    }
    unsigned p2 = 1;
    while (p2 < shards)
        p2 <<= 1;
    shards = p2;

    size_t head = rep_round_up(sizeof(struct rep), REP_LINE);
    size_t avail = cfg->max_bytes - head; /* max_bytes >= 64 KiB > head */
    /* the history bitmap: one bit for each bucket there could be, a 4097th of the rest */
    size_t hist_bytes = rep_round_up(avail / sizeof(struct rep_bucket) / 8 + 8, REP_LINE);
    avail -= hist_bytes;
    head += hist_bytes;
    size_t min_shard = sizeof(struct rep_shard) + REP_MIN_SHARD_BUCKETS * sizeof(struct rep_bucket);
    while (shards > 1 && avail / shards < min_shard)
        shards >>= 1;
    size_t per_shard = (avail / shards - sizeof(struct rep_shard)) / sizeof(struct rep_bucket);
    if (per_shard > UINT32_MAX)
        per_shard = UINT32_MAX;
    size_t total =
        head + shards * (sizeof(struct rep_shard) + per_shard * sizeof(struct rep_bucket));

    /* Big tables are aligned for transparent huge pages: every probe lands on a random page,
     * and with 4 KiB pages most of them would also miss the TLB. */
    size_t align = total >= REP_HUGE_PAGE ? REP_HUGE_PAGE : REP_LINE;
    void *block = NULL;
    if (posix_memalign(&block, align, total) != 0) {
        sw_err_set(err, "reputation: out of memory (%zu bytes)", total);
        goto fail;
    }
    unsigned char *mem = block;
#ifdef MADV_HUGEPAGE
    if (align == REP_HUGE_PAGE)
        (void)madvise(mem, total / REP_HUGE_PAGE * REP_HUGE_PAGE, MADV_HUGEPAGE); /* a hint */
#endif
    /* Touch every page now: the table is bounded and owned up front, not faulted in on the
     * data path. */
    memset(mem, 0, total);
    rep = (struct rep *)mem;
    rep->history = (uint64_t *)(mem + rep_round_up(sizeof(struct rep), REP_LINE));
    rep->shards = (struct rep_shard *)(mem + head);
    rep->shard_mask = shards - 1;
    rep->window_ms = cfg->window_ms;
    rep->inv_window = 1.0 / cfg->window_ms;
    rep->inv_rate_hl = 1.0 / cfg->rate_half_life_ms;
    rep->inv_spam_hl = 1.0 / cfg->spam_half_life_ms;
    rep->capacity = (uint64_t)shards * per_shard * REP_WAYS;
    rep->bytes = total;
    for (unsigned ones = 0; ones <= REP_DENSE_BITS; ones++) {
        /* a full bitmap reads as half a zero bit: large, finite, never 0 */
        double z = ones == REP_DENSE_BITS ? 0.5 : (double)(REP_DENSE_BITS - ones);
        double n = -(double)REP_DENSE_BITS * log(z / REP_DENSE_BITS);
        rep->lc[ones] = (uint16_t)lround(n);
    }
    struct rep_bucket *b = (struct rep_bucket *)(mem + head + shards * sizeof(struct rep_shard));
    rep->bucket0 = b;
    for (unsigned i = 0; i < shards; i++) {
        struct rep_shard *sh = &rep->shards[i];
        atomic_init(&sh->lock, 0);
        sh->nbuckets = (uint32_t)per_shard;
        sh->buckets = b;
        for (size_t j = 0; j < per_shard; j++)
            b[j].lru = REP_LRU_INIT;
        b += per_shard;
    }
    return rep;

fail:
    return NULL;
}

void rep_free(struct rep *rep)
{
    free(rep);
}

/* --- locking ------------------------------------------------------------------------------ */

static inline void rep_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void shard_lock(struct rep_shard *sh)
{
    for (;;) {
        if (atomic_exchange_explicit(&sh->lock, 1, memory_order_acquire) == 0)
            return;
        unsigned spins = 0;
        while (atomic_load_explicit(&sh->lock, memory_order_relaxed) != 0) {
            rep_cpu_relax();
            if (++spins == 256) {
                sched_yield();
                spins = 0;
            }
        }
    }
}

static inline void shard_unlock(struct rep_shard *sh)
{
    atomic_store_explicit(&sh->lock, 0, memory_order_release);
}

/* --- probing ------------------------------------------------------------------------------ */

struct rep_slot {
    uint64_t key;
    struct rep_shard *sh;
    struct rep_bucket *b;
};

/* Locates the bucket of (kind, raw). raw must be non-zero. */
static inline void rep_slot_of(const struct rep *rep, enum rep_kind kind, uint64_t raw,
                               struct rep_slot *s)
{
    uint64_t k = sw_hash_mix(raw ^ rep_kind_salt[kind]);
    if (k == 0)
        k = 1;
    s->key = k;
    s->sh = &rep->shards[(uint32_t)(k >> 40) & rep->shard_mask];
    s->b = &s->sh->buckets[((k & 0xffffffffull) * s->sh->nbuckets) >> 32];
}

/* Locates the bucket of (kind, raw) and starts fetching its tag line. raw must be non-zero.
 * The helpers that prefetch are always_inline: GCC finds a function whose only effect is a
 * prefetch "pure" and deletes calls to it whose result is unused (matcher.c's fcache_prefetch
 * lost its prefetches that way). */
__attribute__((always_inline)) static inline void
rep_locate(const struct rep *rep, enum rep_kind kind, uint64_t raw, struct rep_slot *s)
{
    rep_slot_of(rep, kind, raw, s);
    __builtin_prefetch(s->b, 1, 3);
}

/* --- the history bitmap ------------------------------------------------------------------- */

/* Bit i of rep->history is set while some way of bucket i is protected (lru bits
 * REP_PROTECT_SHIFT..+6): it holds spam history of at least REP_HISTORY_MIN or an active
 * quarantine. A domain or source-address entry whose spam history is at least REP_HISTORY_MIN
 * is always protected (add_spam sets the flag; only a probe that finds less, and then drops it
 * (history_at()), or an eviction clears it), so a clear bit proves that no domain or source
 * address of the bucket has history worth reading (senders are never read this way), and the
 * look-ups that only read history (domains, source addresses of rep_msg.ip_history_only) skip
 * the bucket: no miss, no lock. A set bit can be stale (the history decayed since its last
 * probe); that costs a probe, as without the bitmap. 16 KiB per 64 MiB of table. */
static inline bool history_maybe(const struct rep *rep, const struct rep_slot *s)
{
    size_t i = (size_t)(s->b - rep->bucket0);
    return (__atomic_load_n(&rep->history[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

/* Stores a bucket's new recency word and keeps its history bit in step. Under the lock. */
static inline void lru_store(struct rep *rep, struct rep_bucket *b, uint64_t lru)
{
    const uint64_t protect = (uint64_t)((1u << REP_WAYS) - 1) << REP_PROTECT_SHIFT;
    bool was = (b->lru & protect) != 0, is = (lru & protect) != 0;
    __atomic_store_n(&b->lru, lru, __ATOMIC_RELAXED);
    if (was != is) {
        size_t i = (size_t)(b - rep->bucket0);
        uint64_t bit = 1ull << (i % 64);
        if (is)
            __atomic_fetch_or(&rep->history[i / 64], bit, __ATOMIC_RELAXED);
        else
            __atomic_fetch_and(&rep->history[i / 64], ~bit, __ATOMIC_RELAXED);
    }
}

/* Moves way to the front of the bucket's recency order. */
static inline void lru_touch(struct rep_bucket *b, unsigned way)
{
    uint64_t lru = b->lru;
    unsigned pos = 0;
    while (pos < REP_WAYS - 1 && ((lru >> (4 * pos)) & 0xf) != way)
        pos++;
    uint64_t below = pos == 0 ? 0 : lru & ((1ull << (4 * pos)) - 1);
    uint64_t above = lru & ~((1ull << (4 * (pos + 1))) - 1);
    __atomic_store_n(&b->lru, above | (below << 4) | way, __ATOMIC_RELAXED);
}

/* Second prefetch stage, before the lock: reads the tag line (fetched by rep_locate) without the
 * lock and starts fetching the entry line the probe will most likely touch, so the entry misses
 * of all keys of a message overlap too. A stale guess costs a wasted prefetch, nothing else;
 * keys and lru are written with relaxed atomic stores so that this read is not a data race. */
__attribute__((always_inline)) static inline void rep_prefetch_entry(const struct rep_slot *s)
{
    const struct rep_bucket *b = s->b;
    unsigned way = REP_WAYS, empty = REP_WAYS;
    for (unsigned w = 0; w < REP_WAYS; w++) {
        uint64_t k = __atomic_load_n(&b->key[w], __ATOMIC_RELAXED);
        if (k == s->key) {
            way = w;
            break;
        }
        if (k == 0 && empty == REP_WAYS)
            empty = w;
    }
    if (way == REP_WAYS)
        way = empty != REP_WAYS
                  ? empty
                  : (unsigned)(__atomic_load_n(&b->lru, __ATOMIC_RELAXED) >> (4 * (REP_WAYS - 1))) &
                        0xf;
    __builtin_prefetch(&b->e[way], 1, 3);
}

/* Finds the entry of s->key under the shard lock; with create, claims an empty or the least
 * recently used way and zeroes it (*fresh = true). NULL if absent and !create. */
static union rep_entry *slot_get(struct rep *rep, struct rep_slot *s, bool create, bool *fresh)
{
    struct rep_bucket *b = s->b;
    struct rep_shard *sh = s->sh;
    unsigned empty = REP_WAYS;

    *fresh = false;
    for (unsigned w = 0; w < REP_WAYS; w++) {
        if (b->key[w] == s->key) {
            sh->hits++;
            lru_touch(b, w);
            return &b->e[w];
        }
        if (b->key[w] == 0 && empty == REP_WAYS)
            empty = w;
    }
    sh->misses++;
    if (!create)
        return NULL;
    unsigned way = empty;
    if (way == REP_WAYS) {
        /* the least recently used way that is not protected, else the least recently used */
        uint64_t lru = b->lru;
        way = (unsigned)(lru >> (4 * (REP_WAYS - 1))) & 0xf;
        for (int pos = REP_WAYS - 1; pos >= 0; pos--) {
            unsigned w = (unsigned)(lru >> (4 * pos)) & 0xf;
            if (!(lru & (1ull << (REP_PROTECT_SHIFT + w)))) {
                way = w;
                break;
            }
        }
        lru_store(rep, b, lru & ~(1ull << (REP_PROTECT_SHIFT + way)));
        sh->evictions++;
    } else {
        sh->used++;
    }
    __atomic_store_n(&b->key[way], s->key, __ATOMIC_RELAXED);
    lru_touch(b, way);
    memset(&b->e[way], 0, sizeof(b->e[way]));
    *fresh = true;
    return &b->e[way];
}

/* Marks the entry e of slot s as worth keeping (an active quarantine or spam history): eviction
 * passes over protected ways while the bucket has an unprotected one, so the churn of one-off
 * fingerprint and pair entries cannot flush the few senders the cache must remember. */
static inline void slot_protect(struct rep *rep, struct rep_slot *s, const union rep_entry *e,
                                bool on)
{
    unsigned way = (unsigned)(e - s->b->e);
    uint64_t bit = 1ull << (REP_PROTECT_SHIFT + way);
    uint64_t lru = s->b->lru;
    if (((lru & bit) != 0) != on)
        lru_store(rep, s->b, on ? lru | bit : lru & ~bit);
}

/* --- decay -------------------------------------------------------------------------------- */

/* 2^-x for x >= 0, relative error below 1e-6: 2^-x = 2^-i * 2^(0.5 - f) * 2^-0.5 with
 * x = i + f, the middle factor by a degree-6 Taylor series of e^t on |t| <= 0.35. */
static inline double rep_exp2_neg(double x)
{
    if (!(x < 1000.0))
        return x >= 1000.0 ? 0.0 : 1.0; /* far past: gone; NaN: leave the value alone */
    unsigned i = (unsigned)x;
    double t = (0.5 - (x - (double)i)) * 0.6931471805599453;
    double p =
        1.0 + t * (1.0 + t * (0.5 + t * (1.0 / 6 + t * (1.0 / 24 + t * (1.0 / 120 + t / 720)))));
    uint64_t bits = (uint64_t)(1023u - i) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * 0.7071067811865476 * scale;
}

/* The value v last updated at *ts, decayed to now; *ts moves to now. Time going backwards (a
 * replay out of order) decays nothing and leaves *ts where it was. */
static inline double decay_to(double v, uint64_t *ts, uint64_t now, double inv_hl)
{
    if (now <= *ts)
        return v;
    if (v != 0)
        v *= rep_exp2_neg((double)(now - *ts) * inv_hl);
    *ts = now;
    return v;
}

/* Read-only variant for lookups that must not move the time stamp. */
static inline double decay_peek(double v, uint64_t ts, uint64_t now, double inv_hl)
{
    if (now <= ts || v == 0)
        return v;
    return v * rep_exp2_neg((double)(now - ts) * inv_hl);
}

/* --- spread sketch ------------------------------------------------------------------------ */

static inline uint16_t spread_tag(uint64_t item)
{
    /* Fibonacci hashing: even small sequential ids get distinct top bits */
    uint16_t t = (uint16_t)((item * 0x9e3779b97f4a7c15ull) >> 48);
    return t == 0 ? 1 : t;
}

static inline unsigned dense_bit(uint16_t tag)
{
    return ((unsigned)tag * REP_DENSE_BITS) >> 16;
}

/* Portable popcount: without -mpopcnt __builtin_popcount is a library call. */
static inline unsigned rep_popcount32(uint32_t v)
{
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0f0f0f0fu;
    return (v * 0x01010101u) >> 24;
}

static void spread_reset(struct rep_spread *s, uint32_t epoch)
{
    memset(s, 0, sizeof(*s));
    s->epoch = epoch;
}

/* Brings the sketch to epoch: one step makes the current set the previous one, more clear it.
 * An epoch behind the stored one (time went backwards) counts into the current set. */
static void spread_rotate(struct rep_spread *s, uint32_t epoch)
{
    uint32_t stored = s->epoch & REP_EPOCH_MASK;
    uint32_t d = (epoch - stored) & REP_EPOCH_MASK;

    if (d == 0 || d > (REP_EPOCH_MASK >> 1))
        return;
    if (d > 1) {
        spread_reset(s, epoch);
        return;
    }
    if (s->epoch & REP_EPOCH_DENSE) {
        uint32_t any = 0;
        for (unsigned i = 0; i < REP_DENSE_WORDS; i++) {
            s->u.bits[1][i] = s->u.bits[0][i];
            s->u.bits[0][i] = 0;
            any |= s->u.bits[1][i];
        }
        if (any == 0)
            spread_reset(s, epoch);
        else
            s->epoch = epoch | REP_EPOCH_DENSE;
        return;
    }
    /* sparse: keep the tags seen in the ending epoch, compacted; they are all "previous" now */
    unsigned n = 0;
    for (unsigned i = 0; i < REP_SPARSE_MAX && s->u.tag[i] != 0; i++) {
        if (s->cur & (1u << i))
            s->u.tag[n++] = s->u.tag[i];
    }
    for (unsigned i = n; i < REP_SPARSE_MAX; i++)
        s->u.tag[i] = 0;
    s->cur = 0;
    s->epoch = epoch;
}

static void spread_to_dense(struct rep_spread *s)
{
    uint32_t bits[2][REP_DENSE_WORDS] = {{0}};
    for (unsigned i = 0; i < REP_SPARSE_MAX; i++) {
        unsigned bit = dense_bit(s->u.tag[i]);
        unsigned which = (s->cur & (1u << i)) ? 0 : 1;
        bits[which][bit >> 5] |= 1u << (bit & 31);
    }
    memcpy(s->u.bits, bits, sizeof(bits));
    s->cur = 0;
    s->epoch |= REP_EPOCH_DENSE;
}

/* Adds item (0: count only) in epoch and returns the distinct count over both epochs. */
static uint32_t spread_add(const struct rep *rep, struct rep_spread *s, uint32_t epoch,
                           uint64_t item)
{
    spread_rotate(s, epoch);
    if (!(s->epoch & REP_EPOCH_DENSE)) {
        uint16_t tag = item != 0 ? spread_tag(item) : 0;
        unsigned i = 0;
        for (; i < REP_SPARSE_MAX && s->u.tag[i] != 0; i++) {
            if (s->u.tag[i] == tag) {
                s->cur |= 1u << i;
                tag = 0;
            }
        }
        if (tag == 0)
            return i;
        if (i < REP_SPARSE_MAX) {
            s->u.tag[i] = tag;
            s->cur |= 1u << i;
            return i + 1;
        }
        spread_to_dense(s);
    }
    if (item != 0) {
        unsigned bit = dense_bit(spread_tag(item));
        s->u.bits[0][bit >> 5] |= 1u << (bit & 31);
    }
    unsigned ones = 0;
    for (unsigned i = 0; i < REP_DENSE_WORDS; i++)
        ones += rep_popcount32(s->u.bits[0][i] | s->u.bits[1][i]);
    return rep->lc[ones];
}

/* --- operations --------------------------------------------------------------------------- */

static inline uint32_t rep_epoch(const struct rep *rep, uint64_t now)
{
    /* now / window without a division: the reciprocal gives the quotient within one, and one
     * multiplication puts it right, so epoch boundaries are exact */
    double q = (double)now * rep->inv_window;
    uint64_t e = q < 1.8e19 ? (uint64_t)q : now / rep->window_ms;
    uint64_t start = e * rep->window_ms;
    if (start > now)
        e--;
    else if (now - start >= rep->window_ms)
        e++;
    return (uint32_t)e & REP_EPOCH_MASK;
}

/* A look-up that only reads spam history (a domain, or a source address of
 * rep_msg.ip_history_only): locates the bucket and starts fetching its tag line if the history
 * bitmap says it may hold such history; otherwise leaves s->b NULL, and the look-up is over. */
__attribute__((always_inline)) static inline void
locate_history(const struct rep *rep, enum rep_kind kind, uint64_t raw, struct rep_slot *s)
{
    rep_slot_of(rep, kind, raw, s);
    if (history_maybe(rep, s))
        __builtin_prefetch(s->b, 1, 3);
    else
        s->b = NULL;
}

/* The spam history of a domain or source-address entry at now, decayed; history below
 * REP_HISTORY_MIN reads as none and is dropped, so that a later look-up at an earlier time (a
 * replay out of order), which the bucket's cleared bit may skip, reads the same 0 when it
 * probes. Under the lock. */
static double history_at(const struct rep *rep, struct rep_counters *c, uint64_t now)
{
    double v = decay_peek(c->spam, c->spam_ms, now, rep->inv_spam_hl);
    if (v >= REP_HISTORY_MIN)
        return v;
    c->spam = 0;
    return 0;
}

/* The decayed spam history of the entry in s (located by locate_history()), 0 if it has none.
 * History below REP_HISTORY_MIN reads as none and is dropped: what the bitmap may skip must
 * read the same when it is probed. Takes the lock. */
static double read_history(struct rep *rep, struct rep_slot *s, uint64_t now)
{
    bool fresh;
    double v = 0;

    if (s->b == NULL)
        return 0;
    shard_lock(s->sh);
    union rep_entry *e = slot_get(rep, s, false, &fresh);
    if (e != NULL) {
        v = history_at(rep, &e->c, now);
        slot_protect(rep, s, e, v != 0);
    }
    shard_unlock(s->sh);
    return v;
}

/* Locates (and starts fetching the tag lines of) the fingerprint, pair and domain buckets of
 * msg, those it has keys for (domains: those the history bitmap does not rule out): the one
 * place that says how those keys are derived, for rep_observe() and for rep_prefetch_spread(),
 * which must fetch the same buckets. Returns the number of buckets located. */
static inline unsigned locate_spread(const struct rep *rep, const struct rep_msg *msg,
                                     struct rep_slot *fp, struct rep_slot *pair,
                                     struct rep_slot *dom)
{
    unsigned n_dom = msg->n_domains < REP_MAX_DOMAINS ? msg->n_domains : REP_MAX_DOMAINS;
    unsigned n = 0;
    if (msg->fingerprint != 0) {
        rep_locate(rep, REP_KIND_FINGERPRINT, msg->fingerprint, fp);
        n++;
        if (msg->sender != 0) {
            rep_locate(rep, REP_KIND_PAIR, sw_hash_combine(msg->sender, msg->fingerprint), pair);
            n++;
        }
    }
    for (unsigned i = 0; i < n_dom; i++) {
        dom[i].b = NULL;
        if (msg->domains[i] != 0) {
            locate_history(rep, REP_KIND_DOMAIN, msg->domains[i], &dom[i]);
            n += dom[i].b != NULL;
        }
    }
    return n;
}

/* rep_prefetch_entry() of the slots locate_spread() filled. */
__attribute__((always_inline)) static inline void
prefetch_spread_entries(const struct rep_msg *msg, const struct rep_slot *fp,
                        const struct rep_slot *pair, const struct rep_slot *dom)
{
    unsigned n_dom = msg->n_domains < REP_MAX_DOMAINS ? msg->n_domains : REP_MAX_DOMAINS;
    if (msg->fingerprint != 0) {
        rep_prefetch_entry(fp);
        if (msg->sender != 0)
            rep_prefetch_entry(pair);
    }
    for (unsigned i = 0; i < n_dom; i++) {
        if (dom[i].b != NULL)
            rep_prefetch_entry(&dom[i]);
    }
}

void rep_observe(struct rep *rep, const struct rep_msg *msg, struct rep_signals *out)
{
    struct rep_slot sender, ip, fp, pair, dom[REP_MAX_DOMAINS];
    unsigned n_dom = msg->n_domains < REP_MAX_DOMAINS ? msg->n_domains : REP_MAX_DOMAINS;
    uint64_t now = msg->now_ms;
    union rep_entry *e;
    bool fresh;

    memset(out, 0, sizeof(*out));
    /* Issue every bucket fetch first so the cache misses overlap. */
    unsigned n_keys = 0;
    if (msg->sender != 0) {
        rep_locate(rep, REP_KIND_SENDER, msg->sender, &sender);
        n_keys++;
    }
    ip.b = NULL;
    if (msg->ip != 0) {
        if (msg->ip_history_only)
            locate_history(rep, REP_KIND_IP, msg->ip, &ip);
        else
            rep_locate(rep, REP_KIND_IP, msg->ip, &ip);
        n_keys += ip.b != NULL;
    }
    n_keys += locate_spread(rep, msg, &fp, &pair, dom);
    /* The entry lines, when there is more than one key: their misses then overlap. A lone key
     * (a link-free message's sender) has nothing to overlap with; its probe below reads the
     * tag line anyway. */
    if (n_keys > 1) {
        if (msg->sender != 0)
            rep_prefetch_entry(&sender);
        if (ip.b != NULL)
            rep_prefetch_entry(&ip);
        prefetch_spread_entries(msg, &fp, &pair, dom);
    }

    if (msg->sender != 0) {
        shard_lock(sender.sh);
        e = slot_get(rep, &sender, true, &fresh);
        struct rep_counters *c = &e->c;
        if (fresh)
            c->rate_ms = c->spam_ms = now;
        c->rate = decay_to(c->rate, &c->rate_ms, now, rep->inv_rate_hl) + 1.0;
        out->sender_rate = c->rate;
        out->sender_spam = decay_peek(c->spam, c->spam_ms, now, rep->inv_spam_hl);
        out->quarantine_until_ms = c->quarantine_until_ms;
        out->quarantined = now < c->quarantine_until_ms;
        slot_protect(rep, &sender, e, out->quarantined || out->sender_spam >= REP_HISTORY_MIN);
        shard_unlock(sender.sh);
    }
    if (msg->ip != 0 && msg->ip_history_only) {
        out->ip_spam = read_history(rep, &ip, now);
    } else if (msg->ip != 0) {
        shard_lock(ip.sh);
        e = slot_get(rep, &ip, true, &fresh);
        struct rep_counters *c = &e->c;
        if (fresh)
            c->rate_ms = c->spam_ms = now;
        c->rate = decay_to(c->rate, &c->rate_ms, now, rep->inv_rate_hl) + 1.0;
        out->ip_rate = c->rate;
        out->ip_spam = history_at(rep, c, now);
        slot_protect(rep, &ip, e, out->ip_spam != 0);
        shard_unlock(ip.sh);
    }
    if (msg->fingerprint != 0) {
        uint32_t epoch = rep_epoch(rep, now);
        shard_lock(fp.sh);
        e = slot_get(rep, &fp, true, &fresh);
        if (fresh)
            spread_reset(&e->s, epoch);
        out->campaign = spread_add(rep, &e->s, epoch, msg->sender);
        shard_unlock(fp.sh);
        if (msg->sender != 0) {
            shard_lock(pair.sh);
            e = slot_get(rep, &pair, true, &fresh);
            if (fresh)
                spread_reset(&e->s, epoch);
            out->fanout = spread_add(rep, &e->s, epoch, msg->recipient);
            shard_unlock(pair.sh);
        }
    }
    for (unsigned i = 0; i < n_dom; i++) {
        double v = read_history(rep, &dom[i], now);
        if (v > out->domain_spam) {
            out->domain_spam = v;
            out->domain_spam_idx = i;
        }
    }
}

/* The seven entry lines of a bucket whose tag line is on its way (rep_locate()): which way
 * holds the key is not known until the tag line arrives, and the body scan that follows is
 * long enough to cover all eight fetches. */
__attribute__((always_inline)) static inline void prefetch_entry_lines(const struct rep_bucket *b)
{
    for (unsigned w = 0; w < REP_WAYS; w++)
        __builtin_prefetch(&b->e[w], 1, 3);
}

/* The whole bucket of (kind, raw): tag line and entry lines. */
__attribute__((always_inline)) static inline void
rep_prefetch_bucket(const struct rep *rep, enum rep_kind kind, uint64_t raw)
{
    struct rep_slot s;
    rep_locate(rep, kind, raw, &s);
    prefetch_entry_lines(s.b);
}

void rep_prefetch(const struct rep *rep, uint64_t sender)
{
    if (sender != 0)
        rep_prefetch_bucket(rep, REP_KIND_SENDER, sender);
}

void rep_prefetch_spread(const struct rep *rep, const struct rep_msg *msg)
{
    struct rep_slot fp, pair, dom[REP_MAX_DOMAINS], ip; /* rep_locate() starts the fetches */
    locate_spread(rep, msg, &fp, &pair, dom);
    if (msg->ip == 0)
        return;
    if (msg->ip_history_only) {
        locate_history(rep, REP_KIND_IP, msg->ip, &ip);
        if (ip.b != NULL)
            prefetch_entry_lines(ip.b);
    } else {
        rep_prefetch_bucket(rep, REP_KIND_IP, msg->ip);
    }
}

void rep_prefetch_spread_entries(const struct rep *rep, const struct rep_msg *msg)
{
    struct rep_slot fp, pair, dom[REP_MAX_DOMAINS];
    locate_spread(rep, msg, &fp, &pair, dom);
    prefetch_spread_entries(msg, &fp, &pair, dom);
}

/* Adds weight to the spam history of (kind, raw). */
static void add_spam(struct rep *rep, enum rep_kind kind, uint64_t raw, uint64_t now, double weight)
{
    struct rep_slot s;
    bool fresh;

    rep_locate(rep, kind, raw, &s);
    shard_lock(s.sh);
    union rep_entry *e = slot_get(rep, &s, true, &fresh);
    struct rep_counters *c = &e->c;
    if (fresh)
        c->rate_ms = c->spam_ms = now;
    c->spam = decay_to(c->spam, &c->spam_ms, now, rep->inv_spam_hl) + weight;
    slot_protect(rep, &s, e, c->spam >= REP_HISTORY_MIN);
    shard_unlock(s.sh);
}

void rep_report_spam(struct rep *rep, const struct rep_msg *msg, double weight)
{
    unsigned n_dom = msg->n_domains < REP_MAX_DOMAINS ? msg->n_domains : REP_MAX_DOMAINS;

    if (!(weight > 0) || !isfinite(weight))
        return;
    if (msg->sender != 0)
        add_spam(rep, REP_KIND_SENDER, msg->sender, msg->now_ms, weight);
    if (msg->ip != 0)
        add_spam(rep, REP_KIND_IP, msg->ip, msg->now_ms, weight);
    for (unsigned i = 0; i < n_dom; i++) {
        if (msg->domains[i] != 0)
            add_spam(rep, REP_KIND_DOMAIN, msg->domains[i], msg->now_ms, weight);
    }
}

void rep_quarantine(struct rep *rep, uint64_t sender, uint64_t now_ms, uint32_t duration_ms)
{
    struct rep_slot s;
    bool fresh;

    if (sender == 0)
        return;
    uint64_t until = now_ms + duration_ms;
    if (until < now_ms)
        until = UINT64_MAX;
    rep_locate(rep, REP_KIND_SENDER, sender, &s);
    shard_lock(s.sh);
    union rep_entry *e = slot_get(rep, &s, true, &fresh);
    struct rep_counters *c = &e->c;
    if (fresh)
        c->rate_ms = c->spam_ms = now_ms;
    if (until > c->quarantine_until_ms)
        c->quarantine_until_ms = until;
    /* protected while any quarantine is running or it has spam history */
    slot_protect(rep, &s, e,
                 c->quarantine_until_ms > now_ms ||
                     decay_peek(c->spam, c->spam_ms, now_ms, rep->inv_spam_hl) >= REP_HISTORY_MIN);
    shard_unlock(s.sh);
}

void rep_get_stats(struct rep *rep, struct rep_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->capacity = rep->capacity;
    out->bytes = rep->bytes;
    out->shards = (uint64_t)rep->shard_mask + 1;
    for (uint32_t i = 0; i <= rep->shard_mask; i++) {
        struct rep_shard *sh = &rep->shards[i];
        shard_lock(sh);
        out->entries += sh->used;
        out->hits += sh->hits;
        out->misses += sh->misses;
        out->evictions += sh->evictions;
        shard_unlock(sh);
    }
}
