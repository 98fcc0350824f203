/* See netbench.h. */
#include "bench/lib/netbench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/lib/benchutil.h"
#include "matcher/hsdb.h"
#include "matcher/matcher.h"
#include "proxy/ruleload.h"

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

void *bench_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return p;
}

void bench_buf_put(char **buf, size_t *len, size_t *cap, const void *s, size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2 + 4096;
        char *nb = realloc(*buf, *cap);
        if (nb == NULL) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
        *buf = nb;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
}

void bench_stamp_hex(char *p, unsigned phase, uint64_t ts)
{
    static const char hex[] = "0123456789abcdef";
    p[0] = hex[phase >> 4 & 15];
    p[1] = hex[phase & 15];
    for (int k = 15; k >= 0; k--) {
        p[2 + k] = hex[ts & 15];
        ts >>= 4;
    }
}

int bench_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void bench_io_want(struct ev_loop *loop, ev_io *w, int events)
{
    if (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, w);
    ev_io_set(w, w->fd, events);
    ev_io_start(loop, w);
}

int bench_ports_main(const char *prog, int argc, char **argv)
{
    uint64_t n;
    if (argc != 1 || !bench_parse_u64(argv[0], 1, 64, &n)) {
        fprintf(stderr, "usage: %s ports N (1..64)\n", prog);
        return 2;
    }
    int fds[64];
    for (unsigned i = 0; i < n; i++) {
        uint16_t port;
        fds[i] = bench_listen_on("127.0.0.1:0", &port);
        if (fds[i] == -1) {
            fprintf(stderr, "%s ports: %s\n", prog, strerror(errno));
            return 1;
        }
        printf("%u\n", port);
    }
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

struct matcher *bench_matcher_load(const char *prog, const char *conf, size_t *n_rules)
{
    struct sw_err err;
    char rules[4096], lists[4096];
    snprintf(rules, sizeof rules, "%s/rules", conf);
    snprintf(lists, sizeof lists, "%s/lists", conf);
    struct ruleload_opts ro;
    ruleload_opts_init(&ro);
    ro.rules_dir = rules;
    ro.lists_dir = lists;
    struct ruleload_info info;
    struct hsdb *db = ruleload_build(&ro, &info, &err);
    if (db == NULL) {
        fprintf(stderr, "%s: rules: %s\n", prog, err.msg);
        return NULL;
    }
    struct matcher_config mc;
    matcher_config_defaults(&mc);
    mc.reputation = false;
    struct matcher *m = matcher_new(db, &mc, &err);
    hsdb_unref(db);
    if (m == NULL) {
        fprintf(stderr, "%s: matcher: %s\n", prog, err.msg);
        return NULL;
    }
    if (n_rules != NULL)
        *n_rules = info.n_rules;
    return m;
}
