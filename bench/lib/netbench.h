/* Helpers shared by the network benchmarks (bench_xmpp.c, bench_msnp.c): a log-bucketed latency
 * histogram, the CPU time of another process, addresses and listening sockets. */
#ifndef SW_BENCH_NETBENCH_H
#define SW_BENCH_NETBENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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

#endif
