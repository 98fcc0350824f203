/* Listening sockets and the shared per-IP table; see listener.h. */
#include "proxy/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int listener_socket(const struct sockaddr *addr, socklen_t len, const char *text,
                    struct sw_err *err)
{
    int one = 1;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        sw_err_set(err, "socket for %s: %s", text, strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) {
        sw_err_set(err, "setsockopt for %s: %s", text, strerror(errno));
        goto fail;
    }
    if (addr->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, addr, len) == -1) {
        sw_err_set(err, "bind %s: %s", text, strerror(errno));
        goto fail;
    }
    if (listen(fd, 4096) == -1) {
        sw_err_set(err, "listen %s: %s", text, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

#define IPTABLE_SHARDS 64

struct ip_entry {
    uint8_t addr[16]; /* IPv4 as v4-mapped IPv6 */
    uint16_t listener;
    uint32_t count; /* 0 = free slot */
};

struct ip_shard {
    pthread_mutex_t lock;
    unsigned mask; /* slots - 1 */
    unsigned used;
    struct ip_entry *slots;
};

struct iptable {
    struct ip_shard shards[IPTABLE_SHARDS];
};

struct iptable *iptable_new(unsigned capacity)
{
    struct iptable *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    unsigned per = 16;
    while (per * IPTABLE_SHARDS < capacity)
        per <<= 1;
    for (unsigned i = 0; i < IPTABLE_SHARDS; i++) {
        struct ip_shard *s = &t->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->mask = per - 1;
        s->slots = calloc(per, sizeof(*s->slots));
        if (s->slots == NULL) {
            iptable_free(t);
            return NULL;
        }
    }
    return t;
}

void iptable_free(struct iptable *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < IPTABLE_SHARDS; i++) {
        free(t->shards[i].slots);
        pthread_mutex_destroy(&t->shards[i].lock);
    }
    free(t);
}

static void ip_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static uint64_t ip_hash(const uint8_t key[16], unsigned listener)
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ listener) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

/* Slot index of key in s, or of the free slot where it would go; UINT32_MAX if full. */
static unsigned ip_find(struct ip_shard *s, const uint8_t key[16], unsigned listener, uint64_t h)
{
    unsigned i = (unsigned)(h >> 6) & s->mask;
    for (unsigned n = 0; n <= s->mask; n++, i = (i + 1) & s->mask) {
        struct ip_entry *e = &s->slots[i];
        if (e->count == 0 || (e->listener == listener && memcmp(e->addr, key, 16) == 0))
            return i;
    }
    return UINT32_MAX;
}

bool iptable_acquire(struct iptable *t, unsigned listener, const struct sockaddr *sa, unsigned max)
{
    uint8_t key[16];
    ip_key(sa, key);
    uint64_t h = ip_hash(key, listener);
    struct ip_shard *s = &t->shards[h & (IPTABLE_SHARDS - 1)];
    bool ok = false;
    pthread_mutex_lock(&s->lock);
    unsigned i = ip_find(s, key, listener, h);
    if (i != UINT32_MAX) {
        struct ip_entry *e = &s->slots[i];
        if (e->count == 0) {
            /* keep at least one free slot so probes terminate fast */
            if (s->used < s->mask) {
                memcpy(e->addr, key, 16);
                e->listener = (uint16_t)listener;
                e->count = 1;
                s->used++;
                ok = true;
            }
        } else if (max == 0 || e->count < max) {
            e->count++;
            ok = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void iptable_release(struct iptable *t, unsigned listener, const struct sockaddr *sa)
{
    uint8_t key[16];
    ip_key(sa, key);
    uint64_t h = ip_hash(key, listener);
    struct ip_shard *s = &t->shards[h & (IPTABLE_SHARDS - 1)];
    pthread_mutex_lock(&s->lock);
    unsigned i = ip_find(s, key, listener, h);
    if (i != UINT32_MAX && s->slots[i].count > 0 && --s->slots[i].count == 0) {
        /* backward-shift deletion keeps every probe chain unbroken without tombstones */
        s->used--;
        unsigned j = i;
        for (;;) {
            j = (j + 1) & s->mask;
            struct ip_entry *e = &s->slots[j];
            if (e->count == 0)
                break;
            unsigned home = (unsigned)(ip_hash(e->addr, e->listener) >> 6) & s->mask;
            /* move e into the hole at i unless its home lies cyclically in (i, j] */
            bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) {
                s->slots[i] = *e;
                e->count = 0;
                i = j;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
}

char *listener_addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "unknown");
    }
    return buf;
}
