/* Unit tests for matcher/rules.c: rule-file and list-file parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "matcher/rules.h"

static int setup(void **state)
{
    *state = ruleset_new(NULL);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    ruleset_free(*state);
    return 0;
}

static int parse(struct ruleset *rs, const char *text, struct sw_err *err)
{
    return ruleset_parse_rules(rs, text, strlen(text), "t.rules", err);
}

static void test_rule_full(void **state)
{
    struct ruleset *rs = *state;
    struct sw_err err = {{0}};
    const char *text = "# comment\n"
                       "\n"
                       "rule SW_A body 4.5 /see\\s+it\\/now/iu \"the \\\"see it\\\" lure\"\n"
                       "  rule SW_B-2.x url -1.25 \"a.b\\\"c\\\\\"i   # trailing comment\n"
                       "rule SW_C domain +3 /evil/ms\n"
                       "rule SW_D sender 1000 \"x y\"\n";
    assert_int_equal(parse(rs, text, &err), SW_OK);
    assert_int_equal(rs->n, 4);

    const struct rule *a = &rs->rules[0];
    assert_string_equal(a->id, "SW_A");
    assert_int_equal(a->target, RULE_BODY);
    assert_true(a->score == 4.5);
    assert_string_equal(a->expr, "see\\s+it/now");
    assert_int_equal(a->flags, RULE_F_CASELESS | RULE_F_UTF8);
    assert_string_equal(a->desc, "the \"see it\" lure");
    assert_string_equal(a->file, "t.rules");
    assert_int_equal(a->line, 3);
    assert_int_equal(a->kind, RULE_KIND_RULE);
    assert_null(a->entry);

    const struct rule *b = &rs->rules[1];
    assert_string_equal(b->id, "SW_B-2.x");
    assert_int_equal(b->target, RULE_URL);
    assert_true(b->score == -1.25);
    /* literal: every non-alphanumeric byte escaped as \xHH */
    assert_string_equal(b->expr, "a\\x2eb\\x22c\\x5c");
    assert_int_equal(b->flags, RULE_F_LITERAL | RULE_F_CASELESS);
    assert_null(b->desc);
    assert_int_equal(b->line, 4);

    assert_int_equal(rs->rules[2].target, RULE_DOMAIN);
    assert_true(rs->rules[2].score == 3);
    assert_int_equal(rs->rules[2].flags, RULE_F_MULTILINE | RULE_F_DOTALL);
    assert_int_equal(rs->rules[3].target, RULE_SENDER);
    assert_string_equal(rs->rules[3].expr, "x\\x20y");
    assert_int_equal(rs->n_files, 1);
}

static void test_crlf_and_no_final_newline(void **state)
{
    struct ruleset *rs = *state;
    struct sw_err err = {{0}};
    assert_int_equal(parse(rs, "rule A body 1 /a/\r\nrule B body 1 /b/", &err), SW_OK);
    assert_int_equal(rs->n, 2);
    assert_string_equal(rs->rules[0].expr, "a");
    assert_string_equal(rs->rules[1].expr, "b");
    assert_int_equal(rs->rules[1].line, 2);
}

static void test_empty_files(void **state)
{
    struct ruleset *rs = *state;
    struct sw_err err = {{0}};
    assert_int_equal(ruleset_parse_rules(rs, "", 0, "e.rules", &err), SW_OK);
    assert_int_equal(parse(rs, "# nothing\n\n   \n\t# more\n", &err), SW_OK);
    assert_int_equal(ruleset_parse_list(rs, RULE_KIND_SHORTENER, "", 0, "s.txt", &err), SW_OK);
    assert_int_equal(rs->n, 0);
}

struct bad_case {
    const char *text;
    const char *want; /* substring of the error */
};

static void test_rule_errors(void **state)
{
    static const struct bad_case cases[] = {
        {"rules A body 1 /a/", "t.rules:1: unknown keyword 'rules'"},
        {"rule", "missing rule id"},
        {"rule A$ body 1 /a/", "bad rule id 'A$'"},
        {"rule AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA body 1 /a/",
         "longer than 63"},
        {"rule A", "missing target"},
        {"rule A bodies 1 /a/", "unknown target 'bodies'"},
        {"rule A body", "missing score"},
        {"rule A body x /a/", "bad score 'x'"},
        {"rule A body 1001 /a/", "bad score"},
        {"rule A body -1000.5 /a/", "bad score"},
        {"rule A body 1e3 /a/", "bad score"},
        {"rule A body nan /a/", "bad score"},
        {"rule A body . /a/", "bad score"},
        {"rule A body 1", "missing pattern"},
        {"rule A body 1 a", "pattern must be"},
        {"rule A body 1 /abc", "unterminated pattern"},
        {"rule A body 1 /abc\\/", "unterminated pattern"},
        {"rule A body 1 \"abc", "unterminated pattern"},
        {"rule A body 1 //", "empty pattern"},
        {"rule A body 1 \"\"", "empty pattern"},
        {"rule A body 1 /a/x", "unknown flag 'x'"},
        {"rule A body 1 /a/ii", "flag 'i' given twice"},
        {"rule A body 1 \"a\\n\"", "bad escape"},
        {"rule A body 1 /a/ junk", "unknown option 'junk'"},
        {"rule A body 1 /a/ needs=link", "unknown option 'needs=link'"},
        {"rule A body 1 /a/ requires", "unknown option 'requires'"},
        {"rule A body 1 /a/ requires=url", "unknown condition 'url'"},
        {"rule A body 1 /a/ requires=", "unknown condition ''"},
        {"rule A body 1 /a/ requires=link requires=link", "option 'requires' given twice"},
        {"rule A url 1 /a/ requires=link", "option 'requires' applies to body rules only"},
        {"rule A sender 1 /a/ provides=link", "option 'provides' applies to body rules only"},
        {"rule A body 1 /a/ requires=link provides=link", "requires=link and provides=link"},
        {"rule A body 1 /a/ \"d\" junk", "trailing garbage"},
        {"rule A body 1 /a/ \"desc", "unterminated description"},
        {"rule A body 1 /a/\"desc\"", "need a space"},
        {"rule A body 1 /a/\nrule A url 2 /b/", "t.rules:2: duplicate rule id A (first defined at "
                                                "t.rules:1)"},
    };
    struct ruleset *rs = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sw_err err = {{0}};
        assert_int_equal(parse(rs, cases[i].text, &err), SW_ERROR);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: '%s' gave '%s', want '%s'", i, cases[i].text, err.msg,
                     cases[i].want);
        assert_true(strncmp(err.msg, "t.rules:", 8) == 0);
        assert_int_equal(rs->n, 0);
        assert_int_equal(rs->n_files, 0);
    }
}

static void test_nul_byte(void **state)
{
    struct ruleset *rs = *state;
    struct sw_err err = {{0}};
    const char text[] = "rule A body 1 /a\0b/\n";
    assert_int_equal(ruleset_parse_rules(rs, text, sizeof(text) - 1, "n.rules", &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "n.rules:1: NUL byte"));
}

/* A failing file leaves the ruleset exactly as it was, including earlier files. */
static void test_rollback(void **state)
{
    struct ruleset *rs = *state;
    struct sw_err err = {{0}};
    assert_int_equal(ruleset_parse_rules(rs, "rule A body 1 /a/\n", 18, "one.rules", &err), SW_OK);
    uint64_t d = ruleset_digest(rs);
    const char *bad = "rule B body 1 /b/\nrule C body 1 /c/\nrule D body 1 /d\n";
    assert_int_equal(ruleset_parse_rules(rs, bad, strlen(bad), "two.rules", &err), SW_ERROR);
    assert_string_equal(err.msg, "two.rules:3: rule D: unterminated pattern (missing closing /)");
    assert_int_equal(rs->n, 1);
    assert_int_equal(rs->n_files, 1);
    assert_true(ruleset_digest(rs) == d);
    /* duplicates across files */
    assert_int_equal(ruleset_parse_rules(rs, "rule A url 1 /x/", 16, "three.rules", &err),
                     SW_ERROR);
    assert_non_null(strstr(err.msg, "three.rules:1: duplicate rule id A (first defined at "
                                    "one.rules:1)"));
    /* list entries share their kind's id; that is not a duplicate */
    assert_int_equal(
        ruleset_parse_list(rs, RULE_KIND_DOMAIN_BLOCK, "a.com\nb.com\n", 12, "l.txt", &err), SW_OK);
    assert_int_equal(ruleset_parse_rules(rs, "rule B body 1 /b/", 17, "four.rules", &err), SW_OK);
    assert_int_equal(rs->n, 4);
}

static void test_limits(void **state)
{
    (void)state;
    struct ruleset_limits lim = {.max_rules = 2, .max_line = 40, .max_pattern = 8};
    struct ruleset *rs = ruleset_new(&lim);
    struct sw_err err = {{0}};
    assert_non_null(rs);
    assert_int_equal(parse(rs, "rule A body 1 /12345678/", &err), SW_OK);
    assert_int_equal(parse(rs, "rule B body 1 /123456789/", &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "t.rules:1: rule B: pattern too long (9 bytes, max 8)"));
    assert_int_equal(parse(rs, "rule B body 1 /a/ \"a description that is too long\"", &err),
                     SW_ERROR);
    assert_non_null(strstr(err.msg, "t.rules:1: line too long"));
    assert_int_equal(parse(rs, "rule B body 1 /b/\nrule C body 1 /c/", &err), SW_ERROR);
    assert_non_null(strstr(err.msg, "t.rules:2: too many rules (max 2)"));
    assert_int_equal(rs->n, 1);
    assert_int_equal(ruleset_parse_list(rs, RULE_KIND_SHORTENER, "a.b\nc.d\n", 8, "s.txt", &err),
                     SW_ERROR);
    assert_non_null(strstr(err.msg, "s.txt:2: too many"));
    assert_int_equal(rs->n, 1);
    ruleset_free(rs);

    /* defaults */
    rs = ruleset_new(NULL);
    assert_int_equal(rs->limits.max_rules, 200000);
    assert_int_equal(rs->limits.max_line, 16384);
    assert_int_equal(rs->limits.max_pattern, 8192);
    ruleset_free(rs);
}

static void test_list_domains(void **state)
{
    struct ruleset *rs = *state;
    struct sw_err err = {{0}};
    /* JabberSPAM blacklist.txt format, plus comments, wildcards, case and whitespace */
    const char *text = "bashtel.ru\n"
                       "jabber.cd\r\n"
                       "# comment\n"
                       "  *.Evil.Example  # trailing comment\n"
                       ".sub-domain.example.\n"
                       "\n"
                       "zip\n";
    assert_int_equal(
        ruleset_parse_list(rs, RULE_KIND_DOMAIN_BLOCK, text, strlen(text), "d.txt", &err), SW_OK);
    assert_int_equal(rs->n, 5);
    assert_string_equal(rs->rules[0].entry, "bashtel.ru");
    assert_string_equal(rs->rules[0].expr, "(?:^|\\.)bashtel\\x2eru$");
    assert_string_equal(rs->rules[0].id, "LIST_DOMAIN_BLOCK");
    assert_int_equal(rs->rules[0].kind, RULE_KIND_DOMAIN_BLOCK);
    assert_int_equal(rs->rules[0].target, RULE_DOMAIN);
    assert_int_equal(rs->rules[0].flags, RULE_F_CASELESS);
    assert_int_equal(rs->rules[0].line, 1);
    assert_string_equal(rs->rules[2].entry, "evil.example");
    assert_int_equal(rs->rules[2].line, 4);
    assert_string_equal(rs->rules[3].entry, "sub-domain.example");
    assert_string_equal(rs->rules[3].expr, "(?:^|\\.)sub\\x2ddomain\\x2eexample$");
    assert_string_equal(rs->rules[4].entry, "zip");

    assert_int_equal(ruleset_parse_list(rs, RULE_KIND_SHORTENER, "bit.ly", 6, "s.txt", &err),
                     SW_OK);
    assert_int_equal(rs->rules[5].kind, RULE_KIND_SHORTENER);
    assert_string_equal(rs->rules[5].id, "LIST_SHORTENER");
    assert_int_equal(
        ruleset_parse_list(rs, RULE_KIND_DOMAIN_ALLOW, "xn--bcher-kva.example", 21, "a.txt", &err),
        SW_OK);
    assert_string_equal(rs->rules[6].id, "LIST_DOMAIN_ALLOW");
}

static void test_list_senders(void **state)
{
    struct ruleset *rs = *state;
    struct sw_err err = {{0}};
    const char *text = "Spammer@Evil.Example\n@spim.example\n";
    assert_int_equal(
        ruleset_parse_list(rs, RULE_KIND_SENDER_BLOCK, text, strlen(text), "s.txt", &err), SW_OK);
    assert_int_equal(rs->n, 2);
    assert_string_equal(rs->rules[0].entry, "spammer@evil.example");
    assert_string_equal(rs->rules[0].expr, "^spammer\\x40evil\\x2eexample$");
    assert_int_equal(rs->rules[0].target, RULE_SENDER);
    assert_string_equal(rs->rules[0].id, "LIST_SENDER_BLOCK");
    assert_string_equal(rs->rules[1].entry, "@spim.example");
    assert_string_equal(rs->rules[1].expr, "@(?:[^@]*\\.)?spim\\x2eexample$");
    assert_int_equal(
        ruleset_parse_list(rs, RULE_KIND_SENDER_ALLOW, "ops@x.example", 13, "a.txt", &err), SW_OK);
    assert_string_equal(rs->rules[2].id, "LIST_SENDER_ALLOW");
}

static void test_list_errors(void **state)
{
    static const struct {
        enum rule_kind kind;
        const char *text;
        const char *want;
    } cases[] = {
        {RULE_KIND_DOMAIN_BLOCK, "ok.example\nevil..com\n", "l.txt:2: bad list entry: empty label"},
        {RULE_KIND_DOMAIN_BLOCK, "-x.com", "l.txt:1: bad list entry: label starts or ends"},
        {RULE_KIND_DOMAIN_BLOCK, "x-.com", "label starts or ends"},
        {RULE_KIND_DOMAIN_BLOCK, "evil .com", "contains whitespace"},
        {RULE_KIND_DOMAIN_BLOCK, "a@evil.com", "'@' in a domain"},
        {RULE_KIND_DOMAIN_BLOCK, "@", "'@' in a domain"},
        {RULE_KIND_DOMAIN_BLOCK,
         "b\xc3\xbc"
         "cher.example",
         "non-ASCII"},
        {RULE_KIND_DOMAIN_BLOCK, "under_score.com", "invalid character"},
        {RULE_KIND_DOMAIN_BLOCK, "*.", "empty domain"},
        {RULE_KIND_DOMAIN_BLOCK, ".", "empty domain"},
        {RULE_KIND_DOMAIN_BLOCK, "a\x01.com", "control character"},
        {RULE_KIND_SHORTENER, "http://bit.ly", "invalid character"},
        {RULE_KIND_DOMAIN_ALLOW,
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", "label longer"},
        {RULE_KIND_SENDER_BLOCK, "evil.example", "expected user@domain or @domain"},
        {RULE_KIND_SENDER_BLOCK, "a@b@c.example", "more than one '@'"},
        {RULE_KIND_SENDER_BLOCK, "a/b@c.example", "'/' in local part"},
        {RULE_KIND_SENDER_BLOCK, "a@", "empty domain"},
        {RULE_KIND_SENDER_ALLOW, "a@evil..example", "empty label"},
        {RULE_KIND_RULE, "x.com", "not a list kind"},
    };
    struct ruleset *rs = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sw_err err = {{0}};
        assert_int_equal(ruleset_parse_list(rs, cases[i].kind, cases[i].text, strlen(cases[i].text),
                                            "l.txt", &err),
                         SW_ERROR);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: '%s' gave '%s', want '%s'", i, cases[i].text, err.msg,
                     cases[i].want);
        assert_int_equal(rs->n, 0);
        assert_int_equal(rs->n_files, 0);
    }
    /* 253 bytes is the longest name */
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    for (size_t i = 63; i < sizeof(longname); i += 64)
        longname[i] = '.';
    struct sw_err err = {{0}};
    assert_int_equal(ruleset_parse_list(rs, RULE_KIND_DOMAIN_BLOCK, longname, 253, "l.txt", &err),
                     SW_OK);
    assert_int_equal(ruleset_parse_list(rs, RULE_KIND_DOMAIN_BLOCK, longname, 255, "l.txt", &err),
                     SW_ERROR);
    assert_non_null(strstr(err.msg, "longer than 253"));
}

static void test_digest(void **state)
{
    (void)state;
    struct sw_err err = {{0}};
    struct ruleset *a = ruleset_new(NULL), *b = ruleset_new(NULL), *c = ruleset_new(NULL);
    assert_int_equal(parse(a, "rule A body 1 /a/\nrule B url 2 /b/", &err), SW_OK);
    /* ids, scores, descriptions and file names do not change the compiled database */
    const char *btext = "rule X body 7 /a/ \"d\"\nrule Y url 2 /b/";
    assert_int_equal(ruleset_parse_rules(b, btext, strlen(btext), "other.rules", &err), SW_OK);
    assert_true(ruleset_digest(a) == ruleset_digest(b));
    /* expression, flags, target and order do */
    assert_int_equal(parse(c, "rule A body 1 /a/i\nrule B url 2 /b/", &err), SW_OK);
    assert_true(ruleset_digest(a) != ruleset_digest(c));
    ruleset_free(c);
    c = ruleset_new(NULL);
    assert_int_equal(parse(c, "rule B url 2 /b/\nrule A body 1 /a/", &err), SW_OK);
    assert_true(ruleset_digest(a) != ruleset_digest(c));
    ruleset_free(c);
    c = ruleset_new(NULL);
    assert_int_equal(parse(c, "rule A domain 1 /a/\nrule B url 2 /b/", &err), SW_OK);
    assert_true(ruleset_digest(a) != ruleset_digest(c));

    /* a clone is equal in everything */
    struct ruleset *d = ruleset_clone(a);
    assert_non_null(d);
    assert_true(ruleset_digest(a) == ruleset_digest(d));
    assert_int_equal(d->n, 2);
    assert_string_equal(d->rules[1].id, "B");
    assert_string_equal(d->rules[1].file, "t.rules");
    assert_ptr_not_equal(d->rules[1].file, a->rules[1].file);
    ruleset_free(a);
    ruleset_free(b);
    ruleset_free(c);
    ruleset_free(d);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(rule_kind_name(RULE_KIND_RULE), "rule");
    assert_string_equal(rule_kind_name(RULE_KIND_SHORTENER), "shortener");
    assert_string_equal(rule_kind_reason(RULE_KIND_DOMAIN_BLOCK), "LIST_DOMAIN_BLOCK");
    assert_string_equal(rule_kind_reason(RULE_KIND_SENDER_ALLOW), "LIST_SENDER_ALLOW");
    assert_string_equal(rule_target_name(RULE_BODY), "body");
    assert_string_equal(rule_target_name(RULE_SENDER), "sender");
    assert_string_equal(rule_target_name(RULE_TARGET_COUNT), "?");
    assert_string_equal(rule_kind_name(RULE_KIND_COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rule_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_and_no_final_newline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test(test_limits),
        cmocka_unit_test_setup_teardown(test_list_domains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_senders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_errors, setup, teardown),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
