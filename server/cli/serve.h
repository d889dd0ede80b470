/* custosd serve (cmd_serve.c): its own option parsing, help and run. */
#ifndef CUSTOS_SERVER_CLI_SERVE_H
#define CUSTOS_SERVER_CLI_SERVE_H

extern const char cli_serve_synopsis[];
extern const char cli_serve_help[];
/* argv: the arguments after "serve". */
int cli_cmd_serve(int argc, char **argv);

#endif
