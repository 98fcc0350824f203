/* spimwall: the proxy daemon. Start-up, signals, reload and shutdown on the main thread; the
 * traffic runs on the worker threads (worker.h).
 *
 * Start-up order: parse and check the config, compile the rules, read TLS keys, bind every
 * socket, drop privileges, start the workers, serve. Signals (the main thread's own loop):
 * SIGHUP reloads (built here, off the worker loops, swapped in by each worker), SIGTERM/SIGINT
 * drain for shutdown_grace seconds, then close what is left and exit 0. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ev.h>

#include "matcher/reputation.h"
#include "proxy/admin.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/runtime.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

struct daemon {
    const char *path;
    struct runtime *rt; /* current snapshot; main thread only */
    struct worker_shared sh;
    struct worker *workers;
    unsigned n_workers;
    struct metrics_slot *ms; /* the main thread's slot */
    struct admin *admin;
    ev_signal sig_term, sig_int, sig_hup;
    ev_timer grace, poll;
    bool draining;
};

/* Scrape-time reputation figures for /metrics (admin thread; rep_get_stats locks each shard). */
static void rep_metrics_cb(void *arg, struct metrics_rep_stats *st)
{
    struct rep_stats rs;
    rep_get_stats(arg, &rs);
    st->capacity = rs.capacity;
    st->entries = rs.entries;
    st->bytes = rs.bytes;
    st->hits = rs.hits;
    st->misses = rs.misses;
    st->evictions = rs.evictions;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: spimwall -c FILE       run in the foreground with config FILE\n"
               "       spimwall --check-config FILE   validate FILE (config, rules, TLS keys)\n"
               "       spimwall --version\n");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_WARN, 0, 0, "rlimit_nofile", "error=%s",
                          strerror(errno));
    }
}

static int drop_privileges(const struct config *cfg, struct sw_err *err)
{
    if (cfg->user == NULL)
        return SW_OK;
    errno = 0;
    struct passwd *pw = getpwnam(cfg->user);
    if (pw == NULL)
        return sw_err_set(err, "%s: user \"%s\" not found", cfg->path, cfg->user);
    gid_t gid = pw->pw_gid;
    if (cfg->group != NULL) {
        struct group *gr = getgrnam(cfg->group);
        if (gr == NULL)
            return sw_err_set(err, "%s: group \"%s\" not found", cfg->path, cfg->group);
        gid = gr->gr_gid;
    }
    if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid && getgid() == gid)
        return SW_OK; /* already that user (unprivileged runs, tests) */
    if (setgroups(0, NULL) == -1 || setgid(gid) == -1 || setuid(pw->pw_uid) == -1)
        return sw_err_set(err, "cannot switch to user %s: %s", cfg->user, strerror(errno));
    if (pw->pw_uid != 0 && setuid(0) != -1)
        return sw_err_set(err, "privileges could be regained after switching to %s", cfg->user);
    return SW_OK;
}

static void stop_now(struct daemon *d, struct ev_loop *loop)
{
    for (unsigned i = 0; i < d->n_workers; i++)
        worker_post_stop(&d->workers[i]);
    ev_timer_stop(loop, &d->grace);
    ev_timer_stop(loop, &d->poll);
    ev_break(loop, EVBREAK_ALL);
}

static void grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct daemon *d = t->data;
    LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "grace_over", "closing=%u",
                  atomic_load(&d->sh.n_conns));
    stop_now(d, loop);
}

static void poll_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct daemon *d = t->data;
    if (atomic_load(&d->sh.n_conns) == 0)
        stop_now(d, loop);
}

static void term_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    struct daemon *d = sig->data;
    if (d->draining) {
        LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "shutdown_now", "signal=%d", sig->signum);
        stop_now(d, loop);
        return;
    }
    d->draining = true;
    double grace = d->rt->cfg->shutdown_grace;
    LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "draining", "signal=%d grace=%g live=%u",
                  sig->signum, grace, atomic_load(&d->sh.n_conns));
    if (d->admin != NULL)
        admin_set_draining(d->admin, true);
    else
        metrics_set_draining(d->sh.metrics, true);
    for (unsigned i = 0; i < d->n_workers; i++)
        worker_post_drain(&d->workers[i]);
    ev_timer_init(&d->grace, grace_cb, grace, 0.);
    d->grace.data = d;
    ev_timer_start(loop, &d->grace);
    ev_timer_init(&d->poll, poll_cb, 0.1, 0.1);
    d->poll.data = d;
    ev_timer_start(loop, &d->poll);
}

/* Why the compiled-rules cache was not used or not written, so that an operator sees a cache that
 * keeps being recompiled (a format or Hyperscan upgrade, another CPU, a read-only directory). A
 * cache file that does not exist yet is not worth a line. */
static void log_rules_cache(const struct ruleload_info *info)
{
    if (info->cache_reject[0] != '\0' && !info->cache_missing)
        LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "rules_cache_rejected", "reason=%s",
                      info->cache_reject);
    if (info->cache_write_error[0] != '\0')
        LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_WARN, 0, 0, "rules_cache_not_written", "error=%s",
                      info->cache_write_error);
}

static void hup_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    struct daemon *d = sig->data;
    struct sw_err err = {{0}};
    if (d->draining)
        return;
    LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "reload_start", "config=%s", d->path);
    /* blocking (rule compilation): it stalls the admin listener, never the traffic */
    struct runtime *rt = runtime_load(d->path, &err);
    if (rt != NULL && config_check_reload(d->rt->cfg, rt->cfg, &err) != SW_OK) {
        runtime_unref(rt);
        rt = NULL;
    }
    if (rt == NULL) {
        metrics_inc(d->ms, METRIC_RELOAD_FAILURES, 0, 0);
        LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_ERROR, 0, 0, "reload_failed",
                      "error=%s generation=%llu", err.msg, (unsigned long long)d->rt->generation);
        return;
    }
    rt->generation = d->rt->generation + 1;
    struct sw_err lerr;
    if (log_init(&rt->cfg->log, &lerr) != SW_OK)
        LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_WARN, 0, 0, "log_reconfig_failed", "error=%s",
                      lerr.msg);
    for (unsigned i = 0; i < d->n_workers; i++)
        worker_post_runtime(&d->workers[i], rt);
    runtime_unref(d->rt);
    d->rt = rt;
    metrics_inc(d->ms, METRIC_RELOADS, 0, 0);
    LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "reload_ok",
                  "generation=%llu rules=%zu from_cache=%d", (unsigned long long)rt->generation,
                  rt->rules_info.n_rules, (int)rt->rules_info.from_cache);
    log_rules_cache(&rt->rules_info);
}

static int check_config(const char *path)
{
    struct sw_err err = {{0}};
    tls_global_init();
    struct runtime *rt = runtime_load(path, &err);
    if (rt == NULL) {
        fprintf(stderr, "spimwall: %s\n", err.msg);
        return 1;
    }
    printf("configuration OK: %s (%u listeners, %zu rules, %u workers)\n", path,
           rt->cfg->n_listeners, rt->rules_info.n_rules, rt->cfg->workers);
    const struct ruleload_info *ri = &rt->rules_info;
    if (ri->cache_reject[0] != '\0' && !ri->cache_missing)
        printf("rules cache not used, compiled again: %s\n", ri->cache_reject);
    if (ri->cache_write_error[0] != '\0')
        printf("rules cache not written: %s\n", ri->cache_write_error);
    runtime_unref(rt);
    return 0;
}

static int run(const char *path)
{
    struct daemon d = {.path = path};
    struct sw_err err = {{0}};
    int *fds = NULL;
    int rc = 1;
    struct ev_loop *loop = EV_DEFAULT;

    signal(SIGPIPE, SIG_IGN);
    tls_global_init();
    raise_nofile();
    d.rt = runtime_load(path, &err);
    if (d.rt == NULL)
        goto fail;
    const struct config *cfg = d.rt->cfg;
    if (log_init(&cfg->log, &err) != SW_OK)
        goto fail;
    LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "rules_loaded",
                  "rules=%zu files=%u from_cache=%d compile_s=%.3f", d.rt->rules_info.n_rules,
                  d.rt->rules_info.n_files, (int)d.rt->rules_info.from_cache,
                  d.rt->rules_info.compile_seconds);
    log_rules_cache(&d.rt->rules_info);

    const char *names[CONFIG_MAX_LISTENERS];
    for (unsigned i = 0; i < cfg->n_listeners; i++)
        names[i] = cfg->listeners[i].name;
    d.sh.metrics = metrics_new(cfg->workers + 1, names, cfg->n_listeners, 0, &err);
    if (d.sh.metrics == NULL)
        goto fail;
    d.ms = metrics_slot(d.sh.metrics, cfg->workers);
    /* The reputation cache is built once and survives reloads (its size is fixed at start). */
    if (cfg->matcher.reputation) {
        d.sh.rep = rep_new(&cfg->matcher.rep, &err);
        if (d.sh.rep == NULL)
            goto fail;
        metrics_set_rep_cb(d.sh.metrics, rep_metrics_cb, d.sh.rep);
    }
    d.sh.iptable = iptable_new(cfg->per_ip_table);
    if (d.sh.iptable == NULL) {
        sw_err_set(&err, "out of memory");
        goto fail;
    }
    atomic_init(&d.sh.n_conns, 0);

    /* every socket is bound before privileges drop */
    d.n_workers = cfg->workers;
    fds = malloc((size_t)d.n_workers * cfg->n_listeners * sizeof(*fds));
    d.workers = calloc(d.n_workers, sizeof(*d.workers));
    if (fds == NULL || d.workers == NULL) {
        sw_err_set(&err, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < d.n_workers * cfg->n_listeners; i++)
        fds[i] = -1;
    for (unsigned w = 0; w < d.n_workers; w++) {
        for (unsigned i = 0; i < cfg->n_listeners; i++) {
            const struct config_listener *l = &cfg->listeners[i];
            int fd = listener_socket((const struct sockaddr *)&l->addr, l->addr_len, l->bind, &err);
            if (fd == -1)
                goto fail;
            fds[w * cfg->n_listeners + i] = fd;
        }
    }
    if (cfg->admin_enabled) {
        struct admin_config ac;
        admin_config_defaults(&ac);
        ac.bind = cfg->admin_bind;
        d.admin = admin_new(loop, &ac, d.sh.metrics, &err);
        if (d.admin == NULL)
            goto fail;
    }
    if (drop_privileges(cfg, &err) != SW_OK)
        goto fail;

    /* workers inherit a mask without the handled signals; only this thread takes them */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    for (unsigned w = 0; w < d.n_workers; w++) {
        int wrc = worker_init(&d.workers[w], w + 1, &d.sh, d.rt, &fds[w * cfg->n_listeners],
                              cfg->n_listeners, &err);
        for (unsigned i = 0; i < cfg->n_listeners; i++)
            fds[w * cfg->n_listeners + i] = -1; /* owned by the worker now */
        if (wrc != SW_OK || worker_start(&d.workers[w], &err) != SW_OK) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            goto fail;
        }
    }
    ev_signal_init(&d.sig_term, term_cb, SIGTERM);
    ev_signal_init(&d.sig_int, term_cb, SIGINT);
    ev_signal_init(&d.sig_hup, hup_cb, SIGHUP);
    d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
    ev_signal_start(loop, &d.sig_term);
    ev_signal_start(loop, &d.sig_int);
    ev_signal_start(loop, &d.sig_hup);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    char buf[80];
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "listening",
                      "listener=%s protocol=%s bind=%s tls=%s upstream=%s upstream_tls=%d", l->name,
                      config_proto_name(l->proto),
                      listener_addr_str((const struct sockaddr *)&l->addr, buf, sizeof(buf)),
                      config_tls_mode_name(l->tls),
                      l->upstream.address != NULL ? l->upstream.address : "by-cookie",
                      (int)l->upstream.tls);
    }
    LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "started",
                  "version=%s workers=%u admin=%s pid=%d", SW_VERSION, d.n_workers,
                  d.admin != NULL ? cfg->admin_bind : "off", (int)getpid());
    ev_run(loop, 0);
    rc = 0;
    LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_INFO, 0, 0, "stopped", "pid=%d", (int)getpid());
fail:
    if (rc != 0) {
        LOG_UNLIMITED(LOG_MOD_MAIN, LOG_LEVEL_ERROR, 0, 0, "startup_failed", "error=%s", err.msg);
        for (unsigned w = 0; w < d.n_workers && d.workers != NULL; w++)
            if (d.workers[w].started)
                worker_post_stop(&d.workers[w]);
    }
    for (unsigned w = 0; w < d.n_workers && d.workers != NULL; w++)
        worker_deinit(&d.workers[w]);
    if (fds != NULL && d.rt != NULL) {
        for (unsigned i = 0; i < d.n_workers * d.rt->cfg->n_listeners; i++)
            if (fds[i] != -1)
                close(fds[i]);
    }
    free(fds);
    free(d.workers);
    if (d.admin != NULL)
        admin_free(d.admin);
    ev_signal_stop(loop, &d.sig_term);
    ev_signal_stop(loop, &d.sig_int);
    ev_signal_stop(loop, &d.sig_hup);
    metrics_free(d.sh.metrics);
    rep_free(d.sh.rep);
    iptable_free(d.sh.iptable);
    runtime_unref(d.rt);
    log_deinit();
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--check-config") == 0)
        return check_config(argv[2]);
    if (argc == 3 && strcmp(argv[1], "-c") == 0)
        return run(argv[2]);
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("spimwall %s\n", SW_VERSION);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
