/* MSNP MSG payloads: MIME-like headers, a blank line, a body.
 *
 * Pure: no I/O, no allocation, no logging. The payload is complete when the framing parser
 * delivers it, so this parser works on the whole payload at once; every slice borrows it.
 *
 * What is recognised (docs/msnp.md):
 *   text/plain (IM text; charset reported), text/x-msmsgscontrol (typing, TypingUser),
 *   text/x-msmsgsinvite (Invitation-Command, Application-Name/-GUID, Application-File and
 *   -FileSize from the body), text/x-msmsgsdatacast (ID, Data), application/x-msnmsgrp2p
 *   (P2P-Dest, the 48-byte binary header and footer; the file name of a file-transfer SLP
 *   INVITE when the whole INVITE is in this one message), the chunking headers Message-ID,
 *   Chunks (first chunk) and Chunk (later chunks), and a few kinds that are never scanned.
 */
#ifndef SW_PROTOCOLS_MSNP_MIME_H
#define SW_PROTOCOLS_MSNP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/sw_rc.h"

#define MSNP_MIME_HEADERS_CAP 32              /* headers kept (array embedded in the result) */
#define MSNP_MIME_HEADERS_MAX_DEFAULT 32      /* default bound on the header count */
#define MSNP_MIME_HEADER_LEN_MAX_DEFAULT 1024 /* default bound on one header line */
#define MSNP_MIME_CHUNKS_MAX 1024             /* highest Chunks value accepted as well-formed */
#define MSNP_MIME_FILE_MAX 784                /* P2P file name as UTF-8: 260 UTF-16 units, NUL */
#define MSNP_P2P_HEADER_LEN 48                /* P2P v1 binary header */
#define MSNP_P2P_FOOTER_LEN 4

struct msnp_mime_limits {
    size_t headers_max;    /* 1..MSNP_MIME_HEADERS_CAP */
    size_t header_len_max; /* bytes of one header line, terminator included; >= 16 */
};

enum msnp_mime_kind {
    MSNP_MIME_NONE = 0,  /* no Content-Type (e.g. a later chunk of a chunked message) */
    MSNP_MIME_TEXT,      /* text/plain: IM text, scanned */
    MSNP_MIME_TYPING,    /* text/x-msmsgscontrol */
    MSNP_MIME_INVITE,    /* text/x-msmsgsinvite: file name scanned */
    MSNP_MIME_DATACAST,  /* text/x-msmsgsdatacast: nudge, wink, voice clip, action (ID 4) */
    MSNP_MIME_P2P,       /* application/x-msnmsgrp2p */
    MSNP_MIME_CAPS,      /* text/x-clientcaps */
    MSNP_MIME_EMOTICON,  /* text/x-mms-emoticon, text/x-mms-animemoticon */
    MSNP_MIME_KEEPALIVE, /* text/x-keepalive */
    MSNP_MIME_PROFILE,   /* text/x-msmsgsprofile, -initialemailnotification, -emailnotification,
                            -activemailnotification, -systemmessage, -oimnotification ... */
    MSNP_MIME_OTHER,     /* any other type */
};

struct msnp_mime_header {
    const uint8_t *name; /* not NUL-terminated */
    size_t name_len;
    const uint8_t *value; /* trimmed of spaces and tabs */
    size_t value_len;
};

struct msnp_mime {
    /* set when msnp_mime_parse returns SW_ERROR: static string, offset in the payload */
    const char *err;
    size_t err_pos;

    size_t nheaders;
    struct msnp_mime_header headers[MSNP_MIME_HEADERS_CAP];
    size_t body_pos; /* offset of the body in the payload */
    const uint8_t *body;
    size_t body_len;

    enum msnp_mime_kind kind;
    const uint8_t *media_type; /* Content-Type without parameters, e.g. "text/plain" */
    size_t media_type_len;
    const uint8_t *charset; /* the charset parameter, unquoted; NULL when absent */
    size_t charset_len;
    bool utf8; /* no charset or charset UTF-8 (the body can be scanned as is) */

    /* chunked messages: first chunk Message-ID + Chunks (>= 1), later ones Message-ID + Chunk */
    const uint8_t *message_id;
    size_t message_id_len;
    bool has_chunks;
    uint32_t chunks;
    bool has_chunk;
    uint32_t chunk;

    /* text/x-msmsgscontrol */
    const uint8_t *typing_user;
    size_t typing_user_len;

    /* text/x-msmsgsinvite (from the body) and P2P file transfer: invitation_command "INVITE",
     * "ACCEPT", "CANCEL"; file_name points into the payload (invite) or into file_buf (P2P,
     * converted from UTF-16LE; valid as long as this struct is not moved). */
    const uint8_t *invitation_command;
    size_t invitation_command_len;
    const uint8_t *application_name;
    size_t application_name_len;
    const uint8_t *application_guid;
    size_t application_guid_len;
    const uint8_t *file_name;
    size_t file_name_len;
    bool has_file_size;
    uint64_t file_size;

    /* text/x-msmsgsdatacast */
    bool has_datacast_id;
    uint32_t datacast_id; /* 1 nudge, 2 wink, 3 voice clip, 4 action message */
    const uint8_t *datacast_data;
    size_t datacast_data_len;

    /* application/x-msnmsgrp2p */
    const uint8_t *p2p_dest;
    size_t p2p_dest_len;
    bool p2p_valid;      /* the body fits the v1 layout (header, msg_size data bytes, footer)
                          * or the v2 one (header, ML bytes, optional footer) */
    uint8_t p2p_version; /* 1 or 2 when p2p_valid; v2 fills id (BaseID), msg_size (ML),
                          * session_id (data header) and app_id (footer, if any) only */
    uint32_t p2p_session_id;
    uint32_t p2p_id;
    uint64_t p2p_offset;
    uint64_t p2p_total_size;
    uint32_t p2p_msg_size;
    uint32_t p2p_flags;
    uint32_t p2p_app_id;    /* footer, big-endian on the wire */
    bool p2p_slp;           /* the data is an SLP (MSNSLP/1.0) message */
    bool p2p_file_transfer; /* an SLP INVITE for the file-transfer EUF-GUID */
    char file_buf[MSNP_MIME_FILE_MAX];
};

/* Fills lim with the defaults above. */
void msnp_mime_limits_default(struct msnp_mime_limits *lim);

/* Parses payload buf[0..len) (borrowed; out's slices point into it) with limits lim (NULL =
 * defaults). Returns SW_OK with out filled, or SW_ERROR (out->err, out->err_pos): a header
 * line without a colon or too long, too many headers, a duplicate Content-Type, Message-ID,
 * Chunks or Chunk, a bad Chunks/Chunk number, or headers not ended by a blank line. P2P
 * bodies that fit neither the v1 nor the v2 layout are not an error (p2p_valid false). */
int msnp_mime_parse(const uint8_t *buf, size_t len, const struct msnp_mime_limits *lim,
                    struct msnp_mime *out);

/* Finds header name (NUL-terminated, case-insensitive; borrowed) in m. Returns the first
 * match or NULL. */
const struct msnp_mime_header *msnp_mime_header(const struct msnp_mime *m, const char *name);

#endif
