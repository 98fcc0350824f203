/* Helpers shared by the network benchmarks (bench_xmpp.c, bench_msnp.c): a log-bucketed latency
 * histogram, the CPU time of another process, addresses and listening sockets. */
#ifndef SW_BENCH_NETBENCH_H
#define SW_BENCH_NETBENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

struct matcher;

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t bench_now_ns(void);

/* Log-bucketed histogram of non-negative integers (1/64 relative error), fixed size, so it can
 * live in a shared mapping. */
#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_MAX_EXP 40
#define BENCH_HIST_BUCKETS ((BENCH_HIST_MAX_EXP - BENCH_HIST_SUB_BITS + 2) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t count;
    uint64_t b[BENCH_HIST_BUCKETS];
};

void bench_hist_record(struct bench_hist *h, uint64_t v);
/* The q-quantile (0 < q <= 1), NAN when empty. */
double bench_hist_quantile(const struct bench_hist *h, double q);
void bench_hist_add(struct bench_hist *dst, const struct bench_hist *src);

/* CPU seconds (user + system, all threads) of pid from /proc/PID/stat (clock ticks), or NAN. */
double bench_proc_cpu_s(pid_t pid);

/* "a.b.c.d:port" into sin; false if malformed. */
bool bench_parse_hostport(const char *s, struct sockaddr_in *sin);

/* A non-blocking listening socket on "a.b.c.d:port" (port 0: any); its port in *port_out.
 * Returns the fd or -1 (errno set). */
int bench_listen_on(const char *hostport, uint16_t *port_out);

/* malloc that exits the program with a message on failure (benchmarks only). */
void *bench_xmalloc(size_t n);

/* Appends s[0..n) to the growable buffer *buf (length *len, capacity *cap); exits on ENOMEM. */
void bench_buf_put(char **buf, size_t *len, size_t *cap, const void *s, size_t n);

/* Writes phase (2 hex digits) and ts (16 hex digits) at p[0..18): the send stamp the network
 * benchmarks put in each message. */
void bench_stamp_hex(char *p, unsigned phase, uint64_t ts);

/* Value of a lower-case hex digit, or -1. */
int bench_hexval(char c);

/* Makes w watch exactly events (EV_READ and/or EV_WRITE), restarting it only if that changes. */
void bench_io_want(struct ev_loop *loop, ev_io *w, int events);

/* The `ports N` sub-command: prints N distinct free TCP ports on 127.0.0.1 (1..64). prog names
 * the program in messages. Returns the exit status. */
int bench_ports_main(const char *prog, int argc, char **argv);

/* A matcher over conf/rules and conf/lists with the reputation cache off (every verdict then
 * follows from the text alone), as the benchmark scripts configure spimwall. Prints the error
 * and returns NULL on failure; *n_rules (if not NULL) gets the number of rules loaded. */
struct matcher *bench_matcher_load(const char *prog, const char *conf, size_t *n_rules);

#endif
