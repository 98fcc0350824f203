/* See netbench.h. */
#include "bench/lib/netbench.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/lib/benchutil.h"

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    if (v >= (1ull << BENCH_HIST_MAX_EXP))
        v = (1ull << BENCH_HIST_MAX_EXP) - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned m = (unsigned)(v >> (e - BENCH_HIST_SUB_BITS)) & (BENCH_HIST_SUB - 1);
    return (e - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB + m;
}

static double hist_value(unsigned i)
{
    if (i < BENCH_HIST_SUB)
        return (double)i;
    unsigned e = i / BENCH_HIST_SUB - 1 + BENCH_HIST_SUB_BITS;
    unsigned m = i % BENCH_HIST_SUB;
    double w = (double)(1ull << (e - BENCH_HIST_SUB_BITS));
    return (double)(BENCH_HIST_SUB + m) * w + w / 2;
}

void bench_hist_record(struct bench_hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
}

double bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->count == 0)
        return NAN;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(BENCH_HIST_BUCKETS - 1);
}

void bench_hist_add(struct bench_hist *dst, const struct bench_hist *src)
{
    dst->count += src->count;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

double bench_proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return NAN;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NAN;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return NAN;
    unsigned long long ut = 0, st = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p + 1, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14) {
            ut = strtoull(tok, NULL, 10);
        } else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15)
        return NAN;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

bool bench_parse_hostport(const char *s, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    uint64_t port;
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return false;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (!bench_parse_u64(colon + 1, 0, 65535, &port))
        return false;
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1;
}

int bench_listen_on(const char *hostport, uint16_t *port_out)
{
    struct sockaddr_in sin;
    if (!bench_parse_hostport(hostport, &sin))
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t len = sizeof sin;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 || listen(fd, 1024) == -1 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
        if (fd != -1)
            close(fd);
        return -1;
    }
    *port_out = ntohs(sin.sin_port);
    return fd;
}
