/* custos login, logout, whoami: the operator's session. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "custos_cli.h"

/* ---- the password ---------------------------------------------------------- */

static struct termios saved_termios;
static volatile sig_atomic_t echo_off;

/* Give the terminal its echo back when interrupted at the prompt. */
static void restore_and_reraise(int sig)
{
    if (echo_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int prompt_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
#define N_PROMPT_SIGNALS (sizeof(prompt_signals) / sizeof(prompt_signals[0]))

/* One line from standard input (without its newline) into @p out. */
static custos_err read_line(char *out, size_t cap, cli_failure *fail)
{
    size_t len = 0;
    for (;;) {
        char ch;
        ssize_t n = read(STDIN_FILENO, &ch, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_failure_set(fail, CUSTOS_ERR_IO, "password", "cannot read the password: %s",
                            strerror(errno));
            return CUSTOS_ERR_IO;
        }
        if (n == 0 || ch == '\n')
            break;
        if (len + 1 >= cap) {
            cli_failure_set(fail, CUSTOS_ERR_TOO_LARGE, "password",
                            "the password is over %zu bytes", cap - 1);
            return CUSTOS_ERR_TOO_LARGE;
        }
        out[len++] = ch;
    }
    if (len > 0 && out[len - 1] == '\r')
        len--;
    out[len] = '\0';
    if (len == 0) {
        cli_failure_set(fail, CUSTOS_ERR_ARG, "password", "no password given");
        return CUSTOS_ERR_ARG;
    }
    if (strlen(out) != len) {
        cli_failure_set(fail, CUSTOS_ERR_MALFORMED, "password", "the password holds a NUL byte");
        return CUSTOS_ERR_MALFORMED;
    }
    return CUSTOS_OK;
}

static custos_err prompt_password(char *out, size_t cap, const char *user, cli_failure *fail)
{
    struct sigaction sa, old[N_PROMPT_SIGNALS];
    struct termios quiet;
    custos_err ret;
    if (!isatty(STDIN_FILENO))
        return read_line(out, cap, fail);
    if (tcgetattr(STDIN_FILENO, &saved_termios) != 0) {
        cli_failure_set(fail, CUSTOS_ERR_IO, "password", "cannot set up the terminal: %s",
                        strerror(errno));
        return CUSTOS_ERR_IO;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
        sigaction(prompt_signals[i], &sa, &old[i]);
    quiet = saved_termios;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    fprintf(stderr, "password for %s: ", user);
    fflush(stderr);
    echo_off = 1;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
        echo_off = 0;
        ret = CUSTOS_ERR_IO;
        cli_failure_set(fail, ret, "password", "cannot turn the echo off: %s", strerror(errno));
    } else {
        ret = read_line(out, cap, fail);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
        echo_off = 0;
    }
    fputc('\n', stderr);
    for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
        sigaction(prompt_signals[i], &old[i], NULL);
    return ret;
}

/* ---- commands -------------------------------------------------------------- */

/* GET /api/v1/session with the credential in @p ctx into @p out. */
static int get_session(cli_reply *out, cli_ctx *ctx)
{
    cli_url url;
    cli_url_init(&url, ctx, "/session");
    return cli_call(out, ctx, "GET", &url, NULL, NULL, 0);
}

static int token_is_default(const cli_ctx *ctx, const cli_args *a)
{
    return cli_get(a, "token-file") == NULL && ctx->token_file[0] != '\0';
}

int cmd_login(cli_ctx *ctx, const cli_args *a)
{
    const char *user = cli_get(a, "user");
    const char *pw_file = cli_get(a, "password-file");
    char password[CLI_SECRET_FILE_MAX + 1];
    cli_failure fail;
    cli_reply r, who;
    cli_url url;
    json_t *body = NULL;
    const json_t *info;
    const char *token;
    int rc = EXIT_REFUSED;
    memset(&r, 0, sizeof(r));
    memset(&who, 0, sizeof(who));
    custos_err err = pw_file != NULL
                         ? cli_read_secret_file(password, pw_file, &fail, "password-file")
                         : prompt_password(password, sizeof(password), user, &fail);
    if (err < 0) {
        rc = cli_failure_print(&fail, NULL);
        goto out;
    }
    body = json_pack("{s:s, s:s, s:s}", "username", user, "password", password, "kind", "bearer");
    if (body == NULL) {
        rc = cli_fail(CUSTOS_ERR_ARG, "user", "the user name or password is not valid UTF-8");
        goto out;
    }
    cli_url_init(&url, ctx, "/session");
    if (cli_call_json(&r, ctx, "POST", &url, body) != 0) {
        rc = cli_reply_fail(ctx, &r, NULL);
        goto out;
    }
    token = json_string_value(json_object_get(r.json, "token"));
    size_t len = token != NULL ? strlen(token) : 0;
    int ok = len > 0 && len <= CLI_TOKEN_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)token[i] > 0x20 && (unsigned char)token[i] < 0x7f;
    if (!ok) {
        rc = cli_fail(CUSTOS_ERR_MALFORMED, "token", "the server's answer holds no bearer token");
        goto out;
    }
    if (cli_store_token(ctx->token_file, token, token_is_default(ctx, a), &fail) < 0) {
        rc = cli_failure_print(&fail, NULL);
        goto out;
    }
    snprintf(ctx->token, sizeof(ctx->token), "%s", token);
    snprintf(ctx->auth_header, sizeof(ctx->auth_header), "Authorization: Bearer %s", token);
    /* The answer to a bearer sign-in may carry only the token: ask who we are. */
    info = r.json;
    if (json_string_value(json_object_get(info, "role")) == NULL) {
        if (get_session(&who, ctx) != 0) {
            rc = cli_reply_fail(ctx, &who, "signed in, but the session cannot be read");
            goto out;
        }
        info = who.json;
    }
    if (ctx->json) {
        json_t *copy = json_deep_copy(info);
        json_object_del(copy, "token"); /* never printed */
        cli_print_json(copy);
        json_decref(copy);
    } else if (!ctx->quiet) {
        const char *name = cli_str(info, "username");
        printf("signed in as ");
        cli_put_safe(stdout, name[0] != '\0' ? name : user);
        printf(" (");
        cli_put_safe(stdout, cli_str(info, "role"));
        printf(")");
        if (cli_str(info, "expires")[0] != '\0') {
            printf(" until ");
            cli_put_safe(stdout, cli_str(info, "expires"));
        }
        printf("; token in %s\n", ctx->token_file);
    }
    rc = 0;
out:
    OPENSSL_cleanse(password, sizeof(password));
    json_decref(body);
    /* The answer held the token. */
    cli_reply_clear_secret(&r);
    cli_reply_clear(&who);
    return rc;
}

int cmd_logout(cli_ctx *ctx, const cli_args *a)
{
    cli_reply r;
    cli_url url;
    int ended = 0;
    (void)a;
    cli_url_init(&url, ctx, "/session");
    if (cli_call(&r, ctx, "DELETE", &url, NULL, NULL, 0) != 0) {
        if (r.http.status != 401) {
            cli_reply_fail(ctx, &r, NULL);
            if (!ctx->token_from_env)
                fprintf(stderr,
                        "custos: the token file %s is kept; run 'custos logout' again or "
                        "delete it\n",
                        ctx->token_file);
            cli_reply_clear(&r);
            return EXIT_REFUSED;
        }
        ended = 1; /* expired or revoked already: nothing left to end */
    }
    cli_reply_clear(&r);
    if (!ctx->token_from_env && unlink(ctx->token_file) != 0 && errno != ENOENT)
        return cli_fail(CUSTOS_ERR_IO, "token-file", "signed out, but cannot remove %s: %s",
                        ctx->token_file, strerror(errno));
    if (!ctx->quiet && !ctx->json)
        printf("signed out%s%s\n", ended ? " (the session had already ended)" : "",
               ctx->token_from_env ? "; unset CUSTOS_TOKEN" : "");
    return 0;
}

int cmd_whoami(cli_ctx *ctx, const cli_args *a)
{
    cli_reply r;
    (void)a;
    if (get_session(&r, ctx) != 0)
        return cli_reply_fail_clear(ctx, &r);
    if (ctx->json) {
        cli_print_body(&r);
    } else {
        cli_put_safe(stdout, cli_str(r.json, "username"));
        printf(" (");
        cli_put_safe(stdout, cli_str(r.json, "role"));
        printf(")");
        if (cli_str(r.json, "expires")[0] != '\0') {
            printf(", session expires ");
            cli_put_safe(stdout, cli_str(r.json, "expires"));
        }
        printf("; credential from %s\n", ctx->token_source);
    }
    cli_reply_clear(&r);
    return 0;
}
