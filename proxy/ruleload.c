/* Rule loader: files in, compiled database out. See ruleload.h. */
#include "proxy/ruleload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct {
    const char *prefix;
    enum rule_kind kind;
} list_prefixes[] = {
    {"domains-block", RULE_KIND_DOMAIN_BLOCK}, {"domains-allow", RULE_KIND_DOMAIN_ALLOW},
    {"senders-block", RULE_KIND_SENDER_BLOCK}, {"senders-allow", RULE_KIND_SENDER_ALLOW},
    {"shorteners", RULE_KIND_SHORTENER},
};

void ruleload_opts_init(struct ruleload_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_file_bytes = RULELOAD_DEFAULT_MAX_FILE;
    opts->max_cache_bytes = RULELOAD_DEFAULT_MAX_CACHE;
    opts->layout = HSDB_LAYOUT_PER_TARGET;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

int ruleload_list_kind(const char *name)
{
    if (name[0] == '.' || !has_suffix(name, ".txt"))
        return -1;
    for (size_t i = 0; i < sizeof(list_prefixes) / sizeof(list_prefixes[0]); i++)
        if (strncmp(name, list_prefixes[i].prefix, strlen(list_prefixes[i].prefix)) == 0)
            return (int)list_prefixes[i].kind;
    return RULE_KIND_RULE;
}

/* Reads a whole regular file of at most max bytes into a malloc'd buffer (*out, caller frees).
 * Returns SW_OK, SW_DECLINED if it does not exist (only when missing_ok), or SW_ERROR with err. */
static int read_file(const char *path, size_t max, int missing_ok, char **out, size_t *out_len,
                     struct sw_err *err)
{
    int fd = -1;
    char *buf = NULL;
    struct stat st;

    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        int e = errno;
        if (missing_ok && e == ENOENT)
            return SW_DECLINED;
        sw_err_set(err, "%s: %s", path, strerror(e));
        goto fail;
    }
    if (fstat(fd, &st) == -1) {
        sw_err_set(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        sw_err_set(err, "%s: not a regular file", path);
        goto fail;
    }
    if ((unsigned long long)st.st_size > max) {
        sw_err_set(err, "%s: file too large (%lld bytes, max %zu)", path, (long long)st.st_size,
                   max);
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    buf = malloc(cap);
    if (buf == NULL) {
        sw_err_set(err, "%s: out of memory", path);
        goto fail;
    }
    for (;;) {
        /* The file may grow while we read: never read past max. */
        if (len == cap) {
            if (cap > max) {
                sw_err_set(err, "%s: file too large (max %zu bytes)", path, max);
                goto fail;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                sw_err_set(err, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            sw_err_set(err, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max) {
        sw_err_set(err, "%s: file too large (max %zu bytes)", path, max);
        goto fail;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return SW_OK;
fail:
    if (fd != -1)
        close(fd);
    free(buf);
    return SW_ERROR;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Lists the names in dir ending in suffix (not starting with '.'), sorted bytewise.
 * *out is malloc'd (free with free_names). */
static int list_dir(const char *dir, const char *suffix, char ***out, size_t *n_out,
                    struct sw_err *err)
{
    DIR *d = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    *n_out = 0;
    d = opendir(dir);
    if (d == NULL) {
        sw_err_set(err, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                sw_err_set(err, "%s: %s", dir, strerror(errno));
                goto fail;
            }
            break;
        }
        if (de->d_name[0] == '.' || !has_suffix(de->d_name, suffix))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (nn == NULL) {
                sw_err_set(err, "%s: out of memory", dir);
                goto fail;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            sw_err_set(err, "%s: out of memory", dir);
            goto fail;
        }
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    *n_out = n;
    return SW_OK;
fail:
    if (d != NULL)
        closedir(d);
    free_names(names, n);
    return SW_ERROR;
}

static int join_path(char *out, size_t cap, const char *dir, const char *name, struct sw_err *err)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return sw_err_set(err, "%s/%s: path too long", dir, name);
    return SW_OK;
}

/* Parses every file of one directory into rs: *.rules (kind < 0) or list files. */
static int load_dir(struct ruleset *rs, const char *dir, int rules, size_t max_file,
                    struct ruleload_info *info, struct sw_err *err)
{
    char **names = NULL;
    size_t n = 0;
    char *buf = NULL;
    size_t len;
    char path[PATH_MAX];

    if (list_dir(dir, rules ? ".rules" : ".txt", &names, &n, err) != SW_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        int kind = rules ? RULE_KIND_RULE : ruleload_list_kind(names[i]);
        if (!rules && kind == RULE_KIND_RULE) {
            sw_err_set(err,
                       "%s/%s: unknown list file name (use domains-block*, domains-allow*, "
                       "senders-block*, senders-allow* or shorteners*.txt)",
                       dir, names[i]);
            goto fail;
        }
        if (join_path(path, sizeof(path), dir, names[i], err) != SW_OK)
            goto fail;
        if (read_file(path, max_file, 0, &buf, &len, err) != SW_OK)
            goto fail;
        size_t before = rs->n;
        int rc = rules ? ruleset_parse_rules(rs, buf, len, path, err)
                       : ruleset_parse_list(rs, (enum rule_kind)kind, buf, len, path, err);
        free(buf);
        buf = NULL;
        if (rc != SW_OK)
            goto fail;
        info->n_files++;
        info->n_entries[kind] += rs->n - before;
    }
    free_names(names, n);
    return SW_OK;
fail:
    free(buf);
    free_names(names, n);
    return SW_ERROR;
}

/* Writes data to path atomically: a temporary file in the same directory, fsync, rename, then
 * fsync of the directory so the rename itself survives a crash. */
static int write_atomic(const char *path, const char *data, size_t len, struct sw_err *err)
{
    char tmp[PATH_MAX];
    int fd = -1, dfd = -1;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return sw_err_set(err, "%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        sw_err_set(err, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            sw_err_set(err, "%s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) == -1) {
        sw_err_set(err, "%s: fsync: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) == -1) {
        fd = -1;
        sw_err_set(err, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1) {
        sw_err_set(err, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    /* Best effort: the directory fsync makes the rename durable; failing it loses nothing now. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd != -1) {
        (void)fsync(dfd);
        close(dfd);
    }
    return SW_OK;
fail:
    if (fd != -1)
        close(fd);
    unlink(tmp);
    return SW_ERROR;
}

struct hsdb *ruleload_build(const struct ruleload_opts *opts, struct ruleload_info *info,
                            struct sw_err *err)
{
    struct ruleload_info local;
    struct ruleset *rs = NULL, *backup = NULL;
    struct hsdb *db = NULL;
    char *cache = NULL, *out = NULL;
    size_t cache_len = 0, out_len = 0;
    struct sw_err cerr;

    if (info == NULL)
        info = &local;
    memset(info, 0, sizeof(*info));
    size_t max_file = opts->max_file_bytes ? opts->max_file_bytes : RULELOAD_DEFAULT_MAX_FILE;
    size_t max_cache = opts->max_cache_bytes ? opts->max_cache_bytes : RULELOAD_DEFAULT_MAX_CACHE;

    rs = ruleset_new(&opts->limits);
    if (rs == NULL) {
        sw_err_set(err, "rules: out of memory");
        goto fail;
    }
    if (opts->rules_dir != NULL && load_dir(rs, opts->rules_dir, 1, max_file, info, err) != SW_OK)
        goto fail;
    if (opts->lists_dir != NULL && load_dir(rs, opts->lists_dir, 0, max_file, info, err) != SW_OK)
        goto fail;
    info->n_rules = info->n_entries[RULE_KIND_RULE];

    if (opts->cache_path != NULL) {
        int rc = read_file(opts->cache_path, max_cache, 1, &cache, &cache_len, &cerr);
        if (rc == SW_DECLINED) {
            info->cache_missing = true;
            snprintf(info->cache_reject, sizeof(info->cache_reject), "%s: no cache file",
                     opts->cache_path);
        } else if (rc != SW_OK) {
            snprintf(info->cache_reject, sizeof(info->cache_reject), "%s", cerr.msg);
        } else {
            /* hsdb_deserialize takes the ruleset even when it refuses the cache: keep a copy
             * to compile from in that case. */
            backup = ruleset_clone(rs);
            if (backup == NULL) {
                sw_err_set(err, "rules: out of memory");
                goto fail;
            }
            db = hsdb_deserialize(rs, opts->layout, cache, cache_len, &cerr);
            rs = NULL;
            if (db == NULL) {
                snprintf(info->cache_reject, sizeof(info->cache_reject), "%.200s: %.300s",
                         opts->cache_path, cerr.msg);
                rs = backup;
                backup = NULL;
            } else {
                info->from_cache = true;
            }
        }
    }
    if (db == NULL) {
        db = hsdb_compile(rs, opts->layout, err);
        rs = NULL;
        if (db == NULL)
            goto fail;
        info->compile_seconds = hsdb_compile_seconds(db);
        if (opts->cache_path != NULL) {
            if (hsdb_serialize(db, &out, &out_len, &cerr) != SW_OK ||
                write_atomic(opts->cache_path, out, out_len, &cerr) != SW_OK)
                snprintf(info->cache_write_error, sizeof(info->cache_write_error), "%s", cerr.msg);
            else
                info->cache_written = true;
        }
    }
    info->db_bytes = hsdb_size(db);
    free(cache);
    free(out);
    ruleset_free(backup);
    return db;
fail:
    free(cache);
    free(out);
    ruleset_free(rs);
    ruleset_free(backup);
    hsdb_unref(db);
    return NULL;
}
