/* Unit tests for matcher/url.c: every link form url_extract() finds, the chat it must leave
 * alone, the canonical form, registrable domains, bounds (items, arena) and linear time on
 * floods. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "matcher/cpu.h"
#include "matcher/url.h"

static int setup(void **state)
{
    struct url_set *set = url_set_new(16, 8192, 1024);
    if (set == NULL)
        return -1;
    *state = set;
    return 0;
}

static int teardown(void **state)
{
    url_set_free(*state);
    return 0;
}

/* Checks what every extraction must give: spans inside the text, in order, not overlapping;
 * strings NUL-terminated with the lengths given; domain a suffix of host; path inside url. */
static void check_invariants(const struct url_set *set, size_t len)
{
    assert_true(set->n <= set->max);
    assert_true(set->arena_used <= set->arena_cap);
    for (unsigned i = 0; i < set->n; i++) {
        const struct url_item *it = &set->items[i];
        assert_true(it->span_len > 0);
        assert_true((size_t)it->span_off + it->span_len <= len);
        if (i > 0)
            assert_true(it->span_off >= set->items[i - 1].span_off + set->items[i - 1].span_len);
        assert_int_equal(strlen(it->url), it->url_len);
        assert_int_equal(strlen(it->host), it->host_len);
        assert_int_equal(strlen(it->path), it->path_len);
        assert_true(it->domain >= it->host);
        assert_true(it->domain + it->domain_len == it->host + it->host_len);
        assert_true(it->path + it->path_len == it->url + it->url_len);
        assert_null(strchr(it->host, ' '));
    }
}

static unsigned extract(struct url_set *set, const char *text)
{
    unsigned n = url_extract(text, strlen(text), set);
    assert_int_equal(n, set->n);
    check_invariants(set, strlen(text));
    return n;
}

/* Asserts that text holds exactly one link, with this canonical url, host, domain and flags,
 * and that its span is the substring span (NULL: not checked). */
static void check_one(struct url_set *set, const char *text, const char *url, const char *host,
                      const char *domain, unsigned flags, const char *span)
{
    assert_int_equal(extract(set, text), 1);
    const struct url_item *it = &set->items[0];
    assert_string_equal(it->url, url);
    assert_string_equal(it->host, host);
    assert_int_equal(it->domain_len, strlen(domain));
    assert_memory_equal(it->domain, domain, strlen(domain));
    assert_int_equal(it->flags, flags);
    if (span != NULL) {
        const char *at = strstr(text, span);
        assert_non_null(at);
        assert_int_equal(it->span_off, at - text);
        assert_int_equal(it->span_len, strlen(span));
    }
}

static void check_none(struct url_set *set, const char *text)
{
    if (extract(set, text) != 0)
        fail_msg("\"%s\" gave the link %s", text, set->items[0].url);
    assert_int_equal(set->dropped, 0);
}

static void test_schemes(void **state)
{
    struct url_set *set = *state;
    check_one(set, "go http://evil.example.com now", "http://evil.example.com",
              "evil.example.com", "example.com", 0, "http://evil.example.com");
    check_one(set, "https://b.net/x?y=1#z", "https://b.net/x?y=1#z", "b.net", "b.net", 0, NULL);
    check_one(set, "ftp://files.c.org/f.zip", "ftp://files.c.org/f.zip", "files.c.org", "c.org",
              0, NULL);
    /* scheme and host lower-cased, path kept as written */
    check_one(set, "HTTPS://Evil.RU:8080/Path?Q=A", "https://evil.ru:8080/Path?Q=A", "evil.ru",
              "evil.ru", 0, "HTTPS://Evil.RU:8080/Path?Q=A");
    assert_string_equal(set->items[0].path, "/Path?Q=A");
    /* a scheme makes a single label a host */
    check_one(set, "see http://localhost:8080/x ok", "http://localhost:8080/x", "localhost",
              "localhost", URL_F_NO_SUFFIX, "http://localhost:8080/x");
    check_none(set, "http:///x");
    /* "xhttp://" is not a scheme, but the host after it is still a link */
    check_one(set, "xhttp://evil.ru/a", "http://evil.ru/a", "evil.ru", "evil.ru",
              URL_F_SCHEMELESS, "evil.ru/a");
}

static void test_defanged(void **state)
{
    struct url_set *set = *state;
    static const char *const forms[] = {"hxxp://evil.ru/a", "hXXp://evil.ru/a", "h**p://evil.ru/a",
                                        "HXXP://evil.ru/a", "hxxp[:]//evil.ru/a"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        check_one(set, forms[i], "http://evil.ru/a", "evil.ru", "evil.ru", URL_F_DEFANGED,
                  forms[i]);
    check_one(set, "hxxps://evil.ru", "https://evil.ru", "evil.ru", "evil.ru", URL_F_DEFANGED,
              NULL);
    check_one(set, "h**ps://evil.ru/", "https://evil.ru/", "evil.ru", "evil.ru", URL_F_DEFANGED,
              NULL);
}

static void test_schemeless(void **state)
{
    struct url_set *set = *state;
    check_one(set, "visit www.evil.ru today", "http://www.evil.ru", "www.evil.ru", "evil.ru",
              URL_F_SCHEMELESS, "www.evil.ru");
    /* bare host under a common link TLD */
    check_one(set, "evil.ru", "http://evil.ru", "evil.ru", "evil.ru", URL_F_SCHEMELESS, NULL);
    check_one(set, "click bit.ly/abc", "http://bit.ly/abc", "bit.ly", "bit.ly", URL_F_SCHEMELESS,
              "bit.ly/abc");
    check_one(set, "EVIL.RU", "http://evil.ru", "evil.ru", "evil.ru", URL_F_SCHEMELESS, NULL);
    /* a real suffix that is not a common TLD needs a path, a port or three labels */
    check_one(set, "pics.co.uk/x.zip", "http://pics.co.uk/x.zip", "pics.co.uk", "pics.co.uk",
              URL_F_SCHEMELESS, "pics.co.uk/x.zip");
    check_one(set, "hello.world/x", "http://hello.world/x", "hello.world", "hello.world",
              URL_F_SCHEMELESS, NULL);
    check_one(set, "my.pics.world", "http://my.pics.world", "my.pics.world", "pics.world",
              URL_F_SCHEMELESS, NULL);
    check_one(set, "hello.world:8080", "http://hello.world:8080", "hello.world", "hello.world",
              URL_F_SCHEMELESS, NULL);
    /* a trailing full stop ends the sentence, not the host */
    check_one(set, "go to evil.ru.", "http://evil.ru", "evil.ru", "evil.ru", URL_F_SCHEMELESS,
              "evil.ru");
}

static void test_dot_words(void **state)
{
    struct url_set *set = *state;
    static const struct {
        const char *text, *url, *host, *domain, *span;
    } v[] = {
        {"evil[.]com", "http://evil.com", "evil.com", "evil.com", "evil[.]com"},
        {"see evil (.) com", "http://evil.com", "evil.com", "evil.com", "evil (.) com"},
        {"evil{.}ru/x", "http://evil.ru/x", "evil.ru", "evil.ru", "evil{.}ru/x"},
        {"evil[dot]com", "http://evil.com", "evil.com", "evil.com", "evil[dot]com"},
        {"evil (dot) com", "http://evil.com", "evil.com", "evil.com", "evil (dot) com"},
        {"evil(DOT)com", "http://evil.com", "evil.com", "evil.com", "evil(DOT)com"},
        {"go to evil dot com/pics now", "http://evil.com/pics", "evil.com", "evil.com",
         "evil dot com/pics"},
        {"a[.]b[.]evil[.]ru", "http://a.b.evil.ru", "a.b.evil.ru", "evil.ru", "a[.]b[.]evil[.]ru"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        check_one(set, v[i].text, v[i].url, v[i].host, v[i].domain,
                  URL_F_SCHEMELESS | URL_F_DOT_WORD, v[i].span);
    /* dot-words after a scheme */
    check_one(set, "hxxp://evil[.]ru/x", "http://evil.ru/x", "evil.ru", "evil.ru",
              URL_F_DEFANGED | URL_F_DOT_WORD, "hxxp://evil[.]ru/x");
    /* phrases, not hosts */
    check_none(set, "the dot com bubble");
    check_none(set, "a polka dot dress");
    check_none(set, "a [.] b");
    check_none(set, "x (.) y (.) z");
}

static void test_ip_hosts(void **state)
{
    struct url_set *set = *state;
    check_one(set, "http://192.168.0.1/x", "http://192.168.0.1/x", "192.168.0.1", "192.168.0.1",
              URL_F_IP_HOST, NULL);
    check_one(set, "get 10.0.0.1/path now", "http://10.0.0.1/path", "10.0.0.1", "10.0.0.1",
              URL_F_IP_HOST | URL_F_SCHEMELESS, "10.0.0.1/path");
    check_one(set, "10.0.0.1:8080", "http://10.0.0.1:8080", "10.0.0.1", "10.0.0.1",
              URL_F_IP_HOST | URL_F_SCHEMELESS, NULL);
    /* a bare address without path or port is chat (a version, an example) */
    check_none(set, "ping 10.0.0.1 please");
    check_none(set, "1.2.3.4.5/x");
    check_one(set, "http://[2001:DB8::1]:8443/x", "http://[2001:db8::1]:8443/x", "[2001:db8::1]",
              "[2001:db8::1]", URL_F_IP_HOST, "http://[2001:DB8::1]:8443/x");
    check_one(set, "https://[::1]/", "https://[::1]/", "[::1]", "[::1]", URL_F_IP_HOST, NULL);
    /* a number after a scheme is an address in decimal or hex (127.0.0.1 below) */
    check_one(set, "go http://2130706433/x now", "http://2130706433/x", "2130706433",
              "2130706433", URL_F_IP_HOST, "http://2130706433/x");
    check_one(set, "http://0x7f.1/", "http://0x7f.1/", "0x7f.1", "0x7f.1", URL_F_IP_HOST, NULL);
}

static void test_userinfo_and_punycode(void **state)
{
    struct url_set *set = *state;
    check_one(set, "http://paypal.com@evil.ru/login", "http://evil.ru/login", "evil.ru",
              "evil.ru", URL_F_USERINFO, "http://paypal.com@evil.ru/login");
    check_one(set, "https://user:pw@x.evil.ru/", "https://x.evil.ru/", "x.evil.ru", "evil.ru",
              URL_F_USERINFO, NULL);
    check_one(set, "http://xn--80ak6aa92e.com/x", "http://xn--80ak6aa92e.com/x",
              "xn--80ak6aa92e.com", "xn--80ak6aa92e.com", URL_F_PUNYCODE, NULL);
    check_one(set, "https://www.xn--pypal-4ve.com/", "https://www.xn--pypal-4ve.com/",
              "www.xn--pypal-4ve.com", "xn--pypal-4ve.com", URL_F_PUNYCODE, NULL);
    /* a byte >= 0x80 ends a userinfo before its '@' (the scan compares signed chars): the
     * host is what comes before it, wherever in a block it stands */
    for (size_t n = 0; n < 24; n++) {
        char text[96], want[64];
        snprintf(text, sizeof(text), "http://%.*scaf\xc3\xa9@evil.ru/x", (int)n,
                 "abcdefghijklmnopqrstuvwxyz");
        snprintf(want, sizeof(want), "%.*scaf\xc3\xa9", (int)n, "abcdefghijklmnopqrstuvwxyz");
        assert_int_equal(extract(set, text), 1);
        assert_string_equal(set->items[0].host, want);
        assert_int_equal(set->items[0].flags & URL_F_USERINFO, 0);
    }
    /* userinfo longer than a sixteen-byte step, ending at '@' anywhere in a block */
    for (size_t n = 1; n < 40; n++) {
        char text[128], user[64];
        for (size_t k = 0; k < n; k++)
            user[k] = (char)('a' + k % 26);
        user[n] = '\0';
        snprintf(text, sizeof(text), "http://%s@evil.ru/login now", user);
        check_one(set, text, "http://evil.ru/login", "evil.ru", "evil.ru", URL_F_USERINFO, NULL);
        /* a '/' before the '@' makes it a path, not userinfo */
        snprintf(text, sizeof(text), "http://good.example/%s@evil.ru/login now", user);
        assert_int_equal(extract(set, text), 1);
        assert_string_equal(set->items[0].host, "good.example");
    }
    /* an e-mail address is not a link */
    check_none(set, "bob@example.com");
    check_none(set, "mail bob.smith@evil.ru now");
}

static void test_ports_and_paths(void **state)
{
    struct url_set *set = *state;
    check_one(set, "http://x.com:8080/a", "http://x.com:8080/a", "x.com", "x.com", 0, NULL);
    assert_string_equal(set->items[0].path, "/a");
    /* trailing punctuation and an unbalanced closing parenthesis belong to the sentence */
    check_one(set, "(see http://x.com/a).", "http://x.com/a", "x.com", "x.com", 0,
              "http://x.com/a");
    assert_string_equal(set->items[0].path, "/a");
    check_one(set, "is it http://x.com/a?!", "http://x.com/a", "x.com", "x.com", 0, NULL);
    check_one(set, "\"http://x.com/a\"", "http://x.com/a", "x.com", "x.com", 0, NULL);
    check_one(set, "<http://x.com/a>", "http://x.com/a", "x.com", "x.com", 0, NULL);
    /* balanced parentheses are part of the path */
    check_one(set, "https://en.wikipedia.org/wiki/Foo_(bar)",
              "https://en.wikipedia.org/wiki/Foo_(bar)", "en.wikipedia.org", "wikipedia.org", 0,
              NULL);
    assert_string_equal(set->items[0].path, "/wiki/Foo_(bar)");
    check_one(set, "(https://en.wikipedia.org/wiki/Foo_(bar))",
              "https://en.wikipedia.org/wiki/Foo_(bar)", "en.wikipedia.org", "wikipedia.org", 0,
              NULL);
    /* query without a path */
    check_one(set, "http://x.com?a=b", "http://x.com?a=b", "x.com", "x.com", 0, NULL);
    assert_string_equal(set->items[0].path, "?a=b");
    /* no path: "" */
    check_one(set, "http://x.com", "http://x.com", "x.com", "x.com", 0, NULL);
    assert_string_equal(set->items[0].path, "");

    /* Paths long enough for the sixteen-byte steps of path_end(): each delimiter ends the path
     * inside a block, wherever in the block it stands, and bytes >= 0x80 do not. */
    static const char delims[] = {' ', '\t', '<', '>', '"', '`', '{', '}', '|', '\\', '^', 0x7f};
    for (size_t d = 0; d < sizeof(delims); d++) {
        for (size_t at = 1; at < 40; at++) {
            char text[128], want[128];
            char path[64];
            for (size_t k = 0; k < at; k++)
                path[k] = (char)('a' + k % 26);
            path[0] = '/';
            path[at] = '\0';
            snprintf(text, sizeof(text), "http://x.com%s%cpadpadpadpadpadpadpadpad", path,
                     delims[d]);
            snprintf(want, sizeof(want), "http://x.com%s", path);
            check_one(set, text, want, "x.com", "x.com", 0, NULL);
        }
    }
    check_one(set, "http://x.com/caf\xc3\xa9-\xc3\xa9t\xc3\xa9/menu.html here",
              "http://x.com/caf\xc3\xa9-\xc3\xa9t\xc3\xa9/menu.html", "x.com", "x.com", 0, NULL);
    /* brackets are counted up to where the path ends, not past it in the same block: the
     * unbalanced ")" belongs to the sentence, whatever follows the path */
    check_one(set, "(see http://x.com/abcdefghij) ((((x", "http://x.com/abcdefghij", "x.com",
              "x.com", 0, NULL);
    check_one(set, "http://x.com/abcdefghijklmnopqrstuvwxyz_(bar) ]]]]]]]]",
              "http://x.com/abcdefghijklmnopqrstuvwxyz_(bar)", "x.com", "x.com", 0, NULL);
    check_one(set, "[http://x.com/abcdefghijklmnopq/r] ((((((", "http://x.com/abcdefghijklmnopq/r",
              "x.com", "x.com", 0, NULL);
}

/* Host labels long enough for the sixteen-byte steps: every label character (digits, '-', '_',
 * both cases) at every place in a block stays in the label, lower-cased; a label of 63 bytes
 * is a host, one of 64 is not. */
static void test_long_labels(void **state)
{
    struct url_set *set = *state;
    static const char chars[] = "0123456789-_ABCZabcz";
    for (size_t c = 0; c < sizeof(chars) - 1; c++) {
        for (size_t at = 1; at < 40; at++) {
            char label[64], text[160], want_host[160], want_url[200];
            for (size_t k = 0; k < 40; k++)
                label[k] = (char)('a' + k % 26);
            label[at] = chars[c];
            label[40] = '\0';
            snprintf(text, sizeof(text), "go to http://%s.com/x now", label);
            for (size_t k = 0; label[k] != '\0'; k++)
                label[k] = (char)(label[k] >= 'A' && label[k] <= 'Z' ? label[k] + 32 : label[k]);
            snprintf(want_host, sizeof(want_host), "%s.com", label);
            snprintf(want_url, sizeof(want_url), "http://%s/x", want_host);
            check_one(set, text, want_url, want_host, want_host, 0, NULL);
        }
    }
    char text[200], label[70];
    memset(label, 'k', 63);
    label[63] = '\0';
    snprintf(text, sizeof(text), "http://www.%s.com/x", label);
    assert_int_equal(extract(set, text), 1);
    assert_int_equal(strlen(set->items[0].host), 4 + 63 + 4);
    memset(label, 'k', 64);
    label[64] = '\0';
    snprintf(text, sizeof(text), "http://www.%s.com/x", label);
    check_none(set, text);
    /* every byte that ends a label, at every place in a block, ends the host there */
    static const char ends[] = {'`', '{', '[', ':', (char)0x80, '/'};
    for (size_t e = 0; e < sizeof(ends); e++) {
        for (size_t at = 1; at < 40; at++) {
            char lbl[48], want[64];
            for (size_t k = 0; k < at; k++)
                lbl[k] = (char)('a' + k % 26);
            lbl[at] = '\0';
            snprintf(text, sizeof(text), "http://%s%crest.com/x", lbl, ends[e]);
            assert_true(extract(set, text) >= 1);
            assert_string_equal(set->items[0].host, lbl);
            if (ends[e] != '/') {
                snprintf(want, sizeof(want), "http://%s", lbl);
                assert_string_equal(set->items[0].url, want);
            }
        }
    }
    /* a label that goes on after a UTF-8 character: one label, lower-cased */
    check_one(set,
              "x.caf\xc3\xa9"
              "Com.ru",
              "http://x.caf\xc3\xa9"
              "com.ru",
              "x.caf\xc3\xa9"
              "com.ru",
              "caf\xc3\xa9"
              "com.ru",
              URL_F_SCHEMELESS, NULL);
    /* case as written counts over whole labels, not their first bytes: a lower-case letter
     * anywhere, with a capital starting the last label, makes a sentence */
    check_none(set, "HEY.Com");
    check_none(set, "HEY.COm");
    check_none(set, "HEy.COM");
    check_one(set, "HEY.COM", "http://hey.com", "hey.com", "hey.com", URL_F_SCHEMELESS, NULL);
    /* mixed case as written: "WWW.EVIL.RU" is a host, "Thanks.It" is a sentence */
    check_one(set, "see WWW.ABCDEFGHIJKLMNOPQRST.RU now", "http://www.abcdefghijklmnopqrst.ru",
              "www.abcdefghijklmnopqrst.ru", "abcdefghijklmnopqrst.ru", URL_F_SCHEMELESS, NULL);
}

static void test_registrable_domain(void **state)
{
    struct url_set *set = *state;
    check_one(set, "http://a.b.example.co.uk/", "http://a.b.example.co.uk/", "a.b.example.co.uk",
              "example.co.uk", 0, NULL);
    /* github.io is a public suffix: each user's site is its own domain */
    check_one(set, "https://x.github.io/p", "https://x.github.io/p", "x.github.io", "x.github.io",
              0, NULL);

    /* a TLD that is not on the list: flagged, and the "*" rule still gives the domain */
    check_one(set, "http://www.lure.example/x", "http://www.lure.example/x", "www.lure.example",
              "lure.example", URL_F_NO_SUFFIX, NULL);

    size_t dl = 0;
    const char *h = "a.b.example.co.uk";
    const char *d = url_registrable_domain(h, &dl);
    assert_ptr_equal(d, h + 4);
    assert_int_equal(dl, strlen("example.co.uk"));
    h = "x.github.io";
    d = url_registrable_domain(h, &dl);
    assert_ptr_equal(d, h);
    assert_int_equal(dl, strlen(h));
    h = "10.1.2.3";
    d = url_registrable_domain(h, &dl);
    assert_ptr_equal(d, h);
    assert_int_equal(dl, strlen(h));
    h = "[::1]";
    d = url_registrable_domain(h, &dl);
    assert_ptr_equal(d, h);
    assert_int_equal(dl, strlen(h));
    h = "co.uk"; /* a suffix alone has no registrable domain */
    d = url_registrable_domain(h, &dl);
    assert_ptr_equal(d, h);
    assert_int_equal(dl, strlen(h));
}

static void test_chat_is_not_a_link(void **state)
{
    struct url_set *set = *state;
    static const char *const chat[] = {
        "e.g. this",       "i.e. that",      "3.14",          "pi is 3.14159 ok",
        "lol...ok",        "wait..what",     "version 1.2.3", "v2.0.1 is out",
        "mr.smith said",   "ok.so what",     "file.txt",      "open report.pdf now",
        "see you at 5.30", "bob@example.com", "hello.world",  "Thanks.It works",
        "go.to bed",       "tell.me more",   "do.it now",     "a.m. or p.m.",
        "U.S.A.",          "...",            ".com",          "com.",
        "",                "x",              "www.",          "http://",
        "hxxp://",         "http://.com",    "1.5.com",       "no.no",
    };
    for (size_t i = 0; i < sizeof(chat) / sizeof(chat[0]); i++)
        check_none(set, chat[i]);
}

static void test_unicode_edges(void **state)
{
    struct url_set *set = *state;
    /* quotes, dashes and an ellipsis around a host are not part of it */
    check_one(set, "\xc2\xab" "evil.com\xc2\xbb", "http://evil.com", "evil.com", "evil.com",
              URL_F_SCHEMELESS, "evil.com");
    check_one(set, "\xe2\x80\x9c" "evil.com/x\xe2\x80\x9d", "http://evil.com/x", "evil.com",
              "evil.com", URL_F_SCHEMELESS, "evil.com/x");
    check_one(set, "see evil.com\xe2\x80\xa6", "http://evil.com", "evil.com", "evil.com",
              URL_F_SCHEMELESS, "evil.com");
    check_one(set, "\xe2\x80\x94" "evil.ru\xe2\x80\x94", "http://evil.ru", "evil.ru", "evil.ru",
              URL_F_SCHEMELESS, "evil.ru");
    /* leading hyphens and underscores are not part of a host */
    check_one(set, "--->evil.com/x", "http://evil.com/x", "evil.com", "evil.com",
              URL_F_SCHEMELESS, "evil.com/x");
    check_one(set, "__evil.com/x", "http://evil.com/x", "evil.com", "evil.com",
              URL_F_SCHEMELESS, "evil.com/x");
    /* an internationalised host stays whole */
    check_one(set, "http://\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84/",
              "http://\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84/",
              "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84",
              "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.\xd1\x80\xd1\x84", 0, NULL);
    /* invalid UTF-8 never joins a host */
    check_one(set, "\x80\xff" "evil.com/x", "http://evil.com/x", "evil.com", "evil.com",
              URL_F_SCHEMELESS, "evil.com/x");
}

static void test_many_links_in_order(void **state)
{
    struct url_set *set = *state;
    const char *text = "a http://one.com/1, then www.two.net and three.ru/3 (four[.]org) "
                       "hxxp://five.io/5.";
    assert_int_equal(extract(set, text), 5);
    static const char *const hosts[] = {"one.com", "www.two.net", "three.ru", "four.org",
                                        "five.io"};
    for (unsigned i = 0; i < 5; i++)
        assert_string_equal(set->items[i].host, hosts[i]);
    assert_int_equal(set->dropped, 0);
    /* extracting again replaces what the set held */
    assert_int_equal(extract(set, "nothing here"), 0);
    assert_int_equal(set->arena_used, 0);
    assert_int_equal(extract(set, "x.com/1"), 1);
    assert_string_equal(set->items[0].host, "x.com");
}

static void test_bound_on_items(void **state)
{
    struct url_set *set = url_set_new(2, 4096, 1024);
    assert_non_null(set);
    assert_int_equal(extract(set, "a.com/1 b.com/2 c.com/3 d.com/4"), 2);
    assert_int_equal(set->dropped, 2);
    assert_string_equal(set->items[0].host, "a.com");
    assert_string_equal(set->items[1].host, "b.com");
    url_set_free(set);

    set = url_set_new(0, 4096, 1024);
    assert_non_null(set);
    assert_int_equal(extract(set, "a.com/1"), 0);
    assert_int_equal(set->dropped, 1);
    url_set_free(set);
}

static void test_bound_on_arena(void **state)
{
    /* "http://a.com/1" + NUL + "a.com" + NUL is 21 bytes: two fit in 64, the long one does
     * not, the short one after it still does */
    struct url_set *set = url_set_new(8, 64, 1024);
    assert_non_null(set);
    const char *text = "a.com/1 b.com/2 http://a-very-long-host-name.example.com/and/a/path "
                       "c.com/3";
    assert_int_equal(extract(set, text), 3);
    assert_int_equal(set->dropped, 1);
    assert_string_equal(set->items[0].host, "a.com");
    assert_string_equal(set->items[1].host, "b.com");
    assert_string_equal(set->items[2].host, "c.com");
    assert_string_equal(set->items[2].url, "http://c.com/3");
    url_set_free(set);

    /* an arena too small for anything: never a truncated host */
    set = url_set_new(8, 8, 1024);
    assert_non_null(set);
    assert_int_equal(extract(set, "http://evil.ru/x evil.com"), 0);
    assert_int_equal(set->dropped, 2);
    assert_int_equal(set->arena_used, 0);
    url_set_free(set);
}

/* Each flood must finish (ctest's timeout catches a quadratic or endless scan) and give
 * sound results; the speed itself is measured in bench/, not asserted here. */
static void test_floods_finish(void **state)
{
    struct url_set *set = *state;
    static const char *const units[] = {
        "a.",  "a.a ", "a [.] ", "a dot ", "a(.)", "1.",  "x.com/", "www.",
        "a@",  ".",    "[",      "http://", "hxxp://a", "a-", "\xd0\xb0.", "a [dot] ",
    };
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        size_t ul = strlen(units[u]), n = 0;
        while (n + ul <= cap) {
            memcpy(text + n, units[u], ul);
            n += ul;
        }
        url_extract(text, n, set);
        check_invariants(set, n);
    }
    /* a huge path of closing parentheses */
    memcpy(text, "http://x.com/", 13);
    memset(text + 13, ')', cap - 13);
    url_extract(text, cap, set);
    check_invariants(set, cap);
    assert_true(set->n >= 1);
    assert_string_equal(set->items[0].host, "x.com");
    free(text);
}

/* The per-set domain cache must give exactly what libpsl gives, on first sight and after. */
/* The anchor search tests sixteen bytes at a time together with their neighbours: every link
 * form is found wherever it falls relative to those blocks (and in the bytes after the last
 * one), behind chat full of near-anchors (the letter d, "do", sentence dots, single slashes). */
static void test_anchor_positions(void **state)
{
    struct url_set *set = *state;
    static const char filler[] = "did you do it. odd/ dd. dots... Do not! ";
    static const struct {
        const char *link, *url, *host;
    } v[] = {
        {"evil dot com/pics", "http://evil.com/pics", "evil.com"},
        {"evil DOT com", "http://evil.com", "evil.com"},
        {"evil[.]com", "http://evil.com", "evil.com"},
        {"evil (dot) com", "http://evil.com", "evil.com"},
        {"evil{.}ru/x", "http://evil.ru/x", "evil.ru"},
        {"evil.ru/x.zip", "http://evil.ru/x.zip", "evil.ru"},
        {"http://2130706433/", "http://2130706433/", "2130706433"},
        {"http://[2001:db8::1]/", "http://[2001:db8::1]/", "[2001:db8::1]"},
        {"hxxp://a.b.example.com", "http://a.b.example.com", "a.b.example.com"},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        for (size_t pre = 0; pre < sizeof(filler) - 1; pre++) {
            for (unsigned tail = 0; tail < 2; tail++) {
                char text[160];
                int n = snprintf(text, sizeof(text), "%.*s%s%s", (int)pre, filler,
                                 pre > 0 ? " " : "", v[k].link);
                if (tail)
                    snprintf(text + n, sizeof(text) - (size_t)n, " and then. done d");
                if (extract(set, text) != 1)
                    fail_msg("\"%s\": %u links", text, set->n);
                assert_string_equal(set->items[0].url, v[k].url);
                assert_string_equal(set->items[0].host, v[k].host);
            }
        }
    }
    /* and the near-anchors alone, at every length, are no link */
    for (size_t n = 0; n < sizeof(filler) - 1; n++) {
        char text[64];
        snprintf(text, sizeof(text), "%.*s", (int)n, filler);
        check_none(set, text);
    }
}

/* The registrable domain is the same whether it comes from libpsl or from the cache: with no
 * cache, one slot that the hosts keep taking from each other, two, and the default size. */
static void test_domain_cache_consistent(void **state)
{
    (void)state;
    assert_null(url_set_new(16, 8192, 3)); /* not a power of two */
    static const unsigned slots[] = {0, 1, 2, 1024};
    for (unsigned k = 0; k < 4; k++) {
        struct url_set *set = url_set_new(16, 8192, slots[k]);
        assert_non_null(set);
        assert_true((set->dcache == NULL) == (slots[k] == 0));
        char longhost[200];
        /* a host longer than the cache keeps (62 bytes), in labels of legal length */
        snprintf(longhost, sizeof(longhost), "http://%s.%s.example.co.uk/x",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        const char *texts[] = {"see http://a.b.example.co.uk/x and https://www.github.com/y",
                               "again http://a.b.example.co.uk/z and http://x.github.io/",
                               longhost};
        const char *want[][2] = {{"example.co.uk", "github.com"},
                                 {"example.co.uk", "x.github.io"},
                                 {"example.co.uk", NULL}};
        for (unsigned round = 0; round < 3; round++) {
            for (unsigned t = 0; t < 3; t++) {
                unsigned n = url_extract(texts[t], strlen(texts[t]), set);
                assert_int_equal(n, want[t][1] != NULL ? 2 : 1);
                for (unsigned i = 0; i < n; i++) {
                    assert_int_equal(set->items[i].domain_len, strlen(want[t][i]));
                    assert_memory_equal(set->items[i].domain, want[t][i], strlen(want[t][i]));
                }
            }
        }
        url_set_free(set);
    }
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The AVX2 anchor search (matcher/cpu.h) finds the same links as the baseline one, over texts
 * built from anchor pieces at every offset and length, including anchors in the last bytes
 * and across the 16- and 32-byte block borders. */
static void test_avx2_matches_baseline(void **state)
{
    (void)state;
    sw_cpu_force_avx2(true);
    if (!sw_cpu_avx2())
        skip(); /* the CPU has no AVX2: there is only the baseline */
    static const char *const pieces[] = {
        ".",
        "/",
        "//",
        "[.]",
        "(dot)",
        " dot ",
        " d",
        "ot",
        "d",
        "o",
        "t",
        " ",
        "  ",
        "\n",
        "http://",
        "hxxp://",
        "www.",
        "example.com",
        "a.b",
        "x",
        "ok. so",
        "e.g.",
        "{.}",
        "evil[.]example/x.zip",
        "WWW.Example.COM",
        "3.14",
        "\xd0\xb0",
        "@",
        "user@mail.example",
    };
    /* a's one domain-cache slot keeps changing hands; b has no cache: every domain is libpsl's */
    struct url_set *a = url_set_new(16, 8192, 1), *b = url_set_new(16, 8192, 0);
    assert_non_null(a);
    assert_non_null(b);
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    char text[400];
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = 0, want = xorshift(&seed) % 300;
        while (n < want) {
            uint64_t r = xorshift(&seed);
            const char *p = pieces[(r >> 8) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);
            if (n + pl > sizeof(text))
                break;
            memcpy(text + n, p, pl);
            n += pl;
        }
        sw_cpu_force_avx2(true);
        unsigned na = url_extract(text, n, a);
        sw_cpu_force_avx2(false);
        unsigned nb = url_extract(text, n, b);
        assert_int_equal(na, nb);
        for (unsigned i = 0; i < na; i++) {
            assert_int_equal(a->items[i].span_off, b->items[i].span_off);
            assert_int_equal(a->items[i].span_len, b->items[i].span_len);
            assert_int_equal(a->items[i].flags, b->items[i].flags);
            assert_string_equal(a->items[i].url, b->items[i].url);
            assert_int_equal(a->items[i].domain_len, b->items[i].domain_len);
            assert_memory_equal(a->items[i].domain, b->items[i].domain, b->items[i].domain_len);
        }
    }
    sw_cpu_force_avx2(true);
    url_set_free(a);
    url_set_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schemes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schemeless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dot_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anchor_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ip_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_userinfo_and_punycode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ports_and_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registrable_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_is_not_a_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unicode_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_links_in_order, setup, teardown),
        cmocka_unit_test(test_bound_on_items),
        cmocka_unit_test(test_bound_on_arena),
        cmocka_unit_test(test_domain_cache_consistent),
        cmocka_unit_test_setup_teardown(test_floods_finish, setup, teardown),
        cmocka_unit_test(test_avx2_matches_baseline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
