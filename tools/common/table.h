/* Shared by the command-line tools: aligned text tables whose column widths
 * come from the data. */
#ifndef CUSTOS_TOOLS_TABLE_H
#define CUSTOS_TOOLS_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct cli_table cli_table;

/* A table with @p n_cols columns named by @p headers (copied). NULL when out
 * of memory. */
cli_table *cli_table_new(size_t n_cols, const char *const *headers);
void cli_table_free(cli_table *t);

/* Append a row of n_cols cells (copied; NULL is shown as ""). Control
 * characters are replaced by '?': cells come from the server. Returns 0, or
 * -1 when out of memory. */
int cli_table_add(cli_table *t, const char *const *cells);

size_t cli_table_rows(const cli_table *t);

/* Never narrow column @p col (ids, times: a cut one is useless). */
void cli_table_keep(cli_table *t, size_t col);

/* Print the header and the rows, columns separated by two spaces. When
 * @p width is not 0 (the terminal's width) and the table is wider, the widest
 * columns (not the kept ones) are narrowed and their long cells cut with "…". */
void cli_table_print(const cli_table *t, FILE *f, size_t width);

/* The width of the terminal on @p f, or 0 when @p f is not a terminal. */
size_t cli_terminal_width(FILE *f);

#endif
