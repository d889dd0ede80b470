/* custosd: the CA daemon. `custosd serve` is the HTTPS service (cmd_serve.c,
 * with its own options); the admin subcommands work directly on the data
 * directory (air-gapped installations). This file: the command table,
 * dispatch and help; the subcommands are in cmd_*.c, argument parsing and
 * shared helpers in args.c. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "custos/custos.h"

/* ---- command table and help ----------------------------------------------- */

static const cli_command commands[] = {
    {"init", NULL, "data server-name", "data", 0,
     "custosd init --data DIR [--server-name NAME]...",
     "Create a new data directory: the store, the root CA, the bootstrap CA, the package- and\n"
     "profile-signing keys, the server TLS certificate and the mock root, and the first\n"
     "operator, admin, whose generated password is printed once. DIR must not exist or must\n"
     "be empty. DIR/root.pem is the Root of Trust certificate. The TLS server certificate\n"
     "names localhost, 127.0.0.1 and ::1; each --server-name (a DNS name or an IP address,\n"
     "repeatable, at most 16) adds one.",
     cli_cmd_init},
    {"user", "create", "data role password-file", "data role", 1,
     "custosd user create --data DIR --role ROLE [--password-file FILE] NAME",
     "Create an operator (air-gapped administration). ROLE is admin, approver, technician or\n"
     "auditor; NAME is 1 to 64 characters of a-z 0-9 . _ -. The password is read from FILE\n"
     "(at least 12 bytes) or generated and printed once.",
     cli_cmd_user_create},
    {"user", "password", "data password-file", "data", 1,
     "custosd user password --data DIR [--password-file FILE] NAME",
     "Set an operator's password (read from FILE, or generated and printed once); their\n"
     "sessions end.",
     cli_cmd_user_password},
    {"token", "create", "data user name days", "data user name", 0,
     "custosd token create --data DIR --user NAME --name LABEL [--days N]",
     "Make an API token for operator NAME, valid N days (default 90, at most 3650), printed\n"
     "once; scripts send it as 'Authorization: Bearer <token>'. It has the operator's role.",
     cli_cmd_token_create},
    {"system", "create", "data file", "data file", 0,
     "custosd system create --data DIR --file SYSTEM.json",
     "Define a system (product) with its components and key templates from a JSON file\n"
     "(docs/formats.md); creates the system's issuing CA. A taken name is refused.",
     cli_cmd_system_create},
    {"package", "create", "data system passphrase-file out valid-days",
     "data system passphrase-file out", 0,
     "custosd package create --data DIR --system NAME --passphrase-file FILE --out PKG.mcpp "
     "[--valid-days N]",
     "Make the system's provisioning package (.mcpp): key templates, services, Root of Trust\n"
     "and a bootstrap credential valid N days (default 365). The bootstrap key inside is\n"
     "encrypted with the passphrase read from FILE (at most 1 KiB, one trailing newline\n"
     "stripped, must not be empty). The package is written with mode 0600.",
     cli_cmd_package_create},
    {"request", "import", "data json", "data", 1,
     "custosd request import --data DIR [--json] FILE.mcpr",
     "Verify a provisioning request (.mcpr) copied off a device (signature, signer chain and\n"
     "expiry, proof of possession, key templates, limits) and store it as pending. Prints the\n"
     "request id and state, and warns when another device of the system has the same serial.\n"
     "Importing the same file again shows the existing request.",
     cli_cmd_request_import},
    {"request", "approve", "data json", "data", 1, "custosd request approve --data DIR [--json] ID",
     "Approve a pending request: issue one certificate per key and build the certified\n"
     "profile (state certified).",
     cli_cmd_request_approve},
    {"request", "reject", "data reason json", "data reason", 1,
     "custosd request reject --data DIR --reason TEXT [--json] ID",
     "Reject a pending request; the reason is kept in the audit trail.", cli_cmd_request_reject},
    {"request", "show", "data json", "data", 1, "custosd request show --data DIR [--json] ID",
     "Show one request and its state.", cli_cmd_request_show},
    {"profile", "export", "data out", "data out", 1,
     "custosd profile export --data DIR --out FILE.mccp ID",
     "Write the certified profile (.mccp) of a certified or provisioned request, for the\n"
     "technician to install on the device.",
     cli_cmd_profile_export},
    {"device", "complete", "data json", "data", 1, "custosd device complete --data DIR [--json] ID",
     "Complete provisioning (disconnected mode): after the technician installed the certified\n"
     "profile on the device, mark it provisioned.",
     cli_cmd_device_complete},
    {"device", "list", "data state json", "data", 0,
     "custosd device list --data DIR [--state STATE] [--json]",
     "List requests and devices, newest first: id, state, system, component, serial, kind,\n"
     "via, created. STATE is one of pending, approved, certified, provisioned, rejected,\n"
     "expired, revoked.",
     cli_cmd_device_list},
    {"mock", "create", "data system component serial out", "data system component serial out", 0,
     "custosd mock create --data DIR --system S --component C --serial X --out DIR",
     "Generate mock device files (test artifacts): keys in the clear, certificates under the\n"
     "separate mock root, marked mock so no verifier accepts them as a real device.",
     cli_cmd_mock_create},
    {"audit", "verify", "data", "data", 0, "custosd audit verify --data DIR",
     "Recompute the hash chain of the audit trail and report the first broken entry, if any.",
     cli_cmd_audit_verify},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

const cli_command *cli_find_command(const char *group, const char *verb)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].group, group) != 0)
            continue;
        if (commands[i].verb == NULL || (verb != NULL && strcmp(commands[i].verb, verb) == 0))
            return &commands[i];
    }
    return NULL;
}

static int group_exists(const char *group)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].group, group) == 0)
            return 1;
    }
    return 0;
}

static void print_command_help(FILE *f, const cli_command *c)
{
    fprintf(f, "usage: %s\n\n%s\n", c->synopsis, c->help);
}

static void print_help(FILE *f)
{
    fputs("custosd " CUSTOS_VERSION_STRING " - the Custos CA: systems, provisioning packages,\n"
          "requests, certified profiles and the audit trail.\n\n"
          "`custosd serve` runs the HTTPS service: the device protocol and the operator API\n"
          "(docs/api.md). The other commands work directly on the data directory (air-gapped\n"
          "installations).\n\n"
          "commands:\n",
          f);
    fprintf(f, "  %s\n", cli_serve_synopsis);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %s\n", commands[i].synopsis);
    fputs("\n  custosd help COMMAND [SUBCOMMAND]   help on one command\n\n"
          "exit status: 0 success, 1 refused or failed (error on stderr as\n"
          "'custosd: error: CODE: MESSAGE [field: FIELD]'), 2 usage error.\n",
          f);
#ifdef CUSTOS_TEST_HOOKS
    fputs("\nenvironment (this is a test build):\n"
          "  CUSTOS_FAKE_NOW=SECONDS  test hook: the engine uses this Unix time instead of the\n"
          "                           system clock (expiry tests).\n",
          f);
#endif
}

static int cmd_help(int argc, char **argv)
{
    if (argc == 0) {
        print_help(stdout);
        return 0;
    }
    int found = 0;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const cli_command *c = &commands[i];
        if (strcmp(c->group, argv[0]) != 0)
            continue;
        if (argc > 1 && c->verb != NULL && strcmp(c->verb, argv[1]) != 0)
            continue;
        if (found)
            fputc('\n', stdout);
        print_command_help(stdout, c);
        found = 1;
    }
    if (!found)
        return cli_usage_error(NULL, "no such command '%s%s%s'", argv[0], argc > 1 ? " " : "",
                               argc > 1 ? argv[1] : "");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(NULL, "no command given");
    const char *group = argv[1];
    if (strcmp(group, "--help") == 0 || strcmp(group, "-h") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(group, "--version") == 0) {
        printf("custosd %s\n", CUSTOS_VERSION_STRING);
        return 0;
    }
    if (strcmp(group, "help") == 0) {
        if (argc > 2 && strcmp(argv[2], "serve") == 0) {
            printf("usage: %s\n\n%s\n", cli_serve_synopsis, cli_serve_help);
            return 0;
        }
        return cmd_help(argc - 2, argv + 2);
    }
    if (strcmp(group, "serve") == 0) {
        custos_error_clear();
        return cli_cmd_serve(argc - 2, argv + 2);
    }
    if (!group_exists(group))
        return cli_usage_error(NULL, "unknown command '%s'", group);
    const cli_command *c = cli_find_command(group, NULL);
    int first = 2;
    if (c == NULL || c->verb != NULL) {
        const char *verb = argc > 2 ? argv[2] : NULL;
        if (verb != NULL && (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)) {
            char *hargv[1] = {argv[1]};
            return cmd_help(1, hargv);
        }
        c = verb != NULL ? cli_find_command(group, verb) : NULL;
        if (c == NULL || c->verb == NULL) {
            fprintf(stderr, "custosd: usage error: %s '%s'\n",
                    verb == NULL ? "missing subcommand for" : "unknown subcommand of", group);
            for (size_t i = 0; i < N_COMMANDS; i++) {
                if (strcmp(commands[i].group, group) == 0)
                    fprintf(stderr, "usage: %s\n", commands[i].synopsis);
            }
            return EXIT_USAGE;
        }
        first = 3;
    }
    cli_args a;
    int rc = cli_parse_args(&a, c, argc - first, argv + first);
    if (rc != 0)
        return rc;
    if (a.help) {
        print_command_help(stdout, c);
        return 0;
    }
    custos_error_clear();
    return c->run(&a);
}
