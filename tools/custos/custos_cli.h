/* custos: the operator CLI. Uses only libcustos's public API. */
#ifndef CUSTOS_TOOL_CLI_H
#define CUSTOS_TOOL_CLI_H

#include <stdio.h>

#include "custos/custos.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2

/* Readable, indented rendering of a JSON document (long strings shortened). */
void render_json(FILE *f, const char *json);

/* custos inspect PATH [--json] [--secret-file PATH] */
int cmd_inspect(int argc, char **argv);

#endif
