/* custos: the operator CLI, a client of custosd's operator API (docs/api.md),
 * plus `custos inspect` (offline). */
#include <stdlib.h>
#include <string.h>

#include "custos_cli.h"

#define ALL_PAGES "[--limit N] [--all]"

static const cli_command commands[] = {
    /* ---- session ---- */
    {"login", NULL, "user= password-file=", "user", 0, 0, CLI_NO_TOKEN,
     "custos login --user NAME [--password-file FILE]",
     "Sign in and keep the session's bearer token (12 hours) in the token file:\n"
     "--token-file FILE if given, else $XDG_CONFIG_HOME/custos/token (else\n"
     "~/.config/custos/token), mode 0600 in a 0700 directory, written atomically. The\n"
     "password comes from FILE (at most 1 KiB, one trailing newline stripped), else it is\n"
     "asked for on the terminal without echo, else read from standard input (one line).",
     cmd_login, NULL},
    {"logout", NULL, "", "", 0, 0, 0, "custos logout",
     "End the session on the server and remove the token file. A token from CUSTOS_TOKEN\n"
     "is signed out but no file is removed.",
     cmd_logout, NULL},
    {"whoami", NULL, "", "", 0, 0, 0, "custos whoami",
     "Show who the credential belongs to: user name, role, and when the session expires.",
     cmd_whoami, NULL},

    /* ---- systems, packages, policies, mock files ---- */
    {"systems", "create", "", "", 1, 1, 0, "custos systems create FILE.json",
     "Create a system from its definition (system.json, docs/formats.md; at most 64 KiB):\n"
     "components, key templates, services. Admin.",
     cmd_systems_create, NULL},
    {"systems", "list", "limit= all", "", 0, 0, 0, "custos systems list " ALL_PAGES,
     "List the systems: name, display name, components, cloud URL.", cmd_systems_list, NULL},
    {"systems", "show", "", "", 1, 1, 0, "custos systems show NAME",
     "Show a system's definition: components, key templates, services.", cmd_systems_show, NULL},
    {"packages", "create", "system= days= passphrase-file= out=", "system", 0, 0, 0,
     "custos packages create --system S [--days N] [--passphrase-file F] [-o FILE.mcpp]",
     "Make a provisioning package for system S, valid N days (default: the server's). The\n"
     "passphrase comes from F (at most 1 KiB, one trailing newline stripped); without F the\n"
     "server generates one and it is printed once: keep it, it is not shown again. Prints\n"
     "the package id and expiry; with -o also downloads the package (mode 0600). Admin.",
     cmd_packages_create, NULL},
    {"packages", "list", "system= limit= all", "", 0, 0, 0,
     "custos packages list [--system S] " ALL_PAGES,
     "List provisioning packages: id, system, created, expires. Admin.", cmd_packages_list, NULL},
    {"packages", "download", "out=", "out", 1, 1, 0, "custos packages download ID -o FILE.mcpp",
     "Download a provisioning package (written atomically, mode 0600). Admin.",
     cmd_packages_download, NULL},
    {"policies", "set", "system= mode= allow-file= deny-file=", "system mode", 0, 0, 0,
     "custos policies set --system S --mode manual|package|allow_list [--allow-file F]\n"
     "         [--deny-file F]",
     "Set the auto-approval policy of system S: manual (an approver decides), package\n"
     "(requests signed with a valid package are approved), allow_list (serials on the allow\n"
     "list are approved). The files hold one serial per line (blank lines ignored; at most\n"
     "4 MiB) and replace that list; a list not given stays as it is. Admin.",
     cmd_policies_set, check_policies_set},
    {"policies", "show", "system=", "system", 0, 0, 0, "custos policies show --system S",
     "Show the auto-approval policy of system S with its allow and deny lists.", cmd_policies_show,
     NULL},
    {"mock", "create", "system= component= serial= out=", "system component serial out", 0, 0, 0,
     "custos mock create --system S --component C --serial SN -o FILE.tar",
     "Make mock device files for component C of system S: a tar archive with\n"
     "identity.mcpi and profile.mccp (keys not encrypted, certificates under the mock root,\n"
     "refused wherever a real identity is required). Written mode 0600. Admin, technician.",
     cmd_mock_create, NULL},

    /* ---- requests and devices ---- */
    {"requests", "upload", "", "", 1, CLI_MAX_POS, 0, "custos requests upload FILE.mcpr|DIR...",
     "Upload provisioning requests taken off devices (disconnected mode). A directory\n"
     "uploads every *.mcpr in it. Each file (at most 64 KiB, checked before reading) gets a\n"
     "line: 'OK FILE ID STATE' on stdout, or the error on stderr. With more than one file, a\n"
     "progress bar when stderr is a terminal, else a summary line. Exit 1 if any failed.\n"
     "Uploading the same file again is harmless. Admin, technician.",
     cmd_requests_upload, NULL},
    {"devices", "list", "state= system= component= search= limit= all", "", 0, 0, 0,
     "custos devices list [--state S] [--system S] [--component C] [--search Q]\n"
     "         " ALL_PAGES,
     "List provisioning requests (the Devices page): request id, state, system, component,\n"
     "serial, model, how it arrived, last change; a footer counts them per state. --search\n"
     "matches the start of a serial or hardware id. --limit is the page size (1-500,\n"
     "default 50); --all follows the pages to the end.",
     cmd_devices_list, NULL},
    {"devices", "show", "", "", 1, 1, 0, "custos devices show ID",
     "Show one request: identity, metadata, keys, signer, certificates and history.",
     cmd_devices_show, NULL},
    {"devices", "approve", "all-pending system=", "", 0, CLI_MAX_POS, 0,
     "custos devices approve ID... | --all-pending [--system S]",
     "Approve requests: the CA issues the certificates and the certified profile.\n"
     "--all-pending approves every pending request (of system S). One line per request;\n"
     "with more than one, a progress bar on a terminal, else a summary. Exit 1 if any\n"
     "failed. Admin, approver.",
     cmd_devices_approve, check_devices_approve},
    {"devices", "reject", "reason=", "reason", 1, CLI_MAX_POS, 0,
     "custos devices reject ID... --reason TEXT",
     "Reject requests; the device is told TEXT. Admin, approver.", cmd_devices_reject, NULL},
    {"devices", "complete", "", "", 1, CLI_MAX_POS, 0, "custos devices complete ID...",
     "Complete provisioning (disconnected mode): the certified profile is installed on\n"
     "the device; the request becomes provisioned. Admin, technician.",
     cmd_devices_complete, NULL},
    {"profiles", "download", "out=", "out", 1, 1, 0, "custos profiles download ID -o FILE.mccp",
     "Download the certified profile of an approved request, to install on the device\n"
     "with 'custos-device install'. Admin, technician.",
     cmd_profiles_download, NULL},

    /* ---- operators ---- */
    {"users", "create", "role= password-file=", "role", 1, 1, 0,
     "custos users create NAME --role admin|approver|technician|auditor [--password-file F]",
     "Create an operator. Without F the server generates a password and it is printed\n"
     "once. Admin.",
     cmd_users_create, check_users_create},
    {"users", "list", "limit= all", "", 0, 0, 0, "custos users list " ALL_PAGES,
     "List the operators: user name, role, created. Admin.", cmd_users_list, NULL},
    {"tokens", "create", "name= user= days=", "name user", 0, 0, 0,
     "custos tokens create --name N --user U [--days D]",
     "Make an API token (a long-lived bearer token for scripts) acting as user U, valid D\n"
     "days (default: the server's). The token is printed once. Admin.",
     cmd_tokens_create, NULL},
    {"tokens", "list", "limit= all", "", 0, 0, 0, "custos tokens list " ALL_PAGES,
     "List API tokens: id, name, user, created, expires, revoked. Admin.", cmd_tokens_list, NULL},
    {"tokens", "revoke", "", "", 1, 1, 0, "custos tokens revoke ID",
     "Revoke an API token at once. Admin.", cmd_tokens_revoke, NULL},
    {"audit", "list", "actor= action= object= since= until= limit= all", "", 0, 0, 0,
     "custos audit list [--actor A] [--action X] [--object ID] [--since T] [--until T]\n"
     "         " ALL_PAGES,
     "Read the audit trail: sequence, time, actor (user:NAME, token:ID, policy:MODE,\n"
     "device), client address, action, object, detail. T is RFC 3339 UTC.",
     cmd_audit_list, NULL},
    {"audit", "verify", "", "", 0, 0, 0, "custos audit verify",
     "Verify the audit trail's hash chain: 'audit trail verified: N entries', or exit 1\n"
     "naming the first bad entry.",
     cmd_audit_verify, NULL},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char *global_help =
    "global options (before or after the command):\n"
    "  --server URL        the custosd API, https://HOST:PORT (else $CUSTOS_SERVER)\n"
    "  --ca-file FILE      PEM trust anchor for the server: the data directory's root.pem\n"
    "                      written by 'custosd init' (else $CUSTOS_CA_FILE)\n"
    "  --token-file FILE   the bearer token (else $CUSTOS_TOKEN, else the file 'custos login'\n"
    "                      writes: $XDG_CONFIG_HOME/custos/token or ~/.config/custos/token)\n"
    "  --json              print the server's JSON answer as it is, one document; lists\n"
    "                      with --all: every item in one \"items\"; several files or ids:\n"
    "                      {\"items\": [{\"input\", \"status\", \"body\"}...]}\n"
    "  --quiet             no confirmations, progress or summaries; data and secrets shown\n"
    "                      once are still printed (a secret alone on its line)\n";

static const cli_command *find(const char *group, const char *verb)
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

static int group_has_verbs(const char *group)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].group, group) == 0 && commands[i].verb != NULL)
            return 1;
    }
    return 0;
}

static void print_help(void)
{
    fputs("custos " CUSTOS_VERSION_STRING " - the Custos operator CLI, a client of the custosd "
          "HTTPS API.\n\ncommands:\n",
          stdout);
    for (size_t i = 0; i < N_COMMANDS; i++)
        printf("  %s\n", commands[i].synopsis);
    fputs("  custos inspect FILE|DIR [--json] [--secret-file PATH]\n"
          "      Offline: describe a Custos file (.mcpp, .mcpr, .mccp, .mcpi header) or a\n"
          "      device directory: kind, what verified, the content. Never shows key material.\n"
          "      The device secret (--secret-file, else $CUSTOS_SECRET_FILE, else the posix\n"
          "      default) is only read, never created.\n\n"
          "  custos help COMMAND [VERB]   or   custos COMMAND [VERB] --help\n\n",
          stdout);
    fputs(global_help, stdout);
    fputs("\nThe token is sent as 'Authorization: Bearer ...' and never printed, except a new\n"
          "secret when it is made (tokens create, users create with a generated password,\n"
          "packages create with a generated passphrase), once.\n\n"
          "exit status: 0 success, 1 refused or failed (error on stderr as\n"
          "'custos: error: CODE: MESSAGE [field: FIELD]', CODE the server's), 2 usage error.\n\n"
          "environment: CUSTOS_SERVER, CUSTOS_CA_FILE, CUSTOS_TOKEN, XDG_CONFIG_HOME, HOME;\n"
          "  CUSTOS_SECRET_FILE (inspect).\n",
          stdout);
}

static void print_command_help(const cli_command *c)
{
    printf("usage: %s\n\n%s\n\n%s", c->synopsis, c->help, global_help);
}

static void print_group_help(FILE *f, const char *group)
{
    fprintf(f, "custos %s commands:\n", group);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].group, group) == 0)
            fprintf(f, "  %s\n", commands[i].synopsis);
    }
    fprintf(f, "Run 'custos %s VERB --help' for one of them.\n", group);
}

static int help_command(int argc, char **argv)
{
    if (argc < 1) {
        print_help();
        return 0;
    }
    if (strcmp(argv[0], "inspect") == 0) {
        char help[] = "--help";
        char *args[] = {help, NULL};
        return cmd_inspect(1, args);
    }
    if (!group_exists(argv[0]))
        return cli_usage_error(NULL, "no such command '%s'", argv[0]);
    const cli_command *c = find(argv[0], argc > 1 ? argv[1] : NULL);
    if (c == NULL) {
        if (argc > 1)
            return cli_usage_error(NULL, "no such command 'custos %s %s'", argv[0], argv[1]);
        print_group_help(stdout, argv[0]);
        return 0;
    }
    print_command_help(c);
    return 0;
}

/* A global option that takes its value in the next argument. */
static int takes_value(const char *arg)
{
    return strcmp(arg, "--server") == 0 || strcmp(arg, "--ca-file") == 0 ||
           strcmp(arg, "--token-file") == 0;
}

static int run(const cli_command *c, int argc, char **argv)
{
    cli_args a;
    cli_ctx ctx;
    int rc = cli_parse(&a, c, argc, argv);
    if (rc == 0 && !a.help && c->check != NULL)
        rc = c->check(c, &a);
    if (rc != 0 || a.help) {
        if (rc == 0)
            print_command_help(c);
        cli_args_free(&a);
        return rc;
    }
    rc = cli_ctx_open(&ctx, c, &a);
    if (rc == 0) {
        custos_error_clear();
        rc = c->run(&ctx, &a);
        fflush(stdout);
        if (ferror(stdout) && rc == 0)
            rc = cli_fail(CUSTOS_ERR_IO, "stdout", "cannot write the output");
    }
    cli_ctx_close(&ctx);
    cli_args_free(&a);
    return rc;
}

int main(int argc, char **argv)
{
    int i = 1, help = 0;
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0)
        return cmd_inspect(argc - 2, argv + 2);
    /* Global options may come before the command words. */
    while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("custos %s\n", CUSTOS_VERSION_STRING);
            return 0;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            help = 1;
        i += takes_value(argv[i]) && i + 1 < argc ? 2 : 1;
    }
    if (i >= argc) {
        if (help) {
            print_help();
            return 0;
        }
        return cli_usage_error(NULL, "no command given");
    }
    const char *group = argv[i];
    if (strcmp(group, "help") == 0)
        return help_command(argc - i - 1, argv + i + 1);
    if (strcmp(group, "inspect") == 0)
        return cli_usage_error(NULL, "'inspect' takes its own options after it: custos inspect "
                                     "FILE|DIR [--json] [--secret-file PATH]");
    if (!group_exists(group))
        return cli_usage_error(NULL, "unknown command '%s'", group);
    const cli_command *c = find(group, NULL);
    int words = 1;
    if (group_has_verbs(group)) {
        const char *verb = i + 1 < argc ? argv[i + 1] : NULL;
        if (help || (verb != NULL && (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0))) {
            print_group_help(stdout, group);
            return 0;
        }
        if (verb == NULL || verb[0] == '-') {
            fprintf(stderr, "custos: usage error: 'custos %s' needs a command:\n", group);
            print_group_help(stderr, group);
            return EXIT_USAGE;
        }
        c = find(group, verb);
        if (c == NULL)
            return cli_usage_error(NULL, "unknown command 'custos %s %s'", group, verb);
        words = 2;
    }
    /* The options before the command words, then everything after them. */
    int n = 0;
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    if (args == NULL)
        return cli_fail(CUSTOS_ERR_NOMEM, NULL, "out of memory");
    for (int k = 1; k < i; k++)
        args[n++] = argv[k];
    for (int k = i + words; k < argc; k++)
        args[n++] = argv[k];
    int rc = run(c, n, args);
    free(args);
    return rc;
}
