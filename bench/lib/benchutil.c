#include "bench/lib/benchutil.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    /* Both clocks exist on every Linux we support; a failure would be a bug, not input. */
    if (clock_gettime(id, &ts) == -1)
        return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_wall_now(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

double bench_cpu_now(void)
{
    return clock_seconds(CLOCK_THREAD_CPUTIME_ID);
}

void bench_timer_start(struct bench_timer *t)
{
    t->wall_s = 0.0;
    t->cpu_s = 0.0;
    t->cpu0 = bench_cpu_now();
    t->wall0 = bench_wall_now();
}

void bench_timer_stop(struct bench_timer *t)
{
    double wall1 = bench_wall_now();
    double cpu1 = bench_cpu_now();
    t->wall_s = wall1 - t->wall0;
    t->cpu_s = cpu1 - t->cpu0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof(*v), cmp_double);
    if (n % 2 == 1)
        return v[n / 2];
    return (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double bench_max(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i] > m)
            m = v[i];
    return m;
}

void bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
    r->s = seed ^ 0x6a09e667f3bcc909ULL;
}

uint64_t bench_rng_next(struct bench_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t bench_rng_below(struct bench_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift; the tiny bias is irrelevant for test data. */
    return (uint64_t)(((unsigned __int128)bench_rng_next(r) * n) >> 64);
}

double bench_rng_unit(struct bench_rng *r)
{
    return (double)(bench_rng_next(r) >> 11) * 0x1.0p-53;
}

bool bench_rng_chance(struct bench_rng *r, double p)
{
    return bench_rng_unit(r) < p;
}

bool bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool bench_parse_double(const char *s, double min, double max, double *out)
{
    if (s == NULL || *s == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

size_t bench_parse_u64_list(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                            size_t cap)
{
    size_t n = 0;
    char tok[32];
    const char *p = s;
    if (s == NULL || *s == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof(tok) || n == cap)
            return 0;
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (!bench_parse_u64(tok, min, max, &out[n]))
            return 0;
        n++;
        if (comma == NULL)
            return n;
        p = comma + 1;
    }
}

int bench_read_file(const char *path, char **out, size_t *len)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t cap = 0, used = 0;
    int saved;

    f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    for (;;) {
        if (cap - used < 4096) {
            size_t ncap = cap == 0 ? 65536 : cap * 2;
            char *nbuf = realloc(buf, ncap + 1);
            if (nbuf == NULL) {
                errno = ENOMEM;
                goto fail;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + used, 1, cap - used, f);
        used += got;
        if (got == 0) {
            if (ferror(f)) {
                errno = EIO;
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    buf[used] = '\0';
    *out = buf;
    *len = used;
    return 0;

fail:
    saved = errno;
    free(buf);
    fclose(f);
    errno = saved;
    return -1;
}

/* --- JSON lines ------------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static void json_put(struct bench_json *j,
                                                           const char *fmt, ...)
{
    if (j->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->buf + j->len, sizeof(j->buf) - j->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(j->buf) - j->len) {
        j->overflow = true;
        return;
    }
    j->len += (size_t)n;
}

static void json_key(struct bench_json *j, const char *key)
{
    if (j->depth == 0 || j->depth > BENCH_JSON_DEPTH) {
        j->overflow = true; /* member outside any object: caller bug */
        return;
    }
    if (!j->first[j->depth - 1])
        json_put(j, ",");
    j->first[j->depth - 1] = false;
    json_put(j, "\"%s\":", key);
}

void bench_json_begin(struct bench_json *j)
{
    j->len = 0;
    j->buf[0] = '\0';
    j->overflow = false;
    j->depth = 1;
    j->first[0] = true;
    json_put(j, "{");
}

void bench_json_str(struct bench_json *j, const char *key, const char *val)
{
    json_key(j, key);
    json_put(j, "\"");
    for (const unsigned char *p = (const unsigned char *)val; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            json_put(j, "\\%c", *p);
        else if (*p < 0x20)
            json_put(j, "\\u%04x", *p);
        else
            json_put(j, "%c", *p);
    }
    json_put(j, "\"");
}

void bench_json_u64(struct bench_json *j, const char *key, uint64_t val)
{
    json_key(j, key);
    json_put(j, "%llu", (unsigned long long)val);
}

void bench_json_double(struct bench_json *j, const char *key, double val)
{
    json_key(j, key);
    if (!isfinite(val))
        json_put(j, "null");
    else
        json_put(j, "%.6g", val);
}

void bench_json_bool(struct bench_json *j, const char *key, bool val)
{
    json_key(j, key);
    json_put(j, "%s", val ? "true" : "false");
}

void bench_json_object_begin(struct bench_json *j, const char *key)
{
    json_key(j, key);
    json_put(j, "{");
    if (j->depth >= BENCH_JSON_DEPTH) {
        j->overflow = true;
        return;
    }
    j->first[j->depth] = true;
    j->depth++;
}

void bench_json_object_end(struct bench_json *j)
{
    if (j->depth <= 1) {
        j->overflow = true;
        return;
    }
    j->depth--;
    json_put(j, "}");
}

int bench_json_end(struct bench_json *j, FILE *f)
{
    json_put(j, "}");
    if (j->overflow || j->depth != 1)
        return -1;
    j->depth = 0;
    if (fprintf(f, "%s\n", j->buf) < 0 || fflush(f) == EOF)
        return -1;
    return 0;
}
