/* The one result type: stable codes, generic sentences and the per-thread
 * detail of the last failure. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "custos/error.h"
#include "internal/util.h"

static _Thread_local custos_error last_error;

struct err_entry {
    custos_err code;
    const char *name;
    const char *text;
};

static const struct err_entry err_table[] = {
    {CUSTOS_OK, "ok", "success"},
    {CUSTOS_ERR_INTERNAL, "internal", "internal error"},
    {CUSTOS_ERR_NOMEM, "out_of_memory", "out of memory"},
    {CUSTOS_ERR_ARG, "invalid_argument", "invalid argument"},
    {CUSTOS_ERR_IO, "io_error", "storage read or write failed"},
    {CUSTOS_ERR_TOO_LARGE, "too_large", "a size or count limit was exceeded"},
    {CUSTOS_ERR_MALFORMED, "malformed", "not the expected encoding or structure"},
    {CUSTOS_ERR_SIGNATURE, "bad_signature", "a signature does not verify"},
    {CUSTOS_ERR_UNTRUSTED, "untrusted", "the signer does not chain to the trust anchor"},
    {CUSTOS_ERR_EXPIRED, "expired", "a certificate, package or request has expired"},
    {CUSTOS_ERR_NOT_YET_VALID, "not_yet_valid", "a certificate is not yet valid"},
    {CUSTOS_ERR_PASSPHRASE, "wrong_passphrase", "wrong passphrase"},
    {CUSTOS_ERR_LOCKED, "locked_to_another_device", "the identity is locked to another device"},
    {CUSTOS_ERR_NOT_FOUND, "not_found", "not found"},
    {CUSTOS_ERR_MISMATCH, "mismatch", "belongs to another device, request or key"},
    {CUSTOS_ERR_TEMPLATE, "template_mismatch", "keys do not conform to the key templates"},
    {CUSTOS_ERR_UNKNOWN_COMPONENT, "unknown_component", "unknown component"},
    {CUSTOS_ERR_NOT_PROVIDED, "not_provided", "the port does not provide this"},
    {CUSTOS_ERR_STATE, "invalid_state", "not allowed in the current state"},
    {CUSTOS_ERR_MOCK, "mock_identity", "a mock identity where a real one is required"},
    {CUSTOS_ERR_UNSUPPORTED, "unsupported", "algorithm, version or kind not supported"},
    {CUSTOS_ERR_DUPLICATE, "duplicate", "duplicate"},
    {CUSTOS_ERR_LINT, "lint_failed", "a certificate fails the RFC 5280 profile"},
    {CUSTOS_ERR_POP, "proof_of_possession", "a certificate request signature does not verify"},
    {CUSTOS_ERR_EXISTS, "already_exists", "already exists"},
    {CUSTOS_ERR_LIMIT, "limit_exceeded", "a field or metadata limit was exceeded"},
    {CUSTOS_ERR_AUTH, "unauthenticated", "no valid credential: unknown, expired or revoked"},
    {CUSTOS_ERR_FORBIDDEN, "forbidden", "not allowed for this operator's role"},
};

static const struct err_entry *err_lookup(custos_err err)
{
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++) {
        if (err_table[i].code == err)
            return &err_table[i];
    }
    return NULL;
}

const char *custos_err_code(custos_err err)
{
    const struct err_entry *e = err_lookup(err);
    return e != NULL ? e->name : "internal";
}

const char *custos_strerror(custos_err err)
{
    const struct err_entry *e = err_lookup(err);
    return e != NULL ? e->text : "unknown error";
}

const custos_error *custos_error_last(void)
{
    return &last_error;
}

void custos_error_clear(void)
{
    memset(&last_error, 0, sizeof(last_error));
}

static void error_vset(custos_err code, const char *field, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void error_vset(custos_err code, const char *field, const char *fmt, va_list ap)
{
    custos_error e;

    memset(&e, 0, sizeof(e));
    e.code = code;
    if (fmt != NULL)
        (void)vsnprintf(e.message, sizeof(e.message), fmt, ap);
    if (e.message[0] == '\0')
        (void)snprintf(e.message, sizeof(e.message), "%s", custos_strerror(code));
    if (field != NULL)
        (void)snprintf(e.field, sizeof(e.field), "%s", field);
    last_error = e;
}

custos_err custos_error_set(custos_err code, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    error_vset(code, field, fmt, ap);
    va_end(ap);
    return code;
}

custos_err custos_error_set_ssl(custos_err code, const char *field, const char *fmt, ...)
{
    va_list ap;
    unsigned long e = ERR_peek_error();
    char buf[256];

    va_start(ap, fmt);
    error_vset(code, field, fmt, ap);
    va_end(ap);
    if (e != 0) {
        size_t used = strlen(last_error.message);

        ERR_error_string_n(e, buf, sizeof(buf));
        if (used < sizeof(last_error.message))
            (void)snprintf(last_error.message + used, sizeof(last_error.message) - used, " (%s)",
                           buf);
    }
    ERR_clear_error();
    return code;
}
