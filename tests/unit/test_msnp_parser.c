/* Unit tests for protocols/msnp/msnp_parser.c: framing vectors for every payload command in
 * both directions, numeric errors with and without a payload, bare LF, binary P2P payloads,
 * unknown commands, NLN/ILN trailing integers, limits, and the rewriter's line helpers.
 *
 * Every vector is fed whole, one byte at a time, split in two at every offset and (for short
 * vectors) in three at every pair of offsets, and must give exactly the same events: command,
 * trid, args, stream offset and size, length token and payload, or the same error at the same
 * stream offset. Each call gets a fresh allocation holding only the bytes the retention
 * contract says the caller keeps (from msnp_parser_keep()), so ASan catches a parser that
 * reads outside them. Every event is also checked against the input bytes it claims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/msnp/msnp_parser.h"

#define NOTES_MAX 8

struct note {
    uint32_t trid;
    const char *cmd;
};

struct vector {
    const char *name;
    enum msnp_dir dir;
    struct note notes[NOTES_MAX]; /* noted on the parser before any byte */
    size_t nnotes;
    const char *in;
    size_t len;
    size_t line_max, payload_max; /* 0 = default */
    const char *expect;           /* the rendered event sequence */
};

struct render {
    char s[16384];
    size_t n;
};

static void put(struct render *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct render *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(r->s + r->n, sizeof(r->s) - r->n, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof(r->s) - r->n);
    r->n += (size_t)k;
}

/* Checks ev against the input and renders it as one line. */
static void render_event(struct render *r, const struct vector *v, const struct msnp_event *ev,
                         uint64_t expect_off)
{
    assert_int_equal(ev->off, expect_off); /* events tile the stream */
    assert_true(ev->off + ev->size <= v->len);
    assert_memory_equal(ev->data, v->in + ev->off, ev->size);
    assert_memory_equal(ev->data, ev->cmd, 3);
    assert_int_equal(ev->cmd[3], '\0');
    if (ev->eol_len == 2)
        assert_memory_equal(ev->data + ev->line_len, "\r\n", 2);
    else
        assert_memory_equal(ev->data + ev->line_len, "\n", 1);
    assert_int_equal(ev->payload.pos, ev->line_len + ev->eol_len);
    assert_int_equal(ev->payload.pos + ev->payload.len, ev->size);
    assert_true(ev->args.pos + ev->args.len <= ev->line_len);
    if (ev->has_payload) {
        assert_true(ev->len_tok.len > 0);
        assert_true(ev->len_tok.pos + ev->len_tok.len <= ev->line_len); /* trailing spaces */
        for (size_t i = ev->len_tok.pos + ev->len_tok.len; i < ev->line_len; i++)
            assert_int_equal(ev->data[i], ' ');
        unsigned long long n = 0;
        for (size_t i = 0; i < ev->len_tok.len; i++)
            n = n * 10 + (unsigned long long)(ev->data[ev->len_tok.pos + i] - '0');
        assert_int_equal(n, ev->payload.len);
    } else {
        assert_int_equal(ev->payload.len, 0);
        assert_int_equal(ev->len_tok.len, 0);
    }
    put(r, "%s", ev->cmd);
    if (ev->has_trid)
        put(r, "#%u", ev->trid);
    put(r, " @%llu+%zu '%.*s'", (unsigned long long)ev->off, ev->size, (int)ev->args.len,
        (const char *)ev->data + ev->args.pos);
    if (ev->has_payload)
        put(r, " len@%zu pay=%zu", ev->len_tok.pos, ev->payload.len);
    if (ev->answers[0] != '\0')
        put(r, " ans=%s", ev->answers);
    if (!ev->known && !ev->numeric)
        put(r, " unknown");
    if (ev->eol_len == 1)
        put(r, " lf");
    put(r, "\n");
}

/* Feeds v in pieces ending at cuts[0..ncuts) and then at v->len. */
static void run(const struct vector *v, const size_t *cuts, size_t ncuts, struct render *r)
{
    struct msnp_parser p;
    struct msnp_limits lim;
    struct msnp_event ev;
    uint64_t next_off = 0;
    msnp_limits_default(&lim);
    if (v->line_max != 0)
        lim.line_max = v->line_max;
    if (v->payload_max != 0)
        lim.payload_max = v->payload_max;
    assert_int_equal(msnp_parser_init(&p, v->dir, &lim), SW_OK);
    for (size_t i = 0; i < v->nnotes; i++)
        msnp_parser_note_sent(&p, v->notes[i].trid, v->notes[i].cmd);
    r->n = 0;
    r->s[0] = '\0';
    for (size_t c = 0; c <= ncuts; c++) {
        size_t fed = c < ncuts ? cuts[c] : v->len;
        uint64_t keep = msnp_parser_keep(&p);
        assert_true(keep <= fed);
        size_t blen = fed - (size_t)keep;
        uint8_t *b = malloc(blen > 0 ? blen : 1);
        assert_non_null(b);
        memcpy(b, v->in + keep, blen);
        int rc;
        while ((rc = msnp_parse(&p, b, blen, keep, &ev)) == SW_OK) {
            render_event(r, v, &ev, next_off);
            next_off = ev.off + ev.size;
            assert_int_equal(msnp_parser_keep(&p), next_off);
        }
        free(b);
        if (rc == SW_ERROR) {
            assert_non_null(p.err);
            put(r, "ERR %s @%llu\n", p.err, (unsigned long long)p.err_pos);
            assert_int_equal(msnp_parse(&p, (const uint8_t *)v->in, v->len, 0, &ev), SW_ERROR);
            return;
        }
        assert_int_equal(rc, SW_AGAIN);
    }
    if (msnp_parser_keep(&p) != v->len)
        put(r, "pending @%llu\n", (unsigned long long)msnp_parser_keep(&p));
}

/* Expected renders: `CMD[#trid] @offset+size 'args' [len@pos pay=n] [ans=CMD] [unknown] [lf]`,
 * one line per event, or `ERR reason @offset`. */
#define EXPECT_C2S_LOGIN                                                                           \
    "VER#1 @0+26 'MSNP18 MSNP17 CVR0'\n"                                                           \
    "CVR#2 @26+69 '0x0409 winnt 5.1 i386 MSNMSGR 8.5.1302 BC01 alice@example.com'\n"               \
    "USR#3 @95+31 'SSO I alice@example.com'\n"
#define EXPECT_C2S_NO_TRID                                                                         \
    "PNG @0+5 ''\n"                                                                                \
    "OUT @5+5 ''\n"
#define EXPECT_C2S_MSG_ACKS                                                                        \
    "MSG#4 @0+138 'U 125' len@8 pay=125\n"                                                         \
    "MSG#5 @138+138 'N 125' len@8 pay=125\n"                                                       \
    "MSG#6 @276+138 'A 125' len@8 pay=125\n"                                                       \
    "MSG#7 @414+100 'D 88' len@8 pay=88\n"                                                         \
    "MSG#8 @514+138 'S 125' len@8 pay=125\n"
#define EXPECT_C2S_PAYLOAD_CMDS                                                                    \
    "UUX#10 @0+91 '80' len@7 pay=80\n"                                                             \
    "ADL#11 @91+74 '63' len@7 pay=63\n"                                                            \
    "RML#12 @165+74 '63' len@7 pay=63\n"                                                           \
    "FQY#13 @239+74 '63' len@7 pay=63\n"                                                           \
    "UUN#14 @313+43 'bob@example.com 3 14' len@25 pay=14\n"                                        \
    "QRY#15 @356+60 'PROD0114ES4Z%Q5W 32' len@24 pay=32\n"                                         \
    "PAG#16 @416+33 'bob@example.com 7' len@23 pay=7\n"                                            \
    "SDG#17 @449+27 '16' len@7 pay=16\n"                                                           \
    "PUT#18 @476+27 '16' len@7 pay=16\n"                                                           \
    "DEL#19 @503+11 '1' len@7 pay=1\n"                                                             \
    "UUM#20 @514+54 'bob@yahoo.com 32 1 24' len@26 pay=24\n"                                       \
    "UBM @568+7 '0' len@4 pay=0\n"
#define EXPECT_C2S_PAYLOAD_CMDS_RARE                                                               \
    "UBX @0+32 '1:bob@example.com 7' len@22 pay=7\n"                                               \
    "NOT @32+23 '15' len@4 pay=15\n"                                                               \
    "IPG @55+9 '2' len@4 pay=2\n"                                                                  \
    "UBN @64+31 'bob@example.com 5 6' len@22 pay=6\n"                                              \
    "NFY @95+28 'DEL 16' len@8 pay=16\n"                                                           \
    "UUX#9 @123+10 '1' len@6 pay=1\n"                                                              \
    "MSG#10 @133+18 'A 6' len@9 pay=6\n"
#define EXPECT_S2C_PAYLOAD_CMDS                                                                    \
    "MSG @0+96 'Hotmail Hotmail 72' len@20 pay=72\n"                                               \
    "UBX @96+106 '1:bob@example.com 80' len@22 pay=80\n"                                           \
    "GCF#0 @202+21 '11' len@6 pay=11\n"                                                            \
    "NOT @223+23 '15' len@4 pay=15\n"                                                              \
    "IPG @246+12 '5' len@4 pay=5\n"                                                                \
    "ADL#0 @258+73 '63' len@6 pay=63\n"                                                            \
    "RML#0 @331+73 '63' len@6 pay=63\n"                                                            \
    "FQY#21 @404+74 '63' len@7 pay=63\n"                                                           \
    "UBN @478+31 'bob@example.com 1 6' len@22 pay=6\n"                                             \
    "UBM @509+50 'bob@yahoo.com 32 1 23' len@23 pay=23\n"                                          \
    "PAG#22 @559+12 '2' len@7 pay=2\n"                                                             \
    "SDG#0 @571+26 '16' len@6 pay=16\n"                                                            \
    "PUT#23 @597+13 'OK 0' len@10 pay=0\n"                                                         \
    "DEL#24 @610+13 'OK 0' len@10 pay=0\n"                                                         \
    "NFY @623+28 'PUT 16' len@8 pay=16\n"                                                          \
    "UUN#25 @651+11 '1' len@7 pay=1\n"                                                             \
    "UUM#26 @662+10 '0' len@7 pay=0\n"                                                             \
    "UUX#27 @672+10 '0' len@7 pay=0\n"                                                             \
    "MSG @682+154 'bob@example.com Bob 125' len@24 pay=125\n"
#define EXPECT_S2C_ACKS_NO_PAYLOAD                                                                 \
    "ADL#11 @0+11 'OK'\n"                                                                          \
    "RML#12 @11+11 'OK'\n"                                                                         \
    "UUN#14 @22+11 'OK'\n"                                                                         \
    "QRY#15 @33+8 ''\n"                                                                            \
    "ACK#6 @41+7 ''\n"                                                                             \
    "NAK#8 @48+7 ''\n"                                                                             \
    "PAG#16 @55+8 ''\n"
#define EXPECT_C2S_GCF_REQUEST                                                                     \
    "GCF#7 @0+19 'Shields.xml'\n"                                                                  \
    "QRY#8 @19+16 'PROD01 0' len@13 pay=0\n"
#define EXPECT_S2C_QRY_NO_PAYLOAD                                                                  \
    "QRY#8 @0+10 '32'\n"                                                                           \
    "PNG @10+5 ''\n"
#define EXPECT_S2C_NLN_ILN                                                                         \
    "ILN#9 @0+58 'NLN bob@example.com Bob 2789003324 %3Cmsnobj%2F%3E'\n"                           \
    "NLN @58+47 'NLN 1:bob@example.com Bob 2789003324:48 0'\n"                                     \
    "NLN @105+44 'AWY carol@example.com Carol 1342177280'\n"                                       \
    "FLN @149+23 'carol@example.com'\n"                                                            \
    "CHL#0 @172+28 '29409134351025259292'\n"                                                       \
    "QNG @200+8 '50'\n"
#define EXPECT_S2C_SWITCHBOARD                                                                     \
    "XFR#10 @0+82 'SB 207.46.108.37:1863 CKI 17262740.1050826919.32308 U messenger.msn.com 1'\n"   \
    "RNG @82+99 '11752013 207.46.108.38:1863 CKI 849102291.520491113 bob@example.com Bob U "       \
    "messenger.msn.com 1'\n"                                                                       \
    "JOI @181+36 'bob@example.com Bob 1342177280'\n"                                               \
    "IRO#1 @217+35 '1 2 carol@example.com Carol'\n"                                                \
    "BYE @252+21 'bob@example.com'\n"
#define EXPECT_S2C_ERROR_WITH_PAYLOAD                                                              \
    "241#31 @0+74 '63' len@7 pay=63 ans=ADL\n"                                                     \
    "715#32 @74+10 '0' len@7 pay=0 ans=UUX\n"                                                      \
    "500#33 @84+11 '12'\n"                                                                         \
    "603#34 @95+10 '0' len@7 pay=0 ans=UUN\n"                                                      \
    "911#35 @105+8 '' ans=MSG\n"
#define EXPECT_S2C_ERROR_UNNOTED                                                                   \
    "241#40 @0+11 '12'\n"                                                                          \
    "200#41 @11+8 ''\n"
#define EXPECT_BARE_LF                                                                             \
    "VER#1 @0+17 'MSNP8 CVR0' lf\n"                                                                \
    "MSG#2 @17+15 'N 5' len@8 pay=5 lf\n"                                                          \
    "PNG @32+4 '' lf\n"
#define EXPECT_P2P_BINARY                                                                          \
    "MSG#9 @0+157 'D 144' len@8 pay=144\n"                                                         \
    "PNG @157+5 ''\n"
#define EXPECT_UNKNOWN_CMDS                                                                        \
    "ZZZ @0+14 '1 2 3 45' unknown\n"                                                               \
    "SBS#0 @14+12 'null'\n"                                                                        \
    "LSG @26+15 'Friends 1'\n"                                                                     \
    "BPR @41+13 'PHH 123'\n"                                                                       \
    "UBX @54+5 ''\n"
#define EXPECT_UNKNOWN_CMDS_C2S                                                                    \
    "ZZZ @0+9 '1 2' unknown\n"                                                                     \
    "XY1 @9+7 '7' unknown\n"
#define EXPECT_TRID_OVERFLOW                                                                       \
    "SYN @0+20 '4294967296 0 0'\n"                                                                 \
    "SYN#4294967295 @20+20 '0 0'\n"                                                                \
    "SYN#1 @40+10 '2'\n"
#define EXPECT_SPACES                                                                              \
    "VER#1 @0+16 'MSNP8'\n"                                                                        \
    "MSG#2 @16+16 'U 3' len@8 pay=3\n"
#define EXPECT_ERR_BAD_COMMAND                                                                     \
    "VER#1 @0+13 'MSNP8'\n"                                                                        \
    "ERR bad command @13\n"
#define EXPECT_ERR_SHORT_COMMAND "ERR bad command @2\n"
#define EXPECT_ERR_CMD_TOO_LONG "ERR bad command @3\n"
#define EXPECT_ERR_CR_ALONE "ERR CR not followed by LF @6\n"
#define EXPECT_ERR_NUL_IN_LINE "ERR control byte in command line @6\n"
#define EXPECT_ERR_BAD_LENGTH "ERR bad payload length @8\n"
#define EXPECT_ERR_PAYLOAD_TOO_LARGE "ERR payload too large @6\n"
#define EXPECT_ERR_LENGTH_OVERFLOW "ERR payload too large @4\n"
#define EXPECT_ERR_EMPTY_LINE                                                                      \
    "PNG @0+5 ''\n"                                                                                \
    "ERR bad command @5\n"
#define EXPECT_LIM_LINE_EXACT "VER#1 @0+32 'MMMMMMMMMMMMMMMMMMMMMMMM'\n"
#define EXPECT_ERR_LIM_LINE "ERR line too long @32\n"
#define EXPECT_ERR_LIM_LINE_NO_EOL                                                                 \
    "PNG @0+5 ''\n"                                                                                \
    "ERR line too long @37\n"
#define EXPECT_LIM_PAYLOAD_EXACT "MSG#1 @0+22 'U 10' len@8 pay=10\n"
#define EXPECT_ERR_LIM_PAYLOAD "ERR payload too large @8\n"
#define EXPECT_ERR_LIM_ERROR_PAYLOAD "ERR payload too large @6\n"

static const struct vector vectors[] = {
    {
        "c2s_payload_cmds_rare", /* payload commands only servers send are still framed */
        MSNP_DIR_C2S,
        {},
        0,
        "UBX 1:bob@example.com 7\r\n"
        "<Data/>NOT 15\r\n"
        "<NOTIFICATION/>IPG 2\r\n"
        "pgUBN bob@example.com 5 6\r\n"
        "<SIP/>NFY DEL 16\r\n"
        "Routing: 1.0\r\n"
        "\r\n"
        "UUX 9 1\r\n"
        "\000MSG 10 A 6\r\n"
        "\r\n"
        "\000\r\n"
        "\n",
        151,
        0,
        0,
        EXPECT_C2S_PAYLOAD_CMDS_RARE,
    },
    {
        "c2s_login",
        MSNP_DIR_C2S,
        {},
        0,
        "VER 1 MSNP18 MSNP17 CVR0\r\n"
        "CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 8.5.1302 BC01 alice@example.com\r\n"
        "USR 3 SSO I alice@example.com\r\n",
        126,
        0,
        0,
        EXPECT_C2S_LOGIN,
    },
    {
        "c2s_no_trid",
        MSNP_DIR_C2S,
        {},
        0,
        "PNG\r\n"
        "OUT\r\n",
        10,
        0,
        0,
        EXPECT_C2S_NO_TRID,
    },
    {
        "c2s_msg_acks",
        MSNP_DIR_C2S,
        {},
        0,
        "MSG 4 U 125\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n"
        "\r\n"
        "hi thereMSG 5 N 125\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n"
        "\r\n"
        "hi thereMSG 6 A 125\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n"
        "\r\n"
        "hi thereMSG 7 D 88\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/x-msmsgscontrol\r\n"
        "TypingUser: bob@example.com\r\n"
        "\r\n"
        "\r\n"
        "MSG 8 S 125\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n"
        "\r\n"
        "hi there",
        652,
        0,
        0,
        EXPECT_C2S_MSG_ACKS,
    },
    {
        "c2s_payload_cmds",
        MSNP_DIR_C2S,
        {},
        0,
        "UUX 10 80\r\n"
        "<Data><PSM>free iPod http://x.example/</PSM><CurrentMedia></CurrentMedia></Data>ADL 11 "
        "63\r\n"
        "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /></d></ml>RML 12 63\r\n"
        "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /></d></ml>FQY 13 63\r\n"
        "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /></d></ml>UUN 14 "
        "bob@example.com 3 14\r\n"
        "goawyplzthxbyeQRY 15 PROD0114ES4Z%Q5W 32\r\n"
        "0123456789abcdef0123456789abcdefPAG 16 bob@example.com 7\r\n"
        "page meSDG 17 16\r\n"
        "Routing: 1.0\r\n"
        "\r\n"
        "PUT 18 16\r\n"
        "Routing: 1.0\r\n"
        "\r\n"
        "DEL 19 1\r\n"
        "xUUM 20 bob@yahoo.com 32 1 24\r\n"
        "MIME-Version: 1.0\r\n"
        "\r\n"
        "heyUBM 0\r\n",
        575,
        0,
        0,
        EXPECT_C2S_PAYLOAD_CMDS,
    },
    {
        "s2c_payload_cmds",
        MSNP_DIR_S2C,
        {},
        0,
        "MSG Hotmail Hotmail 72\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
        "\r\n"
        "UBX 1:bob@example.com 80\r\n"
        "<Data><PSM>free iPod http://x.example/</PSM><CurrentMedia></CurrentMedia></Data>GCF 0 "
        "11\r\n"
        "<Policies/>NOT 15\r\n"
        "<NOTIFICATION/>IPG 5\r\n"
        "pagerADL 0 63\r\n"
        "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /></d></ml>RML 0 63\r\n"
        "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /></d></ml>FQY 21 63\r\n"
        "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /></d></ml>UBN "
        "bob@example.com 1 6\r\n"
        "<SIP/>UBM bob@yahoo.com 32 1 23\r\n"
        "MIME-Version: 1.0\r\n"
        "\r\n"
        "yoPAG 22 2\r\n"
        "pgSDG 0 16\r\n"
        "Routing: 1.0\r\n"
        "\r\n"
        "PUT 23 OK 0\r\n"
        "DEL 24 OK 0\r\n"
        "NFY PUT 16\r\n"
        "Routing: 1.0\r\n"
        "\r\n"
        "UUN 25 1\r\n"
        "xUUM 26 0\r\n"
        "UUX 27 0\r\n"
        "MSG bob@example.com Bob 125\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n"
        "\r\n"
        "hi there",
        836,
        0,
        0,
        EXPECT_S2C_PAYLOAD_CMDS,
    },
    {
        "s2c_acks_no_payload",
        MSNP_DIR_S2C,
        {},
        0,
        "ADL 11 OK\r\n"
        "RML 12 OK\r\n"
        "UUN 14 OK\r\n"
        "QRY 15\r\n"
        "ACK 6\r\n"
        "NAK 8\r\n"
        "PAG 16\r\n",
        63,
        0,
        0,
        EXPECT_S2C_ACKS_NO_PAYLOAD,
    },
    {
        "c2s_gcf_request",
        MSNP_DIR_C2S,
        {},
        0,
        "GCF 7 Shields.xml\r\n"
        "QRY 8 PROD01 0\r\n",
        35,
        0,
        0,
        EXPECT_C2S_GCF_REQUEST,
    },
    {
        "s2c_qry_no_payload",
        MSNP_DIR_S2C,
        {},
        0,
        "QRY 8 32\r\n"
        "PNG\r\n",
        15,
        0,
        0,
        EXPECT_S2C_QRY_NO_PAYLOAD,
    },
    {
        "s2c_nln_iln",
        MSNP_DIR_S2C,
        {},
        0,
        "ILN 9 NLN bob@example.com Bob 2789003324 %3Cmsnobj%2F%3E\r\n"
        "NLN NLN 1:bob@example.com Bob 2789003324:48 0\r\n"
        "NLN AWY carol@example.com Carol 1342177280\r\n"
        "FLN carol@example.com\r\n"
        "CHL 0 29409134351025259292\r\n"
        "QNG 50\r\n",
        208,
        0,
        0,
        EXPECT_S2C_NLN_ILN,
    },
    {
        "s2c_switchboard",
        MSNP_DIR_S2C,
        {},
        0,
        "XFR 10 SB 207.46.108.37:1863 CKI 17262740.1050826919.32308 U messenger.msn.com 1\r\n"
        "RNG 11752013 207.46.108.38:1863 CKI 849102291.520491113 bob@example.com Bob U "
        "messenger.msn.com 1\r\n"
        "JOI bob@example.com Bob 1342177280\r\n"
        "IRO 1 1 2 carol@example.com Carol\r\n"
        "BYE bob@example.com\r\n",
        273,
        0,
        0,
        EXPECT_S2C_SWITCHBOARD,
    },
    {
        "s2c_error_with_payload",
        MSNP_DIR_S2C,
        {{31, "ADL"}, {32, "UUX"}, {34, "UUN"}, {35, "MSG"}, {33, "USR"}},
        5,
        "241 31 63\r\n"
        "<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /></d></ml>715 32 0\r\n"
        "500 33 12\r\n"
        "603 34 0\r\n"
        "911 35\r\n",
        113,
        0,
        0,
        EXPECT_S2C_ERROR_WITH_PAYLOAD,
    },
    {
        "s2c_error_unnoted",
        MSNP_DIR_S2C,
        {},
        0,
        "241 40 12\r\n"
        "200 41\r\n",
        19,
        0,
        0,
        EXPECT_S2C_ERROR_UNNOTED,
    },
    {
        "bare_lf",
        MSNP_DIR_C2S,
        {},
        0,
        "VER 1 MSNP8 CVR0\n"
        "MSG 2 N 5\n"
        "helloPNG\n",
        36,
        0,
        0,
        EXPECT_BARE_LF,
    },
    {
        "p2p_binary",
        MSNP_DIR_C2S,
        {},
        0,
        "MSG 9 D 144\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: application/x-msnmsgrp2p\r\n"
        "P2P-Dest: bob@example.com\r\n"
        "\r\n"
        "\000\000\000\000\020\r\000\000\000\000\000\000\000\000\000\000\004\000\000\000\000\000\000"
        "\000\004\000\000\000\000\000\000\000\r\n"
        "\000\000\000\000\000\000\000\000\000\000\000\000\000\000\r\n"
        "\000\n"
        "\000\000\000\002PNG\r\n",
        162,
        0,
        0,
        EXPECT_P2P_BINARY,
    },
    {
        "unknown_cmds",
        MSNP_DIR_S2C,
        {},
        0,
        "ZZZ 1 2 3 45\r\n"
        "SBS 0 null\r\n"
        "LSG Friends 1\r\n"
        "BPR PHH 123\r\n"
        "UBX\r\n",
        59,
        0,
        0,
        EXPECT_UNKNOWN_CMDS,
    },
    {
        "unknown_cmds_c2s",
        MSNP_DIR_C2S,
        {},
        0,
        "ZZZ 1 2\r\n"
        "XY1 7\r\n",
        16,
        0,
        0,
        EXPECT_UNKNOWN_CMDS_C2S,
    },
    {
        "trid_overflow",
        MSNP_DIR_C2S,
        {},
        0,
        "SYN 4294967296 0 0\r\n"
        "SYN 4294967295 0 0\r\n"
        "SYN 01 2\r\n",
        50,
        0,
        0,
        EXPECT_TRID_OVERFLOW,
    },
    {
        "spaces",
        MSNP_DIR_C2S,
        {},
        0,
        "VER  1  MSNP8 \r\n"
        "MSG 2 U 3  \r\n"
        "abc",
        32,
        0,
        0,
        EXPECT_SPACES,
    },
    {
        "err_bad_command",
        MSNP_DIR_C2S,
        {},
        0,
        "VER 1 MSNP8\r\n"
        "msg 2 U 3\r\n",
        24,
        0,
        0,
        EXPECT_ERR_BAD_COMMAND,
    },
    {
        "err_short_command",
        MSNP_DIR_C2S,
        {},
        0,
        "MS\r\n",
        4,
        0,
        0,
        EXPECT_ERR_SHORT_COMMAND,
    },
    {
        "err_cmd_too_long",
        MSNP_DIR_C2S,
        {},
        0,
        "MSGX 1\r\n",
        8,
        0,
        0,
        EXPECT_ERR_CMD_TOO_LONG,
    },
    {
        "err_cr_alone",
        MSNP_DIR_C2S,
        {},
        0,
        "VER 1\rX\r\n",
        9,
        0,
        0,
        EXPECT_ERR_CR_ALONE,
    },
    {
        "err_nul_in_line",
        MSNP_DIR_C2S,
        {},
        0,
        "VER 1 \000\r\n",
        9,
        0,
        0,
        EXPECT_ERR_NUL_IN_LINE,
    },
    {
        "err_bad_length",
        MSNP_DIR_C2S,
        {},
        0,
        "MSG 1 U 12a\r\n",
        13,
        0,
        0,
        EXPECT_ERR_BAD_LENGTH,
    },
    {
        "err_payload_too_large",
        MSNP_DIR_C2S,
        {},
        0,
        "UUX 1 65537\r\n"
        "<Data>",
        19,
        0,
        0,
        EXPECT_ERR_PAYLOAD_TOO_LARGE,
    },
    {
        "err_length_overflow",
        MSNP_DIR_S2C,
        {},
        0,
        "NOT 999999999999999999999\r\n",
        27,
        0,
        0,
        EXPECT_ERR_LENGTH_OVERFLOW,
    },
    {
        "err_empty_line",
        MSNP_DIR_C2S,
        {},
        0,
        "PNG\r\n"
        "\r\n",
        7,
        0,
        0,
        EXPECT_ERR_EMPTY_LINE,
    },
    {
        "lim_line_exact",
        MSNP_DIR_C2S,
        {},
        0,
        "VER 1 MMMMMMMMMMMMMMMMMMMMMMMM\r\n",
        32,
        32,
        0,
        EXPECT_LIM_LINE_EXACT,
    },
    {
        "err_lim_line",
        MSNP_DIR_C2S,
        {},
        0,
        "VER 1 MMMMMMMMMMMMMMMMMMMMMMMMM\r\n",
        33,
        32,
        0,
        EXPECT_ERR_LIM_LINE,
    },
    {
        "err_lim_line_no_eol",
        MSNP_DIR_C2S,
        {},
        0,
        "PNG\r\n"
        "VER 1 MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM",
        71,
        32,
        0,
        EXPECT_ERR_LIM_LINE_NO_EOL,
    },
    {
        "lim_payload_exact",
        MSNP_DIR_C2S,
        {},
        0,
        "MSG 1 U 10\r\n"
        "0123456789",
        22,
        0,
        10,
        EXPECT_LIM_PAYLOAD_EXACT,
    },
    {
        "err_lim_payload",
        MSNP_DIR_C2S,
        {},
        0,
        "MSG 1 U 11\r\n"
        "0123",
        16,
        0,
        10,
        EXPECT_ERR_LIM_PAYLOAD,
    },
    {
        "err_lim_error_payload",
        MSNP_DIR_S2C,
        {{9, "ADL"}},
        1,
        "241 9 11\r\n",
        10,
        0,
        10,
        EXPECT_ERR_LIM_ERROR_PAYLOAD,
    },
};

static void check_vector(const struct vector *v)
{
    struct render whole, other;
    size_t cuts[2];

    run(v, NULL, 0, &whole);
    if (strcmp(whole.s, v->expect) != 0) {
        print_error("vector %s:\n--- got\n%s--- expected\n%s", v->name, whole.s, v->expect);
        fail();
    }
    /* one byte at a time */
    size_t *all = malloc((v->len + 1) * sizeof(size_t));
    assert_non_null(all);
    for (size_t i = 0; i < v->len; i++)
        all[i] = i;
    run(v, all, v->len, &other);
    free(all);
    assert_string_equal(other.s, whole.s);
    /* two pieces, every offset; three pieces, every pair for short vectors */
    for (size_t i = 0; i <= v->len; i++) {
        cuts[0] = i;
        run(v, cuts, 1, &other);
        if (strcmp(other.s, whole.s) != 0) {
            print_error("vector %s split at %zu:\n%s", v->name, i, other.s);
            fail();
        }
        if (v->len > 400)
            continue;
        for (size_t j = i; j <= v->len; j++) {
            cuts[1] = j;
            run(v, cuts, 2, &other);
            if (strcmp(other.s, whole.s) != 0) {
                print_error("vector %s split at %zu,%zu:\n%s", v->name, i, j, other.s);
                fail();
            }
        }
    }
}

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
        check_vector(&vectors[i]);
}

static int feed_all(struct msnp_parser *p, const char *in, struct msnp_event *ev)
{
    return msnp_parse(p, (const uint8_t *)in, strlen(in), 0, ev);
}

static void test_init_limits(void **state)
{
    struct msnp_parser p;
    struct msnp_limits lim;
    (void)state;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, NULL), SW_OK);
    assert_int_equal(p.lim.line_max, MSNP_LINE_MAX_DEFAULT);
    assert_int_equal(p.lim.payload_max, MSNP_PAYLOAD_MAX_DEFAULT);
    msnp_limits_default(&lim);
    lim.line_max = 8;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, &lim), SW_ERROR);
    msnp_limits_default(&lim);
    lim.payload_max = MSNP_PAYLOAD_MAX_LIMIT + 1;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, &lim), SW_ERROR);
    msnp_limits_default(&lim);
    lim.sent_max = 0;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, &lim), SW_ERROR);
    lim.sent_max = MSNP_SENT_CAP + 1;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, &lim), SW_ERROR);
    struct msnp_event ev;
    assert_int_equal(feed_all(&p, "PNG\r\n", &ev), SW_ERROR);
}

static void test_payload_cmd_table(void **state)
{
    static const char *both[] = {"MSG", "UUX", "UBX", "NOT", "IPG", "ADL", "RML", "FQY", "UUN",
                                 "UBN", "UBM", "PAG", "SDG", "PUT", "DEL", "NFY", "UUM"};
    (void)state;
    for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++) {
        assert_true(msnp_is_payload_cmd(both[i], MSNP_DIR_C2S));
        assert_true(msnp_is_payload_cmd(both[i], MSNP_DIR_S2C));
    }
    assert_true(msnp_is_payload_cmd("QRY", MSNP_DIR_C2S));
    assert_false(msnp_is_payload_cmd("QRY", MSNP_DIR_S2C));
    assert_true(msnp_is_payload_cmd("GCF", MSNP_DIR_S2C));
    assert_false(msnp_is_payload_cmd("GCF", MSNP_DIR_C2S));
    assert_false(msnp_is_payload_cmd("NLN", MSNP_DIR_S2C));
    assert_false(msnp_is_payload_cmd("ILN", MSNP_DIR_S2C));
    assert_false(msnp_is_payload_cmd("msg", MSNP_DIR_C2S));
    assert_false(msnp_is_payload_cmd("MSGX", MSNP_DIR_C2S));
    assert_false(msnp_is_payload_cmd("", MSNP_DIR_C2S));
    assert_false(msnp_is_payload_cmd(NULL, MSNP_DIR_C2S));
}

/* The sent table: only payload commands of the other direction, oldest evicted, one reply
 * consumes the entry. */
static void test_note_sent(void **state)
{
    struct msnp_parser p;
    struct msnp_limits lim;
    struct msnp_event ev;
    (void)state;
    msnp_limits_default(&lim);
    lim.sent_max = 2;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, &lim), SW_OK);
    assert_false(msnp_parser_note_sent(&p, 1, "USR"));
    assert_false(msnp_parser_note_sent(&p, 1, "GCF")); /* not a payload command c2s */
    assert_false(msnp_parser_note_sent(&p, 1, "uux"));
    assert_true(msnp_parser_note_sent(&p, 1, "UUX"));
    assert_true(msnp_parser_note_sent(&p, 2, "QRY"));
    assert_true(msnp_parser_note_sent(&p, 3, "ADL")); /* evicts 1 */
    const char *in = "241 1 5\r\n"                    /* trid 1 evicted: no payload */
                     "241 3 5\r\nabcde"
                     "241 3 5\r\n"  /* entry consumed by the first reply */
                     "QRY 2\r\n"    /* consumes 2 */
                     "540 2 3\r\n"; /* so this error has no payload */
    size_t len = strlen(in), off = 0;
    const struct {
        const char *cmd;
        size_t size, pay;
        const char *ans;
    } want[] = {{"241", 9, 0, ""},
                {"241", 14, 5, "ADL"},
                {"241", 9, 0, ""},
                {"QRY", 7, 0, ""},
                {"540", 9, 0, ""}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(msnp_parse(&p, (const uint8_t *)in, len, 0, &ev), SW_OK);
        assert_string_equal(ev.cmd, want[i].cmd);
        assert_int_equal(ev.off, off);
        assert_int_equal(ev.size, want[i].size);
        assert_int_equal(ev.payload.len, want[i].pay);
        assert_int_equal(ev.has_payload, want[i].pay > 0);
        assert_string_equal(ev.answers, want[i].ans);
        off += ev.size;
    }
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in, len, 0, &ev), SW_AGAIN);

    /* a freed slot is reused before a live entry is evicted */
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_S2C, &lim), SW_OK);
    assert_true(msnp_parser_note_sent(&p, 1, "UUX"));
    assert_true(msnp_parser_note_sent(&p, 2, "UUX"));
    const char *in2 = "UUX 1 0\r\n241 2 1\r\nx241 4\r\n";
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in2, 9, 0, &ev), SW_OK);
    assert_true(msnp_parser_note_sent(&p, 3, "UUX")); /* takes 1's slot, 2 stays */
    assert_true(msnp_parser_note_sent(&p, 2, "ADL")); /* same trid: updated in place */
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in2, strlen(in2), 0, &ev), SW_OK);
    assert_int_equal(ev.payload.len, 1);
    assert_string_equal(ev.answers, "ADL");
    assert_true(msnp_parser_note_sent(&p, 4, "UUX"));
    assert_true(msnp_parser_note_sent(&p, 5, "UUX")); /* full: evicts 3, the oldest */
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in2, strlen(in2), 0, &ev), SW_OK);
    assert_string_equal(ev.answers, "UUX"); /* 4 survived */
    assert_int_equal(ev.payload.len, 0);

    /* a client-side parser remembers server payload commands (GCF yes, QRY no) */
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_C2S, NULL), SW_OK);
    assert_true(msnp_parser_note_sent(&p, 5, "GCF"));
    assert_false(msnp_parser_note_sent(&p, 6, "QRY"));
}

/* How the proxy wires the two directions: every client command with a trid is noted on the
 * server-side parser, so the server's errors are framed right, whatever order they come in. */
static void test_errors_follow_client_stream(void **state)
{
    struct msnp_parser c2s, s2c;
    struct msnp_event ev;
    const char *up = "UUX 9 19\r\n<Data><PSM/></Data>"
                     "ADL 10 15\r\n<ml l=\"1\"></ml>"
                     "PRP 11 MFN Bob\r\n"
                     "MSG 12 A 3\r\nabc";
    const char *down = "715 9 19\r\n<Data><PSM/></Data>" /* echoes the rejected UUX */
                       "209 11\r\n"                      /* PRP: no payload */
                       "ACK 12\r\n"
                       "241 10 15\r\n<ml l=\"1\"></ml>"
                       "PNG\r\n";
    static const struct {
        const char *cmd;
        uint32_t trid;
        size_t pay;
        const char *ans;
    } want[] = {{"715", 9, 19, "UUX"},
                {"209", 11, 0, ""},
                {"ACK", 12, 0, ""},
                {"241", 10, 15, "ADL"},
                {"PNG", 0, 0, ""}};
    (void)state;
    assert_int_equal(msnp_parser_init(&c2s, MSNP_DIR_C2S, NULL), SW_OK);
    assert_int_equal(msnp_parser_init(&s2c, MSNP_DIR_S2C, NULL), SW_OK);
    size_t n = 0;
    while (feed_all(&c2s, up, &ev) == SW_OK) {
        assert_true(ev.has_trid);
        msnp_parser_note_sent(&s2c, ev.trid, ev.cmd);
        n++;
    }
    assert_int_equal(n, 4);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(feed_all(&s2c, down, &ev), SW_OK);
        assert_string_equal(ev.cmd, want[i].cmd);
        assert_int_equal(ev.trid, want[i].trid);
        assert_int_equal(ev.payload.len, want[i].pay);
        assert_string_equal(ev.answers, want[i].ans);
    }
    assert_int_equal(feed_all(&s2c, down, &ev), SW_AGAIN);
}

static void test_retention_contract(void **state)
{
    struct msnp_parser p;
    struct msnp_event ev;
    const char *in = "PNG\r\nVER 1 MSNP8\r\n";
    (void)state;
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_C2S, NULL), SW_OK);
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in, 8, 0, &ev), SW_OK);
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in, 8, 0, &ev), SW_AGAIN);
    assert_int_equal(msnp_parser_keep(&p), 5);
    /* dropping bytes of the incomplete command breaks the contract */
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in + 6, strlen(in) - 6, 6, &ev), SW_ERROR);
    assert_non_null(p.err);

    /* keeping them works, and the buffer may move between calls */
    char moved[64];
    assert_int_equal(msnp_parser_init(&p, MSNP_DIR_C2S, NULL), SW_OK);
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in, 8, 0, &ev), SW_OK);
    assert_int_equal(msnp_parse(&p, (const uint8_t *)in, 8, 0, &ev), SW_AGAIN);
    memcpy(moved, in + 5, strlen(in) - 5);
    assert_int_equal(msnp_parse(&p, (const uint8_t *)moved, strlen(in) - 5, 5, &ev), SW_OK);
    assert_string_equal(ev.cmd, "VER");
    assert_int_equal(ev.off, 5);
    assert_ptr_equal(ev.data, (const uint8_t *)moved);
    assert_int_equal(ev.trid, 1);
}

static struct msnp_event one_event(enum msnp_dir dir, const char *line)
{
    struct msnp_parser p;
    struct msnp_event ev;
    assert_int_equal(msnp_parser_init(&p, dir, NULL), SW_OK);
    assert_int_equal(feed_all(&p, line, &ev), SW_OK);
    return ev;
}

static void assert_span(const struct msnp_event *ev, struct msnp_span s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(ev->data + s.pos, want, s.len);
}

static void test_xfr(void **state)
{
    struct msnp_xfr x;
    struct msnp_event ev;
    (void)state;
    ev = one_event(MSNP_DIR_S2C, "XFR 10 SB 207.46.108.37:1863 CKI 17262740.1050826919.32308 "
                                 "U messenger.msn.com 1\r\n");
    assert_int_equal(msnp_parse_xfr(&ev, &x), SW_OK);
    assert_true(x.sb);
    assert_span(&ev, x.hp.addr, "207.46.108.37:1863");
    assert_span(&ev, x.hp.host, "207.46.108.37");
    assert_int_equal(x.hp.port, 1863);
    assert_span(&ev, x.cookie, "17262740.1050826919.32308");

    ev =
        one_event(MSNP_DIR_S2C, "XFR 11 SB [2001:db8::1]:443 CKI {5C1F1A2B-0000-4D0E-9C2A-1234}\n");
    assert_int_equal(msnp_parse_xfr(&ev, &x), SW_OK);
    assert_span(&ev, x.hp.addr, "[2001:db8::1]:443");
    assert_span(&ev, x.hp.host, "2001:db8::1");
    assert_int_equal(x.hp.port, 443);
    assert_span(&ev, x.cookie, "{5C1F1A2B-0000-4D0E-9C2A-1234}");

    ev = one_event(MSNP_DIR_S2C, "XFR 3 NS sb7.example.net:1863 U D\r\n");
    assert_int_equal(msnp_parse_xfr(&ev, &x), SW_OK);
    assert_false(x.sb);
    assert_span(&ev, x.hp.host, "sb7.example.net");
    assert_int_equal(x.cookie.len, 0);

    ev = one_event(MSNP_DIR_C2S, "XFR 10 SB\r\n"); /* the request */
    assert_int_equal(msnp_parse_xfr(&ev, &x), SW_DECLINED);
    ev = one_event(MSNP_DIR_S2C, "PNG\r\n");
    assert_int_equal(msnp_parse_xfr(&ev, &x), SW_DECLINED);
    static const char *bad[] = {
        "XFR 10 SB 1.2.3.4:1863 MD5 abc\r\n",   "XFR 10 SB 1.2.3.4:1863 CKI\r\n",
        "XFR 10 SB 1.2.3.4 CKI abc\r\n",        "XFR 10 SB 1.2.3.4:0 CKI abc\r\n",
        "XFR 10 SB 1.2.3.4:65536 CKI abc\r\n",  "XFR 10 SB :1863 CKI abc\r\n",
        "XFR 10 SB 2001:db8::1:1863 CKI a\r\n", "XFR 10 SB [2001:db8::1]1863 CKI a\r\n",
        "XFR 10 SB []:1863 CKI a\r\n",          "XFR 10 SB host:18x3 CKI a\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ev = one_event(MSNP_DIR_S2C, bad[i]);
        assert_int_equal(msnp_parse_xfr(&ev, &x), SW_ERROR);
    }
}

static void test_rng(void **state)
{
    struct msnp_rng r;
    struct msnp_event ev;
    (void)state;
    ev = one_event(MSNP_DIR_S2C, "RNG 11752013 sb.example.com:1863 CKI 849102291.520491113 "
                                 "bob@example.com Bob%20B U messenger.msn.com 1\r\n");
    assert_false(ev.has_trid); /* the session id is not a trid */
    assert_int_equal(msnp_parse_rng(&ev, &r), SW_OK);
    assert_span(&ev, r.sessid, "11752013");
    assert_span(&ev, r.hp.addr, "sb.example.com:1863");
    assert_span(&ev, r.cookie, "849102291.520491113");
    assert_span(&ev, r.email, "bob@example.com");
    assert_span(&ev, r.nick, "Bob%20B");
    ev = one_event(MSNP_DIR_S2C, "RNG 1 10.0.0.1:1863 CKI c bob@example.com\n");
    assert_int_equal(msnp_parse_rng(&ev, &r), SW_OK);
    assert_int_equal(r.nick.len, 0);
    ev = one_event(MSNP_DIR_S2C, "RNG 1 10.0.0.1:1863 CKI c\r\n");
    assert_int_equal(msnp_parse_rng(&ev, &r), SW_ERROR);
    ev = one_event(MSNP_DIR_S2C, "RNG 1 10.0.0.1:1863 TWN c bob@example.com\r\n");
    assert_int_equal(msnp_parse_rng(&ev, &r), SW_ERROR);
    ev = one_event(MSNP_DIR_S2C, "RNG 1 10.0.0.1 CKI c bob@example.com\r\n");
    assert_int_equal(msnp_parse_rng(&ev, &r), SW_ERROR);
    ev = one_event(MSNP_DIR_S2C, "JOI bob@example.com Bob\r\n");
    assert_int_equal(msnp_parse_rng(&ev, &r), SW_DECLINED);
}

static void test_sb_login(void **state)
{
    struct msnp_sb_login l;
    struct msnp_event ev;
    (void)state;
    ev = one_event(MSNP_DIR_C2S, "USR 1 alice@example.com 17262740.1050826919.32308\r\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_OK);
    assert_false(l.ans);
    assert_int_equal(l.trid, 1);
    assert_span(&ev, l.email, "alice@example.com");
    assert_span(&ev, l.cookie, "17262740.1050826919.32308");
    assert_int_equal(l.sessid.len, 0);
    ev = one_event(MSNP_DIR_C2S, "USR 1 alice@example.com;{0d2f-11} a-b-c\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_OK);
    assert_span(&ev, l.email, "alice@example.com;{0d2f-11}");
    assert_span(&ev, l.cookie, "a-b-c");
    ev = one_event(MSNP_DIR_C2S, "ANS 1 alice@example.com 849102291.520491113 11752013\r\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_OK);
    assert_true(l.ans);
    assert_span(&ev, l.cookie, "849102291.520491113");
    assert_span(&ev, l.sessid, "11752013");
    ev = one_event(MSNP_DIR_C2S, "USR 3 SSO I alice@example.com\r\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_DECLINED);
    ev = one_event(MSNP_DIR_C2S, "USR 3 alice@example.com\r\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_ERROR);
    ev = one_event(MSNP_DIR_C2S, "ANS 3 alice@example.com cookie\r\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_ERROR);
    ev = one_event(MSNP_DIR_C2S, "USR x alice@example.com cookie\r\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_DECLINED);
    ev = one_event(MSNP_DIR_C2S, "CAL 2 bob@example.com\r\n");
    assert_int_equal(msnp_parse_sb_login(&ev, &l), SW_DECLINED);
}

static void test_msg_line(void **state)
{
    struct msnp_msg_line m;
    struct msnp_event ev;
    (void)state;
    static const char acks[] = "UNADS";
    for (size_t i = 0; i < 5; i++) {
        char line[32];
        snprintf(line, sizeof(line), "MSG 7 %c 2\r\nhi", acks[i]);
        ev = one_event(MSNP_DIR_C2S, line);
        assert_int_equal(msnp_parse_msg_line(&ev, MSNP_DIR_C2S, &m), SW_OK);
        assert_int_equal(m.ack, acks[i]);
        assert_int_equal(m.email.len, 0);
    }
    ev = one_event(MSNP_DIR_C2S, "MSG 7 X 2\r\nhi");
    assert_int_equal(msnp_parse_msg_line(&ev, MSNP_DIR_C2S, &m), SW_ERROR);
    ev = one_event(MSNP_DIR_C2S, "MSG 7 2\r\nhi");
    assert_int_equal(msnp_parse_msg_line(&ev, MSNP_DIR_C2S, &m), SW_ERROR);
    ev = one_event(MSNP_DIR_S2C, "MSG bob@example.com Bob%20B 2\r\nhi");
    assert_int_equal(msnp_parse_msg_line(&ev, MSNP_DIR_S2C, &m), SW_OK);
    assert_int_equal(m.ack, 0);
    assert_span(&ev, m.email, "bob@example.com");
    assert_span(&ev, m.nick, "Bob%20B");
    ev = one_event(MSNP_DIR_S2C, "MSG bob@example.com 2\r\nhi");
    assert_int_equal(msnp_parse_msg_line(&ev, MSNP_DIR_S2C, &m), SW_ERROR);
    ev = one_event(MSNP_DIR_S2C, "PNG\r\n");
    assert_int_equal(msnp_parse_msg_line(&ev, MSNP_DIR_S2C, &m), SW_DECLINED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_init_limits),
        cmocka_unit_test(test_payload_cmd_table),
        cmocka_unit_test(test_note_sent),
        cmocka_unit_test(test_errors_follow_client_stream),
        cmocka_unit_test(test_retention_contract),
        cmocka_unit_test(test_xfr),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_sb_login),
        cmocka_unit_test(test_msg_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
