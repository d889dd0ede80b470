/* custos: the operator CLI. Today: `custos inspect`. The REST client of the
 * custosd API comes with the HTTPS API. */
#include <string.h>

#include "custos_cli.h"

static void print_help(void)
{
    fputs("custos " CUSTOS_VERSION_STRING " - the Custos operator CLI.\n\n"
          "commands:\n"
          "  custos inspect FILE|DIR [--json] [--secret-file PATH]\n"
          "      Describe a Custos file (.mcpp package, .mcpr request, .mccp certified profile,\n"
          "      .mcpi private identity header) or a device directory: kind, what verified and\n"
          "      what could not be checked without a trust anchor, and the content. Never shows\n"
          "      key material. DIR: the device files' status; the device secret (--secret-file,\n"
          "      else $CUSTOS_SECRET_FILE, else the posix default) is only read, never created.\n\n"
          "Not yet: the REST client of the custosd HTTPS API (systems, packages, requests,\n"
          "approvals, operators) comes in a later release. Until then use custosd's admin\n"
          "subcommands on the data directory ('custosd --help').\n\n"
          "exit status: 0 success, 1 refused or failed (error on stderr as\n"
          "'custos: error: CODE: MESSAGE [field: FIELD]'), 2 usage error.\n",
          stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("custos: usage error: no command given\nRun 'custos --help'.\n", stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_help();
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("custos %s\n", CUSTOS_VERSION_STRING);
        return 0;
    }
    if (strcmp(argv[1], "inspect") == 0)
        return cmd_inspect(argc - 2, argv + 2);
    fprintf(stderr,
            "custos: usage error: unknown command '%s' (only 'inspect' exists yet; the "
            "REST client comes later)\nRun 'custos --help'.\n",
            argv[1]);
    return EXIT_USAGE;
}
