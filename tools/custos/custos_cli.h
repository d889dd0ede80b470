/* custos: the operator CLI. Uses only libcustos's public API. */
#ifndef CUSTOS_TOOL_CLI_H
#define CUSTOS_TOOL_CLI_H

#include <stdio.h>

#include "custos/custos.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2

#include "jsonprint.h"

/* custos inspect PATH [--json] [--secret-file PATH] */
int cmd_inspect(int argc, char **argv);

#endif
