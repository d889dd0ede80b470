/* A one-line progress bar, redrawn in place with a carriage return. */
#include <string.h>
#include <unistd.h>

#include "progress.h"

#define BAR_WIDTH 30

static void draw(cli_progress *p)
{
    size_t fill = p->total > 0 ? p->done * BAR_WIDTH / p->total : BAR_WIDTH;
    fprintf(p->f, "\r\033[K%s [", p->label);
    for (size_t i = 0; i < BAR_WIDTH; i++)
        fputc(i < fill ? '#' : '.', p->f);
    fprintf(p->f, "] %zu/%zu", p->done, p->total);
    if (p->failed > 0)
        fprintf(p->f, ", %zu failed", p->failed);
    fflush(p->f);
    p->drawn = 1;
}

void cli_progress_start(cli_progress *p, FILE *f, const char *label, size_t total, int enabled)
{
    memset(p, 0, sizeof(*p));
    p->f = f;
    p->label = label;
    p->total = total;
    p->enabled = enabled && fileno(f) >= 0 && isatty(fileno(f));
    if (p->enabled)
        draw(p);
}

void cli_progress_step(cli_progress *p, int ok)
{
    p->done++;
    if (!ok)
        p->failed++;
    if (p->enabled)
        draw(p);
}

void cli_progress_clear(cli_progress *p)
{
    if (p->enabled && p->drawn) {
        fputs("\r\033[K", p->f);
        fflush(p->f);
        p->drawn = 0;
    }
}

void cli_progress_finish(cli_progress *p)
{
    cli_progress_clear(p);
    p->enabled = 0;
}
