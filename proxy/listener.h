/* Listening sockets and the per-source-address connection table.
 *
 * Sockets: each worker gets its own SO_REUSEPORT socket per listener, all bound on the main
 * thread before privileges drop, and the kernel spreads connections over them.
 *
 * The per-IP table is one of the few structures shared by every worker on purpose (like the
 * metrics counters): a bounded open-addressing table split into shards, each behind its own
 * mutex, touched once at accept and once at close. A full shard refuses new addresses, so the
 * table's memory is fixed by the config (limits.per_ip_table). */
#ifndef SW_PROXY_LISTENER_H
#define SW_PROXY_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protocols/sw_rc.h"

/* Creates a non-blocking SO_REUSEPORT TCP socket bound to addr and listening. Returns the fd,
 * or -1 with err "bind 127.0.0.1:5222: Address already in use". */
int listener_socket(const struct sockaddr *addr, socklen_t len, const char *text,
                    struct sw_err *err);

struct iptable;

/* A table for at most capacity addresses (rounded up). NULL on ENOMEM. */
struct iptable *iptable_new(unsigned capacity);
void iptable_free(struct iptable *t);

/* Counts one connection from sa on listener idx if it has fewer than max (0 = unlimited, still
 * counted). Returns true if admitted; false if at the limit or the table is full. */
bool iptable_acquire(struct iptable *t, unsigned listener, const struct sockaddr *sa, unsigned max);

/* Undoes one successful iptable_acquire with the same arguments. */
void iptable_release(struct iptable *t, unsigned listener, const struct sockaddr *sa);

/* Renders sa as "192.0.2.1:5222" or "[2001:db8::1]:5222" into buf (>= 64 bytes). Returns buf. */
char *listener_addr_str(const struct sockaddr *sa, char *buf, size_t len);

#endif
