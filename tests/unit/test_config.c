/* Unit tests for proxy/config.c: defaults, every class of error with its file:line and
 * reason, addresses and CIDRs, reload compatibility, the shipped sample config, and the
 * `spimwall --check-config` path of the built binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <openssl/tls1.h>

#include "matcher/hsdb.h"
#include "protocols/sw_rc.h"
#include "proxy/config.h"

#define LISTENER                                                                                   \
    "listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:15222\";\n"              \
    "  upstream = { address = \"127.0.0.1:5222\"; }; } );\n"

static void test_defaults(void **state)
{
    struct sw_err err = {{0}};
    struct config *cfg = config_load_string(LISTENER, "t.conf", &err);
    assert_non_null(cfg);
    assert_true(cfg->workers >= 1); /* 0 = number of cores */
    assert_true(cfg->shutdown_grace == 30);
    assert_int_equal(cfg->max_connections, 100000);
    assert_int_equal(cfg->per_ip_table, 65536);
    assert_int_equal(cfg->rules_layout, HSDB_LAYOUT_PER_TARGET);
    assert_int_equal(cfg->matcher.domain_cache_slots, 1024);
    assert_true(cfg->admin_enabled);
    assert_string_equal(cfg->admin_bind, "127.0.0.1:9464");
    assert_null(cfg->user);
    assert_null(cfg->rules_dir);
    assert_int_equal(cfg->tls.min_version, TLS1_2_VERSION);
    assert_true(cfg->tls.session_tickets);
    assert_int_equal(cfg->n_listeners, 1);
    const struct config_listener *l = &cfg->listeners[0];
    assert_string_equal(l->name, "a");
    assert_int_equal(l->proto, CONFIG_PROTO_TCP);
    assert_int_equal(l->tls, CONFIG_TLS_NONE);
    assert_int_equal(l->limits.max_per_ip, 256);
    assert_int_equal(l->limits.buffer_size, 16384);
    assert_int_equal(l->limits.high_watermark, 16384);
    assert_true(l->timeouts.connect == 10 && l->timeouts.handshake == 10);
    assert_true(l->timeouts.idle == 600);
    assert_true(l->upstream.verify);
    assert_false(l->upstream.tls);
    assert_false(l->upstream.send_proxy);
    assert_true(l->tag_threshold == cfg->matcher.tag_threshold);
    assert_int_equal(l->line, 1);
    config_free(cfg);
}

static void test_overrides(void **state)
{
    struct sw_err err = {{0}};
    const char *text = "workers = 3; shutdown_grace = 2.5;\n"
                       "limits = { buffer_size = 8192; max_per_ip = 7; };\n"
                       "timeouts = { idle = 30; };\n"
                       "matcher = { tag_threshold = 4.0; drop_threshold = 9.0;\n"
                       "  url_arena = 4096; field_cache = 1024; domain_cache = 64;\n"
                       "  databases = \"one\"; };\n"
                       "tls = { min_version = \"TLSv1.3\"; session_tickets = false; };\n"
                       "listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"[::1]:15222\";\n"
                       "  limits = { high_watermark = 4096; };\n"
                       "  thresholds = { drop = 20.0; };\n"
                       "  proxy_protocol = [ \"10.0.0.0/8\", \"2001:db8::/32\" ];\n"
                       "  upstream = { address = \"[::1]:5222\"; tls = true; }; } );\n";
    struct config *cfg = config_load_string(text, "t.conf", &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->workers, 3);
    assert_int_equal(cfg->matcher.url_arena, 4096);
    assert_int_equal(cfg->matcher.field_cache_slots, 1024);
    assert_int_equal(cfg->matcher.domain_cache_slots, 64);
    assert_int_equal(cfg->rules_layout, HSDB_LAYOUT_ONE);
    assert_int_equal(cfg->tls.min_version, TLS1_3_VERSION);
    assert_false(cfg->tls.session_tickets);
    const struct config_listener *l = &cfg->listeners[0];
    assert_int_equal(l->limits.buffer_size, 8192);    /* global default */
    assert_int_equal(l->limits.high_watermark, 4096); /* listener override */
    assert_int_equal(l->limits.max_per_ip, 7);
    assert_true(l->timeouts.idle == 30);
    assert_true(l->tag_threshold == 4.0 && l->drop_threshold == 20.0);
    assert_int_equal(l->n_proxy_from, 2);
    assert_string_equal(l->upstream.server_name, "::1"); /* default: host of the address */
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
    assert_true(config_cidr_match(l->proxy_from, l->n_proxy_from, (struct sockaddr *)&in));
    inet_pton(AF_INET, "11.1.2.3", &in.sin_addr);
    assert_false(config_cidr_match(l->proxy_from, l->n_proxy_from, (struct sockaddr *)&in));
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1::1", &in6.sin6_addr);
    assert_true(config_cidr_match(l->proxy_from, l->n_proxy_from, (struct sockaddr *)&in6));
    inet_pton(AF_INET6, "::ffff:10.9.9.9", &in6.sin6_addr); /* v4-mapped matches as IPv4 */
    assert_true(config_cidr_match(l->proxy_from, l->n_proxy_from, (struct sockaddr *)&in6));
    config_free(cfg);
}

struct error_case {
    const char *text;
    const char *want; /* substring of the error: "t.conf:LINE: ..." */
};

static const struct error_case error_cases[] = {
    {"workers = ;\n", "t.conf:1: syntax error"},
    {"\nworkres = 2;\n" LISTENER, "t.conf:2: workres: unknown option"},
    {"workers = \"two\";\n" LISTENER, "t.conf:1: workers: must be an integer"},
    {"workers = 100000;\n" LISTENER, "t.conf:1: workers: 100000 is out of range 0..256"},
    {"", "t.conf:0: no listeners"},
    {"listeners = ( { name = \"a\"; protocol = \"xmpp-c2s\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; };\n actions = { tag = \"drop\"; }; } );\n",
     "t.conf:3: tag: a tag verdict can be \"tag\" or \"pass\", not \"drop\""},
    {"listeners = ( { name = \"a\"; protocol = \"xmpp-c2s\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; };\n actions = { drop = \"bounce\"; }; } );\n",
     "t.conf:3: drop: \"bounce\" is not one of pass | tag | drop"},
    {"listeners = ( { name = \"a\"; protocol = \"xmpp-c2s\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; };\n xmpp = { stanza_max = 100; }; } );\n",
     "t.conf:3: stanza_max: 100 is out of range 4096..67108864"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; };\n xmpp = { depth_max = 8; }; } );\n",
     "t.conf:3: xmpp: listener a: xmpp options need an xmpp protocol"},
    {"listeners = ( { name = \"a\"; protocol = \"xmpp-c2s\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; };\n actions = { tag_prefix = "
     "\"0123456789012345678901234567890123456789012345678901234567890123456789\"; }; } );\n",
     "t.conf:3: tag_prefix: longer than 64 bytes"},
    {"listeners = (\n { name = \"a\"; protocol = \"xmpp-s2s\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:2: protocol: protocol xmpp-s2s is not implemented yet"},
    {"listeners = (\n { name = \"a\"; protocol = \"msnp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:2: listener a: protocol msnp needs an msnp group (role, ...)"},
    {"listeners = (\n { name = \"a\"; protocol = \"msnp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; };\n msnp = { role = \"ns\"; }; } );\n",
     "t.conf:4: role: role ns in explicit mode needs switchboard = \"host:port\" (the address of "
     "the sb listener, written into XFR and RNG)"},
    {"listeners = (\n { name = \"a\"; protocol = \"msnp\"; bind = \"127.0.0.1:1\";\n"
     "  msnp = { role = \"ns\"; switchboard = \"127.0.0.1:3\"; }; } );\n",
     "t.conf:2: listener a: missing required group \"upstream\""},
    {"listeners = (\n { name = \"a\"; protocol = \"msnp\"; bind = \"127.0.0.1:1\";\n"
     "  msnp = { role = \"sb\"; drop_ack = \"maybe\"; }; } );\n",
     "t.conf:3: drop_ack: \"maybe\" is not one of nak | ack"},
    {"listeners = (\n { name = \"a\"; protocol = \"msnp\"; bind = \"127.0.0.1:1\";\n"
     "  msnp = { role = \"sb\"; oim_entries_max = 65; }; } );\n",
     "t.conf:3: oim_entries_max: 65 is out of range 1..64"},
    {"listeners = (\n { name = \"a\"; protocol = \"msnp\"; bind = \"127.0.0.1:1\";\n"
     "  msnp = { role = \"sb\"; oim_field_max = 8; }; } );\n",
     "t.conf:3: oim_field_max: 8 is out of range 16..16384"},
    {"listeners = ( { name = \"a\"; protocol = \"smtp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:1: protocol: \"smtp\" is not one of tcp | xmpp-c2s | xmpp-s2s | msnp"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  tls = \"starttls\"; upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:2: tls: starttls needs a protocol"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  tls = \"direct\"; upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:1: listener a: tls = \"direct\" needs certificates"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\";\n bind = \"127.0.0.1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:2: bind: \"127.0.0.1\": expected host:port"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"localhost:5\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:1: bind: \"localhost:5\": host must be a numeric IPv4 or IPv6 address"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\"; } );\n",
     "t.conf:1: listener a: missing required group \"upstream\""},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\";\n  verfy = false; }; } );\n",
     "t.conf:3: verfy: unknown option"},
    {"limits = {\n buffer_size = 4096;\n high_watermark = 8192; };\n" LISTENER,
     "t.conf:3: high_watermark: high_watermark (8192) exceeds buffer_size (4096)"},
    {"limits = { buffer_size = 100; };\n" LISTENER,
     "t.conf:1: buffer_size: 100 is out of range 2048..16777216"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  proxy_protocol = [ \"10.0.0.0/33\" ];\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:2: proxy_protocol: \"10.0.0.0/33\": bad prefix length"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  thresholds = { tag = 9.0; drop = 9.0; };\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:2: thresholds: tag (9) must be below drop (9)"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; },\n"
     "  { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:3\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:3: listener name \"a\" is already used at line 1"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; },\n"
     "  { name = \"b\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:3: bind 127.0.0.1:1 is already used by listener a"},
    {"log = {\n level = \"loud\"; };\n" LISTENER,
     "t.conf:2: level: \"loud\" is not one of error | warn | info | debug"},
    {"tls = { min_version = \"TLSv1.0\"; };\n" LISTENER,
     "t.conf:1: min_version: \"TLSv1.0\" is not one of TLSv1.2 | TLSv1.3"},
    {"group = \"nogroup\";\n" LISTENER, "t.conf:1: group: group needs user"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  upstream = { address = \"127.0.0.1:2\"; ca_file = \"/x\"; }; } );\n",
     "t.conf:2: upstream: ca_file and server_name need tls = true"},
    {"listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
     "  tls = \"direct\"; certificates = ( { names = [\"x\"]; cert = \"c.pem\"; } );\n"
     "  upstream = { address = \"127.0.0.1:2\"; }; } );\n",
     "t.conf:2: a certificate needs both cert and key"},
    {"matcher = { tag_threshold = 12.0; };\n" LISTENER, "t.conf:1: matcher:"},
    {"matcher = { field_cache = 1000; };\n" LISTENER,
     "t.conf:1: matcher: matcher: field_cache_slots must be 0 or a power of two"},
    {"matcher = { databases = \"two\"; };\n" LISTENER,
     "t.conf:1: databases: \"two\" is not one of per-target | one"},
    {"matcher = { domain_cache = 100; };\n" LISTENER,
     "t.conf:1: matcher: matcher: domain_cache_slots must be 0 or a power of two"},
    {"matcher = { url_arena = 100; };\n" LISTENER, "t.conf:1: url_arena: 100 is out of range"},
};

static void test_errors_have_line_and_reason(void **state)
{
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        struct sw_err err = {{0}};
        struct config *cfg = config_load_string(error_cases[i].text, "t.conf", &err);
        if (cfg != NULL || strstr(err.msg, error_cases[i].want) == NULL) {
            print_error("case %zu: want \"%s\", got \"%s\"\n", i, error_cases[i].want,
                        cfg != NULL ? "(accepted)" : err.msg);
            config_free(cfg);
            fail();
        }
    }
}

static void test_missing_file(void **state)
{
    struct sw_err err = {{0}};
    assert_null(config_load("/nonexistent/spimwall.conf", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/spimwall.conf: cannot read"));
}

static void test_parse_addr(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct sw_err err;
    assert_int_equal(config_parse_addr("127.0.0.1:80", &ss, &len, &err), SW_OK);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
    assert_int_equal(config_parse_addr("[::1]:65535", &ss, &len, &err), SW_OK);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(config_parse_addr("[::1]:65536", &ss, &len, &err), SW_ERROR);
    assert_int_equal(config_parse_addr("1.2.3.4:", &ss, &len, &err), SW_ERROR);
    assert_int_equal(config_parse_addr("1.2.3.4:x", &ss, &len, &err), SW_ERROR);
    assert_int_equal(config_parse_addr("[::1", &ss, &len, &err), SW_ERROR);
}

static void test_reload_compat(void **state)
{
    struct sw_err err = {{0}};
    struct config *a = config_load_string("workers = 2;\n" LISTENER, "a.conf", &err);
    struct config *b =
        config_load_string("workers = 2; limits = { max_per_ip = 1; };\n" LISTENER, "b.conf", &err);
    struct config *c = config_load_string(
        "workers = 2;\nlisteners = ( { name = \"a\"; protocol = \"tcp\";\n"
        "  bind = \"127.0.0.1:15223\"; upstream = { address = \"127.0.0.1:5222\"; }; } );\n",
        "c.conf", &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(config_check_reload(a, b, &err), SW_OK); /* limits may change */
    assert_int_equal(config_check_reload(a, c, &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "c.conf:2: listener a: name, protocol, tls mode or bind "
                                    "changed: restart needed"));
    config_free(a);
    config_free(b);
    config_free(c);
}

/* The shipped sample must stay valid (certificates are not read by config_load). */
static void test_sample_config(void **state)
{
    struct sw_err err = {{0}};
    struct config *cfg = config_load("conf/spimwall.conf", &err);
    if (cfg == NULL)
        print_error("%s\n", err.msg);
    assert_non_null(cfg);
    assert_true(cfg->n_listeners >= 2);
    config_free(cfg);
}

static int run_check(const char *conf, char *out, size_t cap)
{
    const char *bdir = getenv("SW_BUILD_DIR");
    char cmd[4096];
    int w = snprintf(cmd, sizeof(cmd), "%s/spimwall --check-config %s 2>&1", bdir, conf);
    assert_true(w > 0 && (size_t)w < sizeof(cmd));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_check_config_cli(void **state)
{
    const char *bdir = getenv("SW_BUILD_DIR");
    char path[1200], exe[1024], out[4096];
    if (bdir == NULL) {
        skip();
        return;
    }
    snprintf(exe, sizeof(exe), "%s/spimwall", bdir);
    if (access(exe, X_OK) != 0) {
        skip();
        return;
    }
    char dir[] = "/tmp/sw_test_config_XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ok.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "matcher = { rules_dir = \"conf/rules\"; lists_dir = \"conf/lists\"; };\n%s",
            LISTENER);
    fclose(f);
    assert_int_equal(run_check(path, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "configuration OK"));
    unlink(path);

    snprintf(path, sizeof(path), "%s/bad.conf", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "\n\nworkers = -1;\n%s", LISTENER);
    fclose(f);
    assert_int_equal(run_check(path, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "bad.conf:3: workers: -1 is out of range"));
    unlink(path);

    /* a rules error is a config error too, with the rule file's line */
    char rdir[1100];
    snprintf(rdir, sizeof(rdir), "%s/rules", dir);
    assert_int_equal(mkdir(rdir, 0700), 0);
    snprintf(path, sizeof(path), "%s/x.rules", rdir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# comment\nrule nonsense\n");
    fclose(f);
    char cpath[1100];
    snprintf(cpath, sizeof(cpath), "%s/rules.conf", dir);
    f = fopen(cpath, "w");
    assert_non_null(f);
    fprintf(f, "matcher = { rules_dir = \"%s\"; };\n%s", rdir, LISTENER);
    fclose(f);
    assert_int_equal(run_check(cpath, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "x.rules:2:"));

    /* certificates and keys are read by --check-config too, errors at the entry's line */
    f = fopen(cpath, "w");
    assert_non_null(f);
    fprintf(
        f,
        "listeners = ( { name = \"a\"; protocol = \"tcp\"; bind = \"127.0.0.1:1\";\n"
        "  tls = \"direct\";\n"
        "  certificates = ( { cert = \"/nonexistent/c.pem\"; key = \"/nonexistent/k.pem\"; } );\n"
        "  upstream = { address = \"127.0.0.1:2\"; }; } );\n");
    fclose(f);
    assert_int_equal(run_check(cpath, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "rules.conf:3: certificate /nonexistent/c.pem:"));
    unlink(path);
    unlink(cpath);
    rmdir(rdir);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_errors_have_line_and_reason),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_reload_compat),
        cmocka_unit_test(test_sample_config),
        cmocka_unit_test(test_check_config_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
