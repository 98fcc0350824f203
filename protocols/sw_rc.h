/* Return codes and error reports shared by every layer.
 *
 * Data-path functions return one of enum sw_rc (or, for parsers, a byte count where the
 * contract says so). Loaders and compilers that can fail for a human-readable reason take a
 * struct sw_err out-parameter and fill it with a one-line message in the form
 * "file:line: reason" whenever the location is known. */
#ifndef SW_RC_H
#define SW_RC_H

#include <stdarg.h>
#include <stdio.h>

enum sw_rc {
    SW_OK = 0,        /* done */
    SW_ERROR = -1,    /* failed; the input or the peer is at fault, details in sw_err or counters */
    SW_AGAIN = -2,    /* need more input / would block; call again when there is more */
    SW_DECLINED = -3, /* not handled here; the caller falls back to the default behaviour */
};

#define SW_ERR_MAX 512

struct sw_err {
    char msg[SW_ERR_MAX];
};

/* Formats a message into err (if err is not NULL). Always returns SW_ERROR so that callers can
 * write `return sw_err_set(err, "...")`. */
__attribute__((format(printf, 2, 3))) static inline int sw_err_set(struct sw_err *err,
                                                                   const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return SW_ERROR;
}

#endif
