/* Aligned text tables; widths in characters (UTF-8 code points). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "table.h"

#define MIN_COL 6
#define GAP 2

struct cli_table {
    size_t n_cols;
    char **headers;
    unsigned char *keep;
    char **cells; /* n_rows * n_cols */
    size_t n_rows;
    size_t cap_rows;
};

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p & 0xc0) != 0x80)
            n++;
    }
    return n;
}

static char *safe_copy(const char *s)
{
    if (s == NULL)
        s = "";
    size_t len = strlen(s);
    char *c = malloc(len + 1);
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        c[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    c[len] = '\0';
    return c;
}

cli_table *cli_table_new(size_t n_cols, const char *const *headers)
{
    cli_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->n_cols = n_cols;
    t->headers = calloc(n_cols, sizeof(*t->headers));
    t->keep = calloc(n_cols, 1);
    if (t->headers == NULL || t->keep == NULL) {
        free(t->headers);
        free(t->keep);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < n_cols; i++) {
        t->headers[i] = safe_copy(headers[i]);
        if (t->headers[i] == NULL) {
            cli_table_free(t);
            return NULL;
        }
    }
    return t;
}

void cli_table_free(cli_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; t->headers != NULL && i < t->n_cols; i++)
        free(t->headers[i]);
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->headers);
    free(t->keep);
    free(t->cells);
    free(t);
}

int cli_table_add(cli_table *t, const char *const *cells)
{
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows == 0 ? 64 : t->cap_rows * 2;
        if (cap > SIZE_MAX / sizeof(char *) / t->n_cols)
            return -1;
        char **grown = realloc(t->cells, cap * t->n_cols * sizeof(char *));
        if (grown == NULL)
            return -1;
        t->cells = grown;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->n_rows * t->n_cols;
    for (size_t i = 0; i < t->n_cols; i++) {
        row[i] = safe_copy(cells[i]);
        if (row[i] == NULL) {
            while (i > 0)
                free(row[--i]);
            return -1;
        }
    }
    t->n_rows++;
    return 0;
}

size_t cli_table_rows(const cli_table *t)
{
    return t->n_rows;
}

void cli_table_keep(cli_table *t, size_t col)
{
    if (col < t->n_cols)
        t->keep[col] = 1;
}

/* Print @p s in @p width characters: cut with "…" when longer, padded unless last. */
static void print_cell(FILE *f, const char *s, size_t width, int last)
{
    size_t w = text_width(s);
    if (w > width) {
        size_t keep = width > 0 ? width - 1 : 0;
        size_t n = 0;
        const unsigned char *p = (const unsigned char *)s;
        for (; *p != '\0'; p++) {
            if ((*p & 0xc0) != 0x80) {
                if (n == keep)
                    break;
                n++;
            }
            fputc(*p, f);
        }
        fputs("\xe2\x80\xa6", f); /* … */
        w = width;
    } else {
        fputs(s, f);
    }
    if (!last) {
        for (size_t i = w; i < width + GAP; i++)
            fputc(' ', f);
    }
}

/* Narrow the widest columns that may be narrowed until the table fits in
 * @p width. When it cannot fit even then, nothing is cut: the lines wrap
 * whole rather than lose their text and still wrap. */
static void fit(size_t *widths, const unsigned char *keep, size_t n_cols, size_t width)
{
    size_t least = 0;
    for (size_t i = 0; i < n_cols; i++)
        least +=
            (keep[i] || widths[i] < MIN_COL ? widths[i] : MIN_COL) + (i + 1 < n_cols ? GAP : 0);
    if (least > width)
        return;
    for (;;) {
        size_t total = 0, widest = n_cols;
        for (size_t i = 0; i < n_cols; i++) {
            total += widths[i] + (i + 1 < n_cols ? GAP : 0);
            if (!keep[i] && (widest == n_cols || widths[i] > widths[widest]))
                widest = i;
        }
        if (total <= width || widest == n_cols || widths[widest] <= MIN_COL)
            return;
        widths[widest]--;
    }
}

void cli_table_print(const cli_table *t, FILE *f, size_t width)
{
    size_t *widths = calloc(t->n_cols, sizeof(*widths));
    if (widths == NULL)
        return;
    for (size_t c = 0; c < t->n_cols; c++) {
        widths[c] = text_width(t->headers[c]);
        for (size_t r = 0; r < t->n_rows; r++) {
            size_t w = text_width(t->cells[r * t->n_cols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
    }
    if (width > 0)
        fit(widths, t->keep, t->n_cols, width);
    for (size_t c = 0; c < t->n_cols; c++)
        print_cell(f, t->headers[c], widths[c], c + 1 == t->n_cols);
    fputc('\n', f);
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++)
            print_cell(f, t->cells[r * t->n_cols + c], widths[c], c + 1 == t->n_cols);
        fputc('\n', f);
    }
    free(widths);
}

size_t cli_terminal_width(FILE *f)
{
    struct winsize ws;
    int fd = fileno(f);
    if (fd < 0 || !isatty(fd))
        return 0;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}
