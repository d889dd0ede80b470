/* Shared by the command-line tools: a progress bar for bulk operations,
 * drawn on a terminal only. */
#ifndef CUSTOS_TOOLS_PROGRESS_H
#define CUSTOS_TOOLS_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

typedef struct cli_progress {
    FILE *f;
    const char *label;
    size_t total;
    size_t done;
    size_t failed;
    int enabled; /* drawing; 0 when f is not a terminal or asked not to */
    int drawn;   /* a bar is on the current line */
} cli_progress;

/* Start counting @p total items; draws only when @p enabled and @p f is a terminal. */
void cli_progress_start(cli_progress *p, FILE *f, const char *label, size_t total, int enabled);
/* Count one item done (@p ok 0 when it failed) and redraw. */
void cli_progress_step(cli_progress *p, int ok);
/* Erase the bar before printing something else on the terminal. */
void cli_progress_clear(cli_progress *p);
/* Erase the bar for good. */
void cli_progress_finish(cli_progress *p);

#endif
