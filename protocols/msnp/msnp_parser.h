/* MSNP (MSNP8 to MSNP18) framing: an incremental parser for one direction of a notification
 * server or switchboard connection, and line helpers for the switchboard rewriter.
 *
 * Pure: no I/O, no allocation, no logging. See docs/msnp.md for the framing rules.
 *
 * Framing. A command is a line `CMD [trid] args\r\n` (bare `\n` accepted). CMD is three
 * characters of [A-Z0-9]; three digits make a numeric error. Payload commands (the table in
 * msnp_parser.c, per direction) end their line with a decimal byte count and are followed by
 * exactly that many bytes, binary, with no terminator. A numeric error carries a payload only
 * when it answers a payload command the other side sent: the caller reports those with
 * msnp_parser_note_sent(). The parser never guesses from "the last token is a number".
 *
 * Stream offsets and retention. The parser counts bytes from the start of the direction's
 * stream (uint64_t offsets). Each call passes a buffer holding stream bytes [base, base+len);
 * it must start at or before msnp_parser_keep(p) (the first byte of the command not yet
 * delivered) and end at or after what was passed before: the caller keeps the bytes of an
 * incomplete command contiguous (at most line_max + payload_max of them) and may drop
 * everything before msnp_parser_keep(p). Bytes are scanned once (no rescanning).
 *
 * One event per complete command: the line and, for a payload command, its payload, so the
 * proxy can forward unchanged bytes as slices and rewrite only the length field or an address.
 */
#ifndef SW_PROTOCOLS_MSNP_PARSER_H
#define SW_PROTOCOLS_MSNP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/sw_rc.h"

#define MSNP_LINE_MAX_DEFAULT 8192         /* longest command line, terminator included */
#define MSNP_LINE_MAX_LIMIT 65536          /* highest accepted line_max */
#define MSNP_PAYLOAD_MAX_DEFAULT 65536     /* largest declared payload (ADL/GCF, not IM text) */
#define MSNP_PAYLOAD_MAX_LIMIT (16u << 20) /* highest accepted payload_max */
#define MSNP_SENT_MAX_DEFAULT 16           /* outstanding payload commands remembered */
#define MSNP_SENT_CAP 64                   /* highest accepted sent_max (table is embedded) */

/* Which side sent the bytes a parser reads. */
enum msnp_dir {
    MSNP_DIR_C2S = 0, /* client to server */
    MSNP_DIR_S2C = 1, /* server to client */
};

struct msnp_limits {
    size_t line_max;    /* bytes of a command line including "\r\n"; 16..MSNP_LINE_MAX_LIMIT */
    size_t payload_max; /* declared payload bytes; 0..MSNP_PAYLOAD_MAX_LIMIT */
    size_t sent_max;    /* trid -> command entries for msnp_parser_note_sent; 1..MSNP_SENT_CAP */
};

/* A byte range inside an event's data (pos from data[0]). */
struct msnp_span {
    size_t pos;
    size_t len;
};

/* One complete command. data borrows the caller's buffer: valid until the caller drops or
 * moves those bytes (the parser never looks at them again). */
struct msnp_event {
    uint64_t off;             /* stream offset of data[0], the first byte of the command line */
    const uint8_t *data;      /* line, terminator and payload: data[0..size) */
    size_t size;              /* line_len + eol_len + payload.len */
    size_t line_len;          /* the line without its terminator */
    size_t eol_len;           /* 2 for "\r\n", 1 for "\n" */
    char cmd[4];              /* the command, NUL-terminated, e.g. "MSG" or "241" */
    bool known;               /* cmd is in the command table (always false for numeric errors) */
    bool numeric;             /* cmd is three digits: an error reply */
    bool has_trid;            /* cmd carries a trid this way and its first argument is one */
    uint32_t trid;            /* valid when has_trid */
    char answers[4];          /* numeric error answering a noted payload command: that command */
    struct msnp_span args;    /* first token after cmd (and trid) to the end of the last */
    bool has_payload;         /* a byte count was read from the line (it may be 0) */
    struct msnp_span len_tok; /* the byte-count token inside the line (for rewriting) */
    struct msnp_span payload; /* data[line_len + eol_len ..], payload.len bytes */
};

/* Sent-command memory for numeric errors: trid -> payload command of the other direction. */
struct msnp_sent {
    uint64_t seq; /* insertion order, for evicting the oldest */
    uint32_t trid;
    char cmd[4]; /* "" = free slot */
};

/* One direction's parser. Embed it; fields are private except err and err_pos. */
struct msnp_parser {
    enum msnp_dir dir;
    struct msnp_limits lim;
    /* set when msnp_parse returns SW_ERROR: err is a static string, err_pos a stream offset */
    const char *err;
    uint64_t err_pos;

    int state;
    uint64_t pos;   /* stream offset of the next byte to scan */
    uint64_t start; /* stream offset of the current command's first byte */
    char cmd[4];
    size_t cmd_n;
    bool cr;           /* the line ended "\r\n" */
    uint64_t line_end; /* offset of the terminator */
    uint64_t pay_left; /* payload bytes still to come */
    uint64_t pay_len;
    /* tokens after cmd: the current one, the first and the last complete ones */
    bool in_tok;
    size_t ntok;
    uint64_t tok_start, first_start, last_start, second_start;
    size_t tok_len, first_len, last_len;
    bool tok_digits, first_digits, last_digits;
    uint64_t tok_val, first_val, last_val;

    struct msnp_event ev; /* line fields of the command being read (data is NULL) */

    struct msnp_sent sent[MSNP_SENT_CAP];
    uint64_t sent_seq;
};

/* Fills lim with the defaults above. */
void msnp_limits_default(struct msnp_limits *lim);

/* Initialises p for direction dir with limits lim (copied; NULL = defaults). Returns SW_OK, or
 * SW_ERROR if a limit is out of range (p is then unusable). Call once per direction. */
int msnp_parser_init(struct msnp_parser *p, enum msnp_dir dir, const struct msnp_limits *lim);

/* Parses stream bytes buf[0..len), which are stream offsets [base, base+len) (borrowed for
 * the call; ev->data points into buf). Requires base <= msnp_parser_keep(p) and
 * base + len >= the end of the bytes passed before. Returns
 *   SW_OK: one command is complete and ev is filled; call again (same buf) for the next;
 *   SW_AGAIN: every byte was scanned and no command is complete; keep the bytes from
 *             msnp_parser_keep(p) on and call again when more arrive;
 *   SW_ERROR: malformed input or a limit was exceeded (p->err, p->err_pos); the stream cannot
 *             be resynchronised, close the connection. Every later call returns SW_ERROR. */
int msnp_parse(struct msnp_parser *p, const uint8_t *buf, size_t len, uint64_t base,
               struct msnp_event *ev);

/* Stream offset of the first byte the caller must still hold (start of the command being
 * parsed; after SW_OK, everything before it may be released once ev is no longer used). */
uint64_t msnp_parser_keep(const struct msnp_parser *p);

/* Tells the parser of one direction that the other side sent command cmd (NUL-terminated, as
 * in msnp_event.cmd; borrowed) with trid, so that a numeric error answering it is read with
 * its payload. Only payload commands (of the other direction) are remembered; the oldest entry
 * is evicted when sent_max are outstanding; an entry is dropped when a reply with its trid is
 * parsed. Returns true if the entry was recorded. */
bool msnp_parser_note_sent(struct msnp_parser *p, uint32_t trid, const char *cmd);

/* True if cmd (NUL-terminated, borrowed) is a payload command when sent in direction dir. */
bool msnp_is_payload_cmd(const char *cmd, enum msnp_dir dir);

/* ---- line helpers for the rewriter; spans index ev->data ---------------------------------- */

/* A host:port token: addr is the whole token; host is without brackets for [IPv6]. */
struct msnp_hostport {
    struct msnp_span addr;
    struct msnp_span host;
    uint16_t port;
};

/* XFR trid SB host:port CKI cookie ... (or XFR trid NS host:port ...), server to client. */
struct msnp_xfr {
    bool sb; /* true for SB (switchboard), false for NS (referral) */
    struct msnp_hostport hp;
    struct msnp_span cookie; /* SB only (after CKI); len 0 for NS */
};

/* Parses an XFR reply (borrows ev). Returns SW_OK, SW_DECLINED if ev is not an XFR SB/NS
 * reply, SW_ERROR if it is one but malformed. */
int msnp_parse_xfr(const struct msnp_event *ev, struct msnp_xfr *out);

/* RNG sessid host:port CKI cookie email nick ..., server to client. */
struct msnp_rng {
    struct msnp_span sessid;
    struct msnp_hostport hp;
    struct msnp_span cookie;
    struct msnp_span email;
    struct msnp_span nick; /* len 0 when absent */
};

/* Parses an RNG line (borrows ev). Returns SW_OK, SW_DECLINED if ev is not RNG, SW_ERROR if
 * malformed (too few tokens, bad host:port, auth method other than CKI). */
int msnp_parse_rng(const struct msnp_event *ev, struct msnp_rng *out);

/* The first line of a switchboard connection: USR trid email cookie (answering XFR) or
 * ANS trid email cookie sessid (answering RNG), client to server. */
struct msnp_sb_login {
    bool ans; /* ANS (true) or USR (false) */
    uint32_t trid;
    struct msnp_span email; /* MSNP16+ may add ;{guid} - left in, the server expects it */
    struct msnp_span cookie;
    struct msnp_span sessid; /* ANS only; len 0 for USR */
};

/* Parses a switchboard USR or ANS (borrows ev). Returns SW_OK, SW_DECLINED if ev is neither
 * (or is a notification-server USR: TWN/MD5/SSO), SW_ERROR if malformed. */
int msnp_parse_sb_login(const struct msnp_event *ev, struct msnp_sb_login *out);

/* MSG line: client `MSG trid ack len`, server `MSG email nick len`. */
struct msnp_msg_line {
    char ack;               /* client: 'U', 'N', 'A', 'D' or 'S'; server: 0 */
    struct msnp_span email; /* server: the sender; client: len 0 */
    struct msnp_span nick;  /* server: the sender's URL-encoded friendly name */
};

/* Parses the line of a MSG event from direction dir (borrows ev). Returns SW_OK, SW_DECLINED
 * if ev is not MSG, SW_ERROR if the line has the wrong shape or an unknown ack type. */
int msnp_parse_msg_line(const struct msnp_event *ev, enum msnp_dir dir, struct msnp_msg_line *out);

#endif
