/* The verdict path shared by the protocols: classify, time, count, fail open, log, map to the
 * listener's action. See proxy/judge.h. */
#include <string.h>
#include <time.h>

#include "proxy/judge.h"
#include "proxy/metrics.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void judge_init(struct judge *j, struct session *s, struct judge_sites *sites)
{
    j->s = s;
    j->cfg = session_listener(s);
    j->lidx = session_listener_index(s);
    j->sites = sites;
    session_peer_ip(s, j->ip, sizeof(j->ip));
}

enum verdict_action judge_action(const struct config_listener *cfg, double score)
{
    /* config_action values equal verdict_action ones (proxy/config.h) */
    if (score >= cfg->drop_threshold)
        return (enum verdict_action)cfg->actions.on_drop;
    if (score >= cfg->tag_threshold)
        return (enum verdict_action)cfg->actions.on_tag;
    return VERDICT_PASS;
}

enum verdict_action judge_message(const struct judge *j, enum session_dir dir,
                                  const struct matcher_msg *m, const char *what,
                                  struct judge_result *r)
{
    struct session *s = j->s;
    struct metrics_slot *ms = session_metrics(s);
    struct matcher_msg msg = *m;
    msg.now_ms = session_now_ms(s);
    if (dir == SESSION_C2S) {
        msg.ip = j->ip;
        msg.ip_len = strlen(j->ip);
    } else {
        msg.flags |= MATCHER_F_INBOUND;
    }
    r->reasons[0] = '\0';

    struct sw_err err;
    struct matcher_ctx *ctx = session_matcher_ctx(s);
    uint64_t t0 = mono_ns();
    int rc = ctx != NULL
                 ? matcher_classify(ctx, session_matcher(s), session_rep(s), &msg, &r->v, &err)
                 : SW_ERROR;
    metrics_observe_scan(ms, mono_ns() - t0);
    if (rc != SW_OK) {
        /* fail open: a scanner failure must not eat legitimate mail; counted and logged */
        metrics_inc(ms, METRIC_PROTOCOL_ERRORS, j->lidx, 0);
        log_emit(&j->sites->scan_failed, LOG_LEVEL_WARN, session_worker_id(s), session_id(s),
                 "scan_failed", "listener=%s error=%s", j->cfg->name,
                 ctx != NULL ? err.msg : "no context");
        memset(&r->v, 0, sizeof(r->v));
        r->act = VERDICT_PASS;
        return r->act;
    }

    r->act = judge_action(j->cfg, r->v.score);
    metrics_inc(ms, METRIC_MESSAGES, j->lidx, (unsigned)r->act);
    for (unsigned i = 0; i < r->v.n_reasons; i++)
        metrics_rule_hit(ms, r->v.reasons[i].id);
    if (r->act == VERDICT_PASS)
        return r->act; /* the reasons string is built only for tag and drop */

    verdict_reasons(&r->v, r->reasons, sizeof(r->reasons));
    const char *reasons = r->reasons[0] != '\0' ? r->reasons : "-";
    int sl = (int)(msg.sender_len > JUDGE_LOG_SENDER_MAX ? JUDGE_LOG_SENDER_MAX : msg.sender_len);
    /* " what=..." only when the protocol names the kind of text */
    log_emit(&j->sites->verdict, LOG_LEVEL_INFO, session_worker_id(s), session_id(s), "verdict",
             "listener=%s direction=%s%s%s action=%s score=%.1f reasons=%s sender=%.*s "
             "fingerprint=%016llx",
             j->cfg->name, session_dir_name(dir), what != NULL ? " what=" : "",
             what != NULL ? what : "", verdict_action_name(r->act), r->v.score, reasons, sl,
             msg.sender, (unsigned long long)r->v.fingerprint);
    return r->act;
}
