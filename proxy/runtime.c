/* Runtime snapshots; see runtime.h. */
#include "proxy/runtime.h"

#include <stdlib.h>

#include "proxy/session.h"

static void runtime_free(struct runtime *rt)
{
    if (rt->listeners != NULL) {
        for (unsigned i = 0; i < rt->cfg->n_listeners; i++) {
            tls_server_deinit(&rt->listeners[i].server);
            SSL_CTX_free(rt->listeners[i].client_ctx);
        }
    }
    free(rt->listeners);
    if (rt->matcher != NULL)
        matcher_unref(rt->matcher);
    config_free(rt->cfg);
    free(rt);
}

struct runtime *runtime_new(struct config *cfg, struct sw_err *err)
{
    struct hsdb *db = NULL;
    struct runtime *rt = calloc(1, sizeof(*rt));
    if (rt == NULL) {
        config_free(cfg);
        sw_err_set(err, "out of memory");
        return NULL;
    }
    atomic_init(&rt->refs, 1);
    rt->generation = 1;
    rt->cfg = cfg;

    struct ruleload_opts opts;
    ruleload_opts_init(&opts);
    opts.rules_dir = cfg->rules_dir;
    opts.lists_dir = cfg->lists_dir;
    opts.cache_path = cfg->rules_cache;
    opts.layout = (enum hsdb_layout)cfg->rules_layout; /* checked by the config parser */
    db = ruleload_build(&opts, &rt->rules_info, err);
    if (db == NULL)
        goto fail;
    rt->matcher = matcher_new(db, &cfg->matcher, err);
    hsdb_unref(db);
    db = NULL;
    if (rt->matcher == NULL)
        goto fail;

    rt->listeners = calloc(cfg->n_listeners, sizeof(*rt->listeners));
    if (rt->listeners == NULL) {
        sw_err_set(err, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        struct runtime_listener *rl = &rt->listeners[i];
        rl->cfg = &cfg->listeners[i];
        if (rl->cfg->tls != CONFIG_TLS_NONE &&
            tls_server_init(&rl->server, cfg, rl->cfg, err) != SW_OK)
            goto fail;
        if (rl->cfg->upstream.tls || rl->cfg->upstream.starttls) {
            rl->client_ctx = tls_client_ctx_new(cfg, rl->cfg, session_upstream_new_session, err);
            if (rl->client_ctx == NULL)
                goto fail;
        }
    }
    return rt;
fail:
    runtime_free(rt);
    return NULL;
}

struct runtime *runtime_load(const char *path, struct sw_err *err)
{
    struct config *cfg = config_load(path, err);
    if (cfg == NULL)
        return NULL;
    return runtime_new(cfg, err);
}

struct runtime *runtime_ref(struct runtime *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
    return rt;
}

void runtime_unref(struct runtime *rt)
{
    if (rt == NULL)
        return;
    if (atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) == 1)
        runtime_free(rt);
}
