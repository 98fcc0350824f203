/* Unit tests for proxy/buf.c: lazy allocation and release, bounds, watermarks, and the
 * forward/drop/insert judging calls protocols use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/sw_rc.h"
#include "proxy/buf.h"

static void append(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(buf_reserve(b), SW_OK);
    assert_true(buf_space(b) >= n);
    memcpy(buf_space_ptr(b), s, n);
    buf_produce(b, (uint32_t)n);
}

static void check_ready(const struct buf *b, const char *want)
{
    assert_int_equal(buf_ready(b), strlen(want));
    assert_memory_equal(buf_ready_ptr(b), want, strlen(want));
}

static void test_lazy_alloc_and_release(void **state)
{
    struct buf b;
    buf_init(&b, 16);
    assert_null(b.data);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_space(&b), 0); /* nothing allocated yet */
    assert_null(buf_ready_ptr(&b));
    append(&b, "hello");
    assert_non_null(b.data);
    assert_int_equal(buf_len(&b), 5);
    assert_int_equal(buf_pending(&b), 5);
    assert_int_equal(buf_ready(&b), 0);
    buf_release_if_empty(&b); /* not empty: kept */
    assert_non_null(b.data);
    buf_forward(&b, 5);
    check_ready(&b, "hello");
    buf_consume(&b, 5);
    assert_int_equal(buf_len(&b), 0);
    buf_release_if_empty(&b);
    assert_null(b.data);
    buf_deinit(&b);
}

static void test_bounds_and_compaction(void **state)
{
    struct buf b;
    buf_init(&b, 8);
    append(&b, "abcdefgh");
    assert_int_equal(buf_space(&b), 0); /* full */
    buf_forward(&b, 8);
    buf_consume(&b, 3);
    /* the consumed prefix is reclaimed by moving the rest down */
    assert_int_equal(buf_space(&b), 3);
    check_ready(&b, "defgh");
    append(&b, "xyz");
    assert_int_equal(buf_space(&b), 0);
    assert_int_equal(buf_len(&b), 8);
    buf_forward(&b, 3);
    check_ready(&b, "defghxyz");
    buf_consume(&b, 8);
    assert_int_equal(buf_len(&b), 0);
    buf_deinit(&b);
}

static void test_watermark(void **state)
{
    struct buf b;
    buf_init(&b, 32);
    assert_false(buf_above(&b, 4));
    append(&b, "abcdefgh");
    assert_false(buf_above(&b, 4)); /* pending bytes (a unit being judged) never count */
    buf_forward(&b, 3);
    assert_false(buf_above(&b, 4));
    buf_forward(&b, 1);
    assert_true(buf_above(&b, 4)); /* at the mark counts as above: stop reading */
    buf_consume(&b, 1);
    assert_false(buf_above(&b, 4));
    buf_deinit(&b);
}

static void test_drop_and_insert(void **state)
{
    struct buf b;
    buf_init(&b, 32);
    append(&b, "keepSPAMrest");
    buf_forward(&b, 4);
    buf_drop(&b, 4);
    assert_int_equal(buf_pending(&b), 4);
    assert_memory_equal(buf_pending_ptr(&b), "rest", 4);
    assert_int_equal(buf_insert(&b, (const uint8_t *)"<new>", 5), SW_OK);
    buf_forward(&b, buf_pending(&b));
    check_ready(&b, "keep<new>rest");
    /* an insert that does not fit is refused and changes nothing */
    uint8_t big[32] = {0};
    assert_int_equal(buf_insert(&b, big, 20), SW_ERROR);
    check_ready(&b, "keep<new>rest");
    /* it fits once sent bytes are reclaimed */
    buf_consume(&b, 13);
    assert_int_equal(buf_insert(&b, big, 20), SW_OK);
    assert_int_equal(buf_ready(&b), 20);
    buf_deinit(&b);
}

static void test_insert_into_released_buffer(void **state)
{
    struct buf b;
    buf_init(&b, 16);
    assert_int_equal(buf_insert(&b, (const uint8_t *)"reply", 5), SW_OK);
    check_ready(&b, "reply");
    assert_int_equal(buf_insert(&b, (const uint8_t *)"0123456789a", 11), SW_OK);
    assert_int_equal(buf_len(&b), 16);
    assert_int_equal(buf_insert(&b, (const uint8_t *)"x", 1), SW_ERROR);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_alloc_and_release),
        cmocka_unit_test(test_bounds_and_compaction),
        cmocka_unit_test(test_watermark),
        cmocka_unit_test(test_drop_and_insert),
        cmocka_unit_test(test_insert_into_released_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
