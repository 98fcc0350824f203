/* The daemon's configuration: parsed from a libconfig file, checked, immutable afterwards.
 *
 * Every error names the file and line ("spimwall.conf:12: listeners[0].tls: ...") and unknown
 * keys are errors, so a typo never passes silently. Every bound has a named option with a
 * default (docs/config.md lists them all). A parsed config is owned by one struct runtime
 * (runtime.h) and shared read-only by every worker. */
#ifndef SW_PROXY_CONFIG_H
#define SW_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "matcher/matcher.h"
#include "protocols/sw_rc.h"
#include "proxy/log.h"

#define CONFIG_MAX_LISTENERS 64
#define CONFIG_MAX_CERTS 64
#define CONFIG_MAX_NAMES 64
#define CONFIG_MAX_CIDRS 256
#define CONFIG_MAX_WORKERS 256

enum config_proto {
    CONFIG_PROTO_TCP = 0, /* byte pass-through */
    CONFIG_PROTO_XMPP_C2S,
    CONFIG_PROTO_XMPP_S2S,
    CONFIG_PROTO_MSNP,
};

enum config_tls_mode {
    CONFIG_TLS_NONE = 0,
    CONFIG_TLS_STARTTLS,
    CONFIG_TLS_DIRECT,
};

struct config_cert {
    char **names; /* SNI names (exact, or "*.example.org"); may be empty for the default */
    unsigned n_names;
    char *cert; /* PEM chain file */
    char *key;  /* PEM key file */
    int line;
};

struct config_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order, masked */
    unsigned prefix;
};

struct config_upstream {
    char *address; /* "host:port" as written */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool tls;          /* TLS from the first byte */
    bool starttls;     /* plaintext, then the protocol's STARTTLS (xmpp-c2s) */
    bool verify;       /* default true */
    char *ca_file;     /* NULL = system store */
    char *server_name; /* SNI and expected name; NULL = host part of address */
    bool send_proxy;   /* send a PROXY v2 header first */
};

struct config_limits {
    unsigned max_per_ip;     /* per source address on this listener; 0 = unlimited; default 256 */
    uint32_t buffer_size;    /* bytes per direction; default 16384; 2048..16 MiB */
    uint32_t high_watermark; /* stop reading a side at this many queued bytes; default =
                              * buffer_size; <= buffer_size */
};

struct config_timeouts {
    double connect;   /* TCP connect + upstream TLS handshake; default 10 s */
    double handshake; /* PROXY header + client TLS handshake; default 10 s */
    double idle;      /* no byte either way; default 600 s */
};

/* What a verdict does on a listener (issue 3 "actions"): a monitor-only listener maps drop to
 * tag or pass. Values equal enum verdict_action. */
enum config_action {
    CONFIG_ACTION_PASS = 0,
    CONFIG_ACTION_TAG = 1,
    CONFIG_ACTION_DROP = 2,
};

struct config_actions {
    enum config_action on_tag;  /* tag (default) | pass */
    enum config_action on_drop; /* drop (default) | tag | pass */
    bool bounce;                /* tell the sender of a dropped message; default true */
    char *bounce_text;          /* text of the bounce; NULL = none; <= 256 bytes */
    char *tag_prefix;           /* visible prefix for tagged bodies; NULL = none; <= 64 bytes */
};

#define CONFIG_BOUNCE_TEXT_MAX 256
#define CONFIG_TAG_PREFIX_MAX 64

struct config_xmpp {
    uint32_t stanza_max;      /* bytes of one stanza or stream header; default 262144 */
    unsigned depth_max;       /* element nesting in a stanza; default 32 */
    unsigned roster_max;      /* contacts remembered per session (stranger signal); default 2048 */
    unsigned sm_resume_max;   /* XEP-0198 resumption entries (process-wide table, sized by the
                               * first listener that stores one; power of 2); default 8192 */
    double sm_resume_ttl;     /* seconds an entry waits for <resume/>; default 900 */
    bool judge_local_inbound; /* judge inbound messages from the user's own domain again;
                               * default false (they were judged on the sender's leg) */
};

enum config_msnp_role {
    CONFIG_MSNP_NS = 0, /* notification server connections */
    CONFIG_MSNP_SB,     /* switchboard connections, routed by cookie */
};

enum config_msnp_ack {
    CONFIG_MSNP_NAK = 0, /* answer a dropped A/D/S message with NAK trid */
    CONFIG_MSNP_ACK,     /* ... with ACK trid (the sender believes it was delivered) */
};

struct config_msnp {
    enum config_msnp_role role;
    bool transparent;     /* no XFR/RNG rewriting (gateway mode); default false */
    char *switchboard;    /* "host:port" written into XFR/RNG (role ns, explicit mode) */
    uint32_t line_max;    /* bytes of a command line; default 8192 */
    uint32_t payload_max; /* bytes of a declared payload; default 65536 */
    enum config_msnp_ack drop_ack;
    bool tag_overflow_drop; /* a tag past 1664 bytes drops (true) or passes untagged */
    unsigned cookie_max;    /* switchboard cookies remembered (process-wide); default 65536 */
    double cookie_ttl;      /* seconds a cookie stays valid; default 120 */
    unsigned chunks_max;    /* chunked messages pending reassembly per session; default 16 */
    unsigned oim_entries_max; /* <M> entries judged per OIM notification; default 32 */
    unsigned oim_field_max;   /* bytes of one OIM name, subject, sender or id; default 1024 */
    double resolve_timeout;   /* seconds a switchboard host-name lookup may take; default 5 */
};

struct config_listener {
    char *name;
    enum config_proto proto;
    char *bind; /* as written */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    enum config_tls_mode tls;
    struct config_cert *certs; /* first is the default */
    unsigned n_certs;
    struct config_cidr *proxy_from; /* PROXY v1/v2 required from these, ignored from others */
    unsigned n_proxy_from;
    struct config_upstream upstream;
    struct config_limits limits;
    struct config_timeouts timeouts;
    double tag_threshold, drop_threshold; /* default: matcher's */
    struct config_actions actions;
    struct config_xmpp xmpp; /* xmpp-c2s */
    struct config_msnp msnp; /* msnp */
    int line;
};

struct config_tls {
    char *ciphers;           /* TLS 1.2 cipher list; NULL = OpenSSL default */
    char *ciphersuites;      /* TLS 1.3; NULL = OpenSSL default */
    char *groups;            /* NULL = OpenSSL default */
    int min_version;         /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    bool session_tickets;    /* default true */
    long session_cache_size; /* server session cache entries per context; default 20480 */
    long session_timeout;    /* seconds; default 300 */
};

struct config {
    char *path;
    unsigned workers;         /* 0 in the file = number of cores (resolved at parse) */
    char *user, *group;       /* NULL = keep the current identity */
    double shutdown_grace;    /* seconds; default 30 */
    unsigned max_connections; /* all listeners, all workers; default 100000 */
    unsigned per_ip_table;    /* tracked source addresses; default 65536 */
    bool admin_enabled;       /* default true */
    char *admin_bind;         /* default 127.0.0.1:9464 */
    struct log_config log;
    char *rules_dir, *lists_dir, *rules_cache; /* NULL = none */
    int rules_layout; /* enum hsdb_layout: matcher.databases, "per-target" (default) or "one" */
    struct matcher_config matcher;
    struct config_tls tls;
    struct config_listener *listeners;
    unsigned n_listeners;
};

/* Parses and checks the file at path. Returns a new config (caller frees with config_free),
 * or NULL with err "file:line: reason". Does not read certificates or rules. */
struct config *config_load(const char *path, struct sw_err *err);

/* Same from a string; name is used in error messages. */
struct config *config_load_string(const char *text, const char *name, struct sw_err *err);

/* Frees cfg and everything it owns; NULL is fine. */
void config_free(struct config *cfg);

/* Parses "host:port" or "[v6]:port", numeric only, into *ss and *len.
 * Returns SW_OK or SW_ERROR with err (no location). */
int config_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                      struct sw_err *err);

/* True if sa (AF_INET or AF_INET6; v4-mapped IPv6 is matched as IPv4) lies in one of the
 * n CIDRs. */
bool config_cidr_match(const struct config_cidr *cidrs, unsigned n, const struct sockaddr *sa);

/* Checks that a reload from old to new keeps what needs a restart (listener names, order,
 * protocols, bind addresses, workers, user). SW_OK or SW_ERROR with err naming the change. */
int config_check_reload(const struct config *old_cfg, const struct config *new_cfg,
                        struct sw_err *err);

/* Name of a protocol / TLS mode as written in the file. */
const char *config_proto_name(enum config_proto p);
const char *config_tls_mode_name(enum config_tls_mode m);

#endif
