/* spimwall-scan: classifies a log of messages offline with the proxy's own matcher and reports
 * one JSON verdict line per message. See docs/spimwall-scan.md.
 *
 *   input (JSON lines or plain text) --line reader--> jsonl_parse --> matcher_classify
 *        --> {"line":N,"verdict":...} on stdout, errors also on stderr, summary at the end
 *
 * One reputation cache lives for the whole run, so behaviour signals (fan-out, campaign, rate)
 * see the replayed log as the proxy would have seen the live traffic, on the log's clock. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/matcher.h"
#include "matcher/reputation.h"
#include "protocols/jsonl.h"
#include "proxy/jsonout.h"
#include "proxy/ruleload.h"

#define SCAN_PROG "spimwall-scan"
#define SCAN_DEFAULT_MAX_LINE (1024u * 1024u)
#define SCAN_MIN_MAX_LINE 16u
#define SCAN_MAX_MAX_LINE (1024u * 1024u * 1024u)
#define SCAN_READ_CHUNK (64u * 1024u)
/* Room for VERDICT_MAX_REASONS reasons with escaped details (6 bytes per detail byte at
 * worst) and long rule ids; an overflowing line is re-emitted without its reasons. */
#define SCAN_OUT_LINE (32u * 1024u)

enum scan_exit {
    SCAN_EXIT_OK = 0,
    SCAN_EXIT_SETUP = 1,
    SCAN_EXIT_STRICT = 2,
};

enum scan_opt_long {
    OPT_CACHE = 256,
    OPT_DATABASES,
    OPT_TAG,
    OPT_DROP,
    OPT_NO_REP,
    OPT_STRICT,
    OPT_NO_SUMMARY,
    OPT_MAX_LINE,
    OPT_VERSION,
};

struct scan_opts {
    const char *rules_dir;
    const char *lists_dir;
    const char *cache_path;
    enum hsdb_layout layout;
    const char *input; /* "-" = stdin */
    bool text;
    bool tag_set, drop_set;
    double tag_threshold, drop_threshold;
    bool no_reputation;
    bool strict;
    bool no_summary;
    size_t max_line;
};

struct scan_counts {
    unsigned long long lines; /* physical lines read, empty ones included */
    unsigned long long empty;
    unsigned long long messages; /* classified */
    unsigned long long by_action[3];
    unsigned long long errors;
};

/* Everything one run holds; released by scan_state_free. */
struct scan_state {
    struct scan_opts opts;
    const char *input_name; /* for messages: the path, or "<stdin>" */
    FILE *in;
    struct hsdb *db;
    struct matcher *matcher;
    struct matcher_ctx *ctx;
    struct rep *rep;
    char *chunk;   /* SCAN_READ_CHUNK bytes */
    char *line;    /* max_line bytes: the current line, without its newline */
    char *scratch; /* max_line + 5 bytes for jsonl_parse */
    char *out;     /* SCAN_OUT_LINE bytes */
    struct scan_counts counts;
    double last_ts; /* seconds; the time of lines without "ts" */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " SCAN_PROG " [options] [FILE|-]\n"
            "Classifies messages offline with spimwall's matcher: one JSON verdict per line.\n"
            "\n"
            "Input (FILE, or stdin when absent or \"-\"): JSON lines\n"
            "  "
            "{\"from\":\"a@x\",\"to\":\"b@y\",\"body\":\"...\",\"ts\":1700000000.5,\"ip\":\"192.0."
            "2.1\"}\n"
            "\n"
            "options:\n"
            "  -r, --rules DIR         rule files (*.rules); default conf/rules\n"
            "  -l, --lists DIR         list files (*.txt); default conf/lists\n"
            "      --cache FILE        compiled-database cache (read if valid, else written)\n"
            "      --databases L       per-target (default: a Hyperscan database per target) or\n"
            "                          one (every pattern in one), as matcher.databases\n"
            "  -t, --text              plain text input: one body per line, no sender/recipient\n"
            "      --tag-threshold N   score from which a message is tagged (default 5)\n"
            "      --drop-threshold N  score from which a message is dropped (default 10)\n"
            "      --no-reputation     no behaviour signals (fan-out, campaign, rate, ...)\n"
            "      --strict            stop at the first bad line (exit 2)\n"
            "      --no-summary        no summary line at the end\n"
            "      --max-line BYTES    longest accepted line (default 1048576)\n"
            "  -h, --help              this help\n"
            "      --version           print the version\n"
            "\n"
            "exit status: 0 done (bad lines are reported and skipped), 1 usage or setup error,\n"
            "2 stopped at a bad line with --strict.\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, SCAN_PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" SCAN_PROG " --help' for more information.\n");
    return SCAN_EXIT_SETUP;
}

static bool parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v > SIZE_MAX)
        return false;
    *out = (size_t)v;
    return true;
}

/* Parses argv into opts. Returns -1 when the run should go on, else the exit status (help,
 * version, usage error). */
static int parse_args(int argc, char **argv, struct scan_opts *opts)
{
    static const struct option longopts[] = {
        {"rules", required_argument, NULL, 'r'},
        {"lists", required_argument, NULL, 'l'},
        {"cache", required_argument, NULL, OPT_CACHE},
        {"databases", required_argument, NULL, OPT_DATABASES},
        {"text", no_argument, NULL, 't'},
        {"tag-threshold", required_argument, NULL, OPT_TAG},
        {"drop-threshold", required_argument, NULL, OPT_DROP},
        {"no-reputation", no_argument, NULL, OPT_NO_REP},
        {"strict", no_argument, NULL, OPT_STRICT},
        {"no-summary", no_argument, NULL, OPT_NO_SUMMARY},
        {"max-line", required_argument, NULL, OPT_MAX_LINE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;

    opts->rules_dir = "conf/rules";
    opts->lists_dir = "conf/lists";
    opts->layout = HSDB_LAYOUT_PER_TARGET;
    opts->max_line = SCAN_DEFAULT_MAX_LINE;
    opts->input = "-";
    opterr = 0; /* our own messages */
    while ((c = getopt_long(argc, argv, ":r:l:th", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            opts->rules_dir = optarg;
            break;
        case 'l':
            opts->lists_dir = optarg;
            break;
        case OPT_CACHE:
            opts->cache_path = optarg;
            break;
        case OPT_DATABASES:
            if (!hsdb_layout_parse(optarg, &opts->layout))
                return usage_error("--databases: expected per-target or one, not '%s'", optarg);
            break;
        case 't':
            opts->text = true;
            break;
        case OPT_TAG:
            if (!parse_double(optarg, &opts->tag_threshold))
                return usage_error("--tag-threshold: not a number: '%s'", optarg);
            opts->tag_set = true;
            break;
        case OPT_DROP:
            if (!parse_double(optarg, &opts->drop_threshold))
                return usage_error("--drop-threshold: not a number: '%s'", optarg);
            opts->drop_set = true;
            break;
        case OPT_NO_REP:
            opts->no_reputation = true;
            break;
        case OPT_STRICT:
            opts->strict = true;
            break;
        case OPT_NO_SUMMARY:
            opts->no_summary = true;
            break;
        case OPT_MAX_LINE:
            if (!parse_size(optarg, &opts->max_line) || opts->max_line < SCAN_MIN_MAX_LINE ||
                opts->max_line > SCAN_MAX_MAX_LINE)
                return usage_error("--max-line: expected a byte count from 16 to 1073741824, "
                                   "got '%s'",
                                   optarg);
            break;
        case 'h':
            usage(stdout);
            return SCAN_EXIT_OK;
        case OPT_VERSION:
            printf(SCAN_PROG " " SW_VERSION "\n");
            return SCAN_EXIT_OK;
        case ':':
            return usage_error("option '%s' needs an argument", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1)
        return usage_error("more than one input file given (first extra: '%s')", argv[optind + 1]);
    if (argc - optind == 1)
        opts->input = argv[optind];
    return -1;
}

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads rules and lists, builds the matcher, the per-thread context and the reputation cache.
 * Returns SW_OK, or SW_ERROR after printing why on stderr. */
static int scan_setup(struct scan_state *st)
{
    struct ruleload_opts ro;
    struct ruleload_info info;
    struct matcher_config cfg;
    struct sw_err err = {{0}};

    ruleload_opts_init(&ro);
    ro.rules_dir = st->opts.rules_dir;
    ro.lists_dir = st->opts.lists_dir;
    ro.cache_path = st->opts.cache_path;
    ro.layout = st->opts.layout;
    memset(&info, 0, sizeof(info));
    st->db = ruleload_build(&ro, &info, &err);
    if (st->db == NULL) {
        fprintf(stderr, SCAN_PROG ": %s\n", err.msg);
        fprintf(stderr, SCAN_PROG ": cannot load the rules (rules %s, lists %s)\n",
                st->opts.rules_dir, st->opts.lists_dir);
        return SW_ERROR;
    }
    if (info.cache_write_error[0] != '\0')
        fprintf(stderr, SCAN_PROG ": warning: cache not written: %s\n", info.cache_write_error);

    matcher_config_defaults(&cfg);
    if (st->opts.tag_set)
        cfg.tag_threshold = st->opts.tag_threshold;
    if (st->opts.drop_set)
        cfg.drop_threshold = st->opts.drop_threshold;
    if (st->opts.no_reputation)
        cfg.reputation = false;
    if (matcher_config_check(&cfg, &err) != SW_OK) {
        fprintf(stderr, SCAN_PROG ": %s\n", err.msg);
        return SW_ERROR;
    }
    st->matcher = matcher_new(st->db, &cfg, &err);
    if (st->matcher == NULL) {
        fprintf(stderr, SCAN_PROG ": %s\n", err.msg);
        return SW_ERROR;
    }
    st->ctx = matcher_ctx_new();
    if (st->ctx == NULL) {
        fprintf(stderr, SCAN_PROG ": out of memory\n");
        return SW_ERROR;
    }
    if (cfg.reputation) {
        st->rep = rep_new(&cfg.rep, &err);
        if (st->rep == NULL) {
            fprintf(stderr, SCAN_PROG ": reputation cache: %s\n", err.msg);
            return SW_ERROR;
        }
    }
    st->chunk = malloc(SCAN_READ_CHUNK);
    st->line = malloc(st->opts.max_line);
    st->scratch = malloc(st->opts.max_line + 5);
    st->out = malloc(SCAN_OUT_LINE);
    if (st->chunk == NULL || st->line == NULL || st->scratch == NULL || st->out == NULL) {
        fprintf(stderr, SCAN_PROG ": out of memory (--max-line %zu)\n", st->opts.max_line);
        return SW_ERROR;
    }
    if (strcmp(st->opts.input, "-") == 0) {
        st->in = stdin;
        st->input_name = "<stdin>";
    } else {
        st->in = fopen(st->opts.input, "rb");
        st->input_name = st->opts.input;
        if (st->in == NULL) {
            fprintf(stderr, SCAN_PROG ": %s: %s\n", st->opts.input, strerror(errno));
            return SW_ERROR;
        }
    }
    return SW_OK;
}

static void scan_state_free(struct scan_state *st)
{
    if (st->in != NULL && st->in != stdin)
        fclose(st->in);
    st->in = NULL;
    free(st->out);
    st->out = NULL;
    free(st->scratch);
    st->scratch = NULL;
    free(st->line);
    st->line = NULL;
    free(st->chunk);
    st->chunk = NULL;
    if (st->rep != NULL)
        rep_free(st->rep);
    st->rep = NULL;
    if (st->ctx != NULL)
        matcher_ctx_free(st->ctx);
    st->ctx = NULL;
    if (st->matcher != NULL)
        matcher_unref(st->matcher);
    st->matcher = NULL;
    if (st->db != NULL)
        hsdb_unref(st->db);
    st->db = NULL;
}

static void emit(const char *s, size_t len)
{
    fwrite(s, 1, len, stdout);
    fputc('\n', stdout);
}

/* Reports a bad line on stdout (JSON) and stderr (human). Returns SW_ERROR if the run stops. */
static int scan_bad_line(struct scan_state *st, const char *why)
{
    struct jsonout b;
    st->counts.errors++;
    jsonout_init(&b, st->out, SCAN_OUT_LINE);
    jsonout_raw(&b, "{\"line\":", 8);
    jsonout_uint(&b, st->counts.lines);
    jsonout_raw(&b, ",\"error\":", 9);
    jsonout_cstr(&b, why);
    jsonout_raw(&b, "}", 1);
    emit(st->out, b.len);
    fflush(stdout); /* keep stdout and stderr in step for a reader of both */
    fprintf(stderr, SCAN_PROG ": %s:%llu: %s\n", st->input_name, st->counts.lines, why);
    return st->opts.strict ? SW_ERROR : SW_OK;
}

/* Appends a score as the shortest of %.1f/%.2f/... (up to 4 decimals) that is exact, with an
 * explicit sign: +6.0, -2.0, +1.5, +0.25. */
static void fmt_score(char *buf, size_t cap, double v)
{
    int prec = 1;
    if (!(fabs(v) < 1e15)) { /* absurd rule scores: stay a short, valid JSON number */
        snprintf(buf, cap, "%+.6e", isfinite(v) ? v : 0.0);
        return;
    }
    while (prec < 4) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*f", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
        prec++;
    }
    snprintf(buf, cap, "%+.*f", prec, v);
}

static void scan_emit_verdict(struct scan_state *st, const struct verdict *v, bool with_reasons)
{
    struct jsonout b;
    char num[64];

    jsonout_init(&b, st->out, SCAN_OUT_LINE);
    jsonout_raw(&b, "{\"line\":", 8);
    jsonout_uint(&b, st->counts.lines);
    jsonout_raw(&b, ",\"verdict\":", 11);
    jsonout_cstr(&b, verdict_action_name(v->action));
    jsonout_raw(&b, ",\"score\":", 9);
    fmt_score(num, sizeof(num), v->score);
    jsonout_raw(&b, num[0] == '+' ? num + 1 : num, strlen(num[0] == '+' ? num + 1 : num));
    if (with_reasons) {
        jsonout_raw(&b, ",\"reasons\":[", 12);
        for (unsigned i = 0; i < v->n_reasons && i < VERDICT_MAX_REASONS; i++) {
            const struct verdict_reason *r = &v->reasons[i];
            char reason[VERDICT_DETAIL_MAX + 512];
            fmt_score(num, sizeof(num), r->score);
            if (r->detail[0] != '\0')
                snprintf(reason, sizeof(reason), "%s(%s){%s}", r->id, num, r->detail);
            else
                snprintf(reason, sizeof(reason), "%s(%s)", r->id, num);
            if (i > 0)
                jsonout_raw(&b, ",", 1);
            jsonout_cstr(&b, reason);
        }
        jsonout_raw(&b, "]", 1);
    } else {
        jsonout_raw(&b, ",\"reasons\":[],\"reasons_truncated\":true", 37);
    }
    if (v->reasons_dropped > 0) {
        jsonout_raw(&b, ",\"reasons_dropped\":", 19);
        jsonout_uint(&b, v->reasons_dropped);
    }
    jsonout_raw(&b, "}", 1);
    if (b.overflow && with_reasons) {
        scan_emit_verdict(st, v, false);
        return;
    }
    emit(st->out, b.len);
}

/* Handles one complete line (without its newline) of at most max_line bytes. Returns SW_ERROR
 * if the run stops (--strict). */
static int scan_line(struct scan_state *st, const char *line, size_t len)
{
    struct jsonl_record rec;
    struct matcher_msg msg;
    struct verdict v;
    struct sw_err err = {{0}};
    size_t i;

    for (i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            break;
    if (i == len) {
        st->counts.empty++;
        return SW_OK;
    }
    memset(&msg, 0, sizeof(msg));
    msg.sender = "";
    msg.recipient = "";
    if (st->opts.text) {
        if (len > 0 && line[len - 1] == '\r')
            len--;
        msg.body = line;
        msg.body_len = len;
    } else {
        if (jsonl_parse(line, len, st->scratch, st->opts.max_line + 5, &rec, &err) != SW_OK)
            return scan_bad_line(st, err.msg);
        if (rec.has_ts) {
            /* now_ms is unsigned milliseconds; 1e13 s is the year 318857. */
            if (!(rec.ts >= 0 && rec.ts < 1e13))
                return scan_bad_line(st, "\"ts\" out of range (seconds since 1970, >= 0)");
            st->last_ts = rec.ts;
        }
        /* An absent address is the empty one (the matcher skips empty keys). */
        msg.sender = rec.from != NULL ? rec.from : "";
        msg.sender_len = rec.from_len;
        msg.recipient = rec.to != NULL ? rec.to : "";
        msg.recipient_len = rec.to_len;
        msg.body = rec.body;
        msg.body_len = rec.body_len;
        msg.ip = rec.ip;
        msg.ip_len = rec.ip_len;
    }
    msg.now_ms = (uint64_t)llround(st->last_ts * 1000.0);
    if (matcher_classify(st->ctx, st->matcher, st->rep, &msg, &v, &err) != SW_OK) {
        char why[SW_ERR_MAX + 32];
        snprintf(why, sizeof(why), "classification failed: %s", err.msg);
        return scan_bad_line(st, why);
    }
    st->counts.messages++;
    if ((unsigned)v.action < 3)
        st->counts.by_action[v.action]++;
    scan_emit_verdict(st, &v, true);
    return SW_OK;
}

/* Reads the input in chunks and cuts it into lines. A line longer than max_line is not kept:
 * it is reported as soon as the bound is passed and the rest up to the next newline is
 * discarded. Returns SW_OK at end of input, SW_ERROR on --strict stop or a read error
 * (*read_error set). */
static int scan_input(struct scan_state *st, bool *read_error)
{
    size_t len = 0; /* bytes of the current line in st->line */
    bool overlong = false;
    bool pending = false; /* a line has started (bytes seen since the last newline) */
    size_t n;

    *read_error = false;
    while ((n = fread(st->chunk, 1, SCAN_READ_CHUNK, st->in)) > 0) {
        const char *p = st->chunk, *end = st->chunk + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t seg = (size_t)((nl != NULL ? nl : end) - p);
            pending = true;
            if (!overlong) {
                if (seg > st->opts.max_line - len) {
                    char why[128];
                    overlong = true;
                    st->counts.lines++;
                    snprintf(why, sizeof(why), "line longer than %zu bytes (--max-line); skipped",
                             st->opts.max_line);
                    if (scan_bad_line(st, why) != SW_OK)
                        return SW_ERROR;
                } else {
                    memcpy(st->line + len, p, seg);
                    len += seg;
                }
            }
            if (nl == NULL)
                break;
            if (!overlong) {
                st->counts.lines++;
                if (scan_line(st, st->line, len) != SW_OK)
                    return SW_ERROR;
            }
            len = 0;
            overlong = false;
            pending = false;
            p = nl + 1;
        }
    }
    if (ferror(st->in)) {
        *read_error = true;
        return SW_ERROR;
    }
    if (pending && !overlong) { /* last line without a newline */
        st->counts.lines++;
        if (scan_line(st, st->line, len) != SW_OK)
            return SW_ERROR;
    }
    return SW_OK;
}

static void scan_emit_summary(struct scan_state *st, double seconds)
{
    struct jsonout b;
    const struct scan_counts *c = &st->counts;
    jsonout_init(&b, st->out, SCAN_OUT_LINE);
    jsonout_raw(&b, "{\"summary\":{\"messages\":", 23);
    jsonout_uint(&b, c->messages);
    jsonout_raw(&b, ",\"pass\":", 8);
    jsonout_uint(&b, c->by_action[VERDICT_PASS]);
    jsonout_raw(&b, ",\"tag\":", 7);
    jsonout_uint(&b, c->by_action[VERDICT_TAG]);
    jsonout_raw(&b, ",\"drop\":", 8);
    jsonout_uint(&b, c->by_action[VERDICT_DROP]);
    jsonout_raw(&b, ",\"errors\":", 10);
    jsonout_uint(&b, c->errors);
    jsonout_raw(&b, ",\"lines\":", 9);
    jsonout_uint(&b, c->lines);
    jsonout_raw(&b, ",\"empty\":", 9);
    jsonout_uint(&b, c->empty);
    jsonout_raw(&b, ",\"seconds\":", 11);
    jsonout_double(&b, seconds, 6);
    jsonout_raw(&b, ",\"msgs_per_s\":", 14);
    jsonout_double(&b, seconds > 0 ? (double)c->messages / seconds : 0.0, 1);
    jsonout_raw(&b, "}}", 2);
    emit(st->out, b.len);
}

int main(int argc, char **argv)
{
    struct scan_state st;
    int status = SCAN_EXIT_SETUP;
    bool read_error = false;
    double t0;
    int rc;

    memset(&st, 0, sizeof(st));
    rc = parse_args(argc, argv, &st.opts);
    if (rc >= 0)
        return rc;
    if (scan_setup(&st) != SW_OK)
        goto fail;

    t0 = mono_seconds();
    rc = scan_input(&st, &read_error);
    if (read_error) {
        fprintf(stderr, SCAN_PROG ": %s: read error: %s\n", st.input_name, strerror(errno));
        goto fail;
    }
    status = rc == SW_OK ? SCAN_EXIT_OK : SCAN_EXIT_STRICT;
    if (!st.opts.no_summary)
        scan_emit_summary(&st, mono_seconds() - t0);
    if (fflush(stdout) == EOF || ferror(stdout)) {
        fprintf(stderr, SCAN_PROG ": writing the output: %s\n", strerror(errno));
        status = SCAN_EXIT_SETUP;
    }
fail:
    scan_state_free(&st);
    return status;
}
