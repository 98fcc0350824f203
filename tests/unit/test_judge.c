/* Unit tests for proxy/judge.c: the mapping from a score to the listener's configured action
 * (thresholds inclusive, tag -> tag|pass, drop -> drop|tag|pass, never chained). The rest of
 * the verdict path needs a live session and is covered by the integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/config.h"
#include "proxy/judge.h"

#define TAG CONFIG_ACTION_TAG
#define DROP CONFIG_ACTION_DROP
#define PASS CONFIG_ACTION_PASS

/* A listener (thresholds, then actions), a score, and the action it must give. */
struct judge_case {
    double tag, drop;
    enum config_action on_tag, on_drop;
    double score;
    enum verdict_action want;
};

static void check(const struct judge_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct config_listener l = {0};
        l.tag_threshold = c[i].tag;
        l.drop_threshold = c[i].drop;
        l.actions.on_tag = c[i].on_tag;
        l.actions.on_drop = c[i].on_drop;
        enum verdict_action got = judge_action(&l, c[i].score);
        if (got != c[i].want)
            fail_msg("case %zu: score %.2f gave %s, want %s", i, c[i].score,
                     verdict_action_name(got), verdict_action_name(c[i].want));
    }
}

static void test_judge_action(void **state)
{
    static const struct judge_case c[] = {
        /* the default actions */
        {5.0, 10.0, TAG, DROP, -20.0, VERDICT_PASS}, /* allow-listed */
        {5.0, 10.0, TAG, DROP, 0.0, VERDICT_PASS},
        {5.0, 10.0, TAG, DROP, 4.99, VERDICT_PASS},
        {5.0, 10.0, TAG, DROP, 5.0, VERDICT_TAG}, /* thresholds are inclusive */
        {5.0, 10.0, TAG, DROP, 9.99, VERDICT_TAG},
        {5.0, 10.0, TAG, DROP, 10.0, VERDICT_DROP},
        {5.0, 10.0, TAG, DROP, 1000.0, VERDICT_DROP},
        /* tag level passes; drop level still drops */
        {5.0, 10.0, PASS, DROP, 7.0, VERDICT_PASS},
        {5.0, 10.0, PASS, DROP, 10.0, VERDICT_DROP},
        /* monitor listeners: drop level is only tagged, or passed */
        {5.0, 10.0, TAG, TAG, 7.0, VERDICT_TAG},
        {5.0, 10.0, TAG, TAG, 12.0, VERDICT_TAG},
        {5.0, 10.0, TAG, PASS, 7.0, VERDICT_TAG},
        {5.0, 10.0, TAG, PASS, 12.0, VERDICT_PASS},
        /* drop level maps through on_drop alone, never through on_tag as well */
        {5.0, 10.0, PASS, TAG, 7.0, VERDICT_PASS},
        {5.0, 10.0, PASS, TAG, 12.0, VERDICT_TAG},
        /* the listener's own thresholds decide, not fixed ones */
        {1.5, 3.0, TAG, DROP, 1.0, VERDICT_PASS},
        {1.5, 3.0, TAG, DROP, 1.5, VERDICT_TAG},
        {1.5, 3.0, TAG, DROP, 3.0, VERDICT_DROP},
        {1.5, 1000.0, TAG, DROP, 999.0, VERDICT_TAG}, /* a tag-only listener */
    };
    check(c, sizeof(c) / sizeof(c[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_action),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
