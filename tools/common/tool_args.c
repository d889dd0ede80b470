/* Shared by the command-line tools: options checked against a command's spec. */
#include "tool_args.h"

#include <stdio.h>
#include <string.h>

int tool_option_kind(const char *options, const char *name, size_t len)
{
    const char *p = options;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ' ');
        size_t wlen = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t nlen = wlen;
        int kind = 0;
        if (wlen > 0 && (p[wlen - 1] == '=' || p[wlen - 1] == '*')) {
            kind = p[wlen - 1];
            nlen--;
        }
        if (nlen > 0 && nlen == len && strncmp(p, name, len) == 0)
            return kind;
        p = end != NULL ? end + 1 : NULL;
    }
    return -1;
}

int tool_opt_add(tool_opt *opts, size_t *n_opts, size_t cap, const char *name, size_t len, int kind,
                 const char *eq, const char *next, char why[TOOL_WHY_MAX])
{
    static char names[TOOL_MAX_OPTS][TOOL_OPT_NAME_MAX];
    const char *value = NULL;
    int took = 0;
    if (len >= TOOL_OPT_NAME_MAX) {
        snprintf(why, TOOL_WHY_MAX, "unknown option '--%.*s'", (int)len, name);
        return -1;
    }
    if (*n_opts >= cap || *n_opts >= TOOL_MAX_OPTS) {
        snprintf(why, TOOL_WHY_MAX, "too many options");
        return -1;
    }
    char *stored = names[*n_opts];
    memcpy(stored, name, len);
    stored[len] = '\0';
    if (kind == 0) {
        if (eq != NULL) {
            snprintf(why, TOOL_WHY_MAX, "option '--%s' takes no value", stored);
            return -1;
        }
    } else if (eq != NULL) {
        value = eq + 1;
    } else if (next != NULL) {
        value = next;
        took = 1;
    } else {
        snprintf(why, TOOL_WHY_MAX, "option '--%s' needs a value", stored);
        return -1;
    }
    if (kind != '*' && tool_opt_has(opts, *n_opts, stored)) {
        snprintf(why, TOOL_WHY_MAX, "option '--%s' given twice", stored);
        return -1;
    }
    opts[*n_opts].name = stored;
    opts[*n_opts].value = value;
    (*n_opts)++;
    return took;
}

int tool_opt_has(const tool_opt *opts, size_t n_opts, const char *name)
{
    for (size_t i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].name, name) == 0)
            return 1;
    }
    return 0;
}

const char *tool_opt_get(const tool_opt *opts, size_t n_opts, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < n_opts; i++) {
        if (strcmp(opts[i].name, name) == 0)
            v = opts[i].value;
    }
    return v;
}

const char *tool_opt_missing(const tool_opt *opts, size_t n_opts, const char *required,
                             size_t *out_len)
{
    const char *p = required;
    *out_len = 0;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ' ');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int found = 0;
        for (size_t i = 0; i < n_opts; i++) {
            if (strlen(opts[i].name) == len && strncmp(opts[i].name, p, len) == 0)
                found = 1;
        }
        if (!found) {
            *out_len = len;
            return p;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

int tool_args_parse(tool_opt *opts, size_t *n_opts, size_t cap, int *help, const char *options,
                    const char *required, int argc, char **argv, char why[TOOL_WHY_MAX])
{
    *n_opts = 0;
    *help = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(why, TOOL_WHY_MAX, "unexpected argument '%.80s'", arg);
            return -1;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        int kind = tool_option_kind(options, name, len);
        if (kind < 0 || len >= TOOL_OPT_NAME_MAX) {
            snprintf(why, TOOL_WHY_MAX, "unknown option '--%.*s'", (int)(len > 80 ? 80 : len),
                     name);
            return -1;
        }
        int took = tool_opt_add(opts, n_opts, cap, name, len, kind, eq,
                                i + 1 < argc ? argv[i + 1] : NULL, why);
        if (took < 0)
            return -1;
        i += took;
    }
    if (*help)
        return 0;
    size_t len;
    const char *missing = tool_opt_missing(opts, *n_opts, required, &len);
    if (missing != NULL) {
        snprintf(why, TOOL_WHY_MAX, "option '--%.*s' is required", (int)len, missing);
        return -1;
    }
    return 0;
}
