/* Shared by the command-line tools: a readable rendering of the JSON the
 * library describes files and devices with. */
#ifndef CUSTOS_TOOLS_JSONPRINT_H
#define CUSTOS_TOOLS_JSONPRINT_H

#include <stdio.h>

/* Readable, indented rendering of a JSON document (long strings shortened). */
void cli_print_json_human(FILE *f, const char *json);

#endif
