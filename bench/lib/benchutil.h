/* Shared helpers for the benchmarks in bench/: clocks, statistics, option parsing, file reading
 * and one-JSON-object-per-line output.
 *
 * Benchmarks print machine-readable results to stdout, one JSON object per line, and any text
 * meant for humans to stderr, so `bench-x | jq` and the smoke test can parse stdout as is. */
#ifndef SW_BENCH_BENCHUTIL_H
#define SW_BENCH_BENCHUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Seconds on CLOCK_MONOTONIC (wall time, not affected by clock changes). */
double bench_wall_now(void);
/* Seconds of CPU time consumed by the calling thread (CLOCK_THREAD_CPUTIME_ID). Unlike wall
 * time it does not count time the thread spent descheduled, so it is the steadier figure on a
 * machine shared with other work. */
double bench_cpu_now(void);

/* A stopwatch measuring both clocks of the calling thread. */
struct bench_timer {
    double wall0, cpu0;
    double wall_s, cpu_s; /* results of the last bench_timer_stop() */
};
void bench_timer_start(struct bench_timer *t);
void bench_timer_stop(struct bench_timer *t);

/* Median of v[0..n) (sorts v in place). Returns 0 for n == 0. */
double bench_median(double *v, size_t n);
/* Largest of v[0..n). Returns 0 for n == 0. */
double bench_max(const double *v, size_t n);

/* A small deterministic PRNG (splitmix64): the same seed gives the same corpus and rule set on
 * every machine. Not for anything security-related. */
struct bench_rng {
    uint64_t s;
};
void bench_rng_seed(struct bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(struct bench_rng *r);
/* Uniform in [0, n); n must be > 0. */
uint64_t bench_rng_below(struct bench_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double bench_rng_unit(struct bench_rng *r);
/* True with probability p. */
bool bench_rng_chance(struct bench_rng *r, double p);

/* Strict number parsing for command-line options: the whole string must be a number in range.
 * Return true and set *out on success; false otherwise (*out untouched). */
bool bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
bool bench_parse_double(const char *s, double min, double max, double *out);
/* Parses a comma-separated list of unsigned integers ("100,1000,10000") into out[0..cap).
 * Returns the number parsed, or 0 if the list is empty, malformed, out of range or too long. */
size_t bench_parse_u64_list(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                            size_t cap);

/* Reads a whole file into a new malloc'd buffer (*out, caller frees; NUL-terminated for
 * convenience, the terminator is not counted in *len). Returns 0, or -1 with errno set. */
int bench_read_file(const char *path, char **out, size_t *len);

/* A JSON object being built for one output line. Fixed capacity: a line that would not fit is
 * truncated and bench_json_end() reports it rather than printing invalid JSON. Nested objects
 * up to BENCH_JSON_DEPTH. Keys are written as given (callers pass plain ASCII identifiers);
 * string values are escaped. */
#define BENCH_JSON_CAP 4096
#define BENCH_JSON_DEPTH 8

struct bench_json {
    char buf[BENCH_JSON_CAP];
    size_t len;
    unsigned depth;
    bool first[BENCH_JSON_DEPTH]; /* no member written yet at this depth */
    bool overflow;
};

void bench_json_begin(struct bench_json *j);
void bench_json_str(struct bench_json *j, const char *key, const char *val);
void bench_json_u64(struct bench_json *j, const char *key, uint64_t val);
/* Non-finite values are written as null (JSON has no NaN or Infinity). */
void bench_json_double(struct bench_json *j, const char *key, double val);
void bench_json_bool(struct bench_json *j, const char *key, bool val);
void bench_json_object_begin(struct bench_json *j, const char *key);
void bench_json_object_end(struct bench_json *j);
/* Closes the object and writes it plus '\n' to f, then flushes f. Returns 0, or -1 if the line
 * overflowed BENCH_JSON_CAP, nesting was unbalanced, or the write failed (nothing is printed in
 * the first two cases). */
int bench_json_end(struct bench_json *j, FILE *f);

#endif
