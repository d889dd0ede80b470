/* custos-device: the device-side tool on Linux (offline mode), a client of
 * libcustos's public API only. */
#include <string.h>

#include "cli.h"

#define COMMON_OPTS "device-dir= secret-file= "

static const cli_command commands[] = {
    {"request",
     COMMON_OPTS "package= passphrase-file= component= serial= hardware-id= model= firmware= "
                 "meta* manufacturer* keep-package root=",
     "package passphrase-file component serial device-dir",
     "custos-device request --package PKG.mcpp --passphrase-file FILE --component C --serial SN\n"
     "         --device-dir DIR [--hardware-id X] [--model X] [--firmware X] [--meta K=V ...]\n"
     "         [--manufacturer K=V ...] [--root ROOT.pem|der] [--keep-package] [--secret-file "
     "PATH]",
     "Identity generation (manufacturing line). Opens and verifies the provisioning package\n"
     "with the passphrase (FILE: at most 1 KiB, one trailing newline stripped), generates one\n"
     "key pair per key template of component C, keeps the private keys in DIR/identity.mcpi\n"
     "(encrypted, locked to this device's secret) and writes the provisioning request\n"
     "DIR/request.mcpr for the technician to take to the CA. Then the package file is\n"
     "shredded (overwritten and removed) unless --keep-package. --root pins the Root of Trust\n"
     "the package must chain to (otherwise the root it carries is trusted on first use).",
     cmd_request},
    {"install", COMMON_OPTS "profile=", "device-dir profile",
     "custos-device install --device-dir DIR --profile FILE.mccp [--secret-file PATH]",
     "Verify the certified profile (signature and chain to the Root of Trust, the digest of\n"
     "the pending request, that every certificate matches one of this device's keys) and\n"
     "install it atomically as DIR/profile.mccp. After a rotation the previous profile is\n"
     "kept as DIR/profile.previous.mccp. A bad or foreign profile changes nothing.",
     cmd_install},
    {"status", COMMON_OPTS "json allow-mock", "device-dir",
     "custos-device status --device-dir DIR [--json] [--allow-mock] [--secret-file PATH]",
     "Describe the device files: state (empty, pending, provisioned, rotating), ids,\n"
     "certificates with validity and fingerprints. A provisioned device is also opened, so a\n"
     "device secret of another device (locked_to_another_device) or a mock identity without\n"
     "--allow-mock is reported as an error. Never shows key material.",
     cmd_status},
    {"sign", COMMON_OPTS "key= in= out= allow-mock", "device-dir key in out",
     "custos-device sign --device-dir DIR --key TEMPLATE --in FILE --out SIG [--allow-mock]\n"
     "         [--secret-file PATH]",
     "Sign FILE with the device key of TEMPLATE: ECDSA (DER) over SHA-256 (P-256 and\n"
     "P-384), RSA PKCS#1 v1.5 with SHA-256, pure Ed25519. Check it with\n"
     "'openssl dgst -sha256 -verify PUB.pem -signature SIG FILE' (ECDSA, RSA) or\n"
     "'openssl pkeyutl -verify -rawin -pubin -inkey PUB.pem -sigfile SIG -in FILE'\n"
     "(Ed25519). Mock device files are refused unless --allow-mock.",
     cmd_sign},
    {"provision",
     COMMON_OPTS "package= passphrase-file= component= serial= hardware-id= model= firmware= "
                 "meta* manufacturer* keep-package root= server= timeout=",
     "package passphrase-file component serial device-dir",
     "custos-device provision --package PKG.mcpp --passphrase-file FILE --component C\n"
     "         --serial SN --device-dir DIR [--server URL] [--timeout SECONDS]\n"
     "         [--hardware-id X] [--model X] [--firmware X] [--meta K=V ...]\n"
     "         [--manufacturer K=V ...] [--root ROOT.pem|der] [--keep-package]\n"
     "         [--secret-file PATH]",
     "Connected provisioning: the device does the whole flow itself over HTTPS.\n"
     "  1. identity generation, exactly as 'request' (same options; the package is\n"
     "     shredded afterwards unless --keep-package);\n"
     "  2. submits DIR/request.mcpr to the server (POST /device/v1/requests);\n"
     "  3. waits for approval, polling as often as the server asks (Retry-After);\n"
     "  4. downloads the certified profile and installs it (as 'install');\n"
     "  5. sends an install receipt signed with the new key, and exits 0 once the\n"
     "     server has confirmed the device provisioned.\n"
     "The server is trusted only through the Root of Trust of the package (later, of the\n"
     "installed profile): its certificate must chain to it and name the URL's host; TLS 1.2\n"
     "or later, https only. There is no option to turn this off.\n"
     "--server URL: the custosd base URL (https://host:port); default: the cloud URL the\n"
     "  package names.\n"
     "--timeout SECONDS: give up after this long (default 600, exit 1); network errors,\n"
     "  429 and 5xx answers are retried with a jittered exponential backoff (at most 30 s).\n"
     "Resuming: run the same command again. A DIR with a pending request (for the same\n"
     "serial and, when the package file is still there, the same package) is resumed\n"
     "without a new identity; a provisioned DIR is reported and confirmed with the server\n"
     "(exit 0 once it agrees). Progress is kept in DIR (request.submitted,\n"
     "receipt.pending), so a run killed at any point resumes where it stopped.\n"
     "Progress goes to stderr. A refusal exits 1 with the server's code and message, e.g.\n"
     "'custos-device: error: rejected: <the approver's reason>' or 'expired: ...'.",
     cmd_provision},
    {"rotate", COMMON_OPTS "out= same-keys firmware= meta* server= timeout=", "device-dir",
     "custos-device rotate --device-dir DIR (--out FILE.mcpr | --server URL [--timeout S])\n"
     "         [--same-keys] [--firmware X] [--meta K=V ...] [--secret-file PATH]",
     "Reprovisioning: build a request signed with the current identity, with fresh keys\n"
     "(rotation) or the same keys (--same-keys: renewal). The current identity stays in use\n"
     "until the answer is installed. With --out the request is written for a technician\n"
     "('custos-device install' of the answer); with --server the device submits it,\n"
     "waits, installs the answer and confirms it like 'provision' (a rotation already\n"
     "pending in DIR is resumed instead of starting another one).",
     cmd_rotate},
    {"export-cert", COMMON_OPTS "key= out= allow-mock", "device-dir key out",
     "custos-device export-cert --device-dir DIR --key TEMPLATE --out CERT.pem [--allow-mock]\n"
     "         [--secret-file PATH]",
     "Write the certificate of the key of TEMPLATE as PEM (e.g. for 'openssl verify').",
     cmd_export_cert},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

const cli_command *cli_find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

static void print_command_help(const cli_command *c)
{
    printf("usage: %s\n\n%s\n", c->synopsis, c->help);
}

static void print_help(void)
{
    fputs("custos-device " CUSTOS_VERSION_STRING " - the device side of Custos provisioning "
          "(offline and connected modes).\n\ncommands:\n",
          stdout);
    for (size_t i = 0; i < N_COMMANDS; i++)
        printf("  %s\n", commands[i].synopsis);
    fputs("\n  custos-device help COMMAND   help on one command\n\n"
          "device secret: every command takes --secret-file PATH. Without it the secret is\n"
          "  $CUSTOS_SECRET_FILE, else " CUSTOS_DEFAULT_SECRET_FILE " when running as root, else\n"
          "  $HOME/.local/share/custos/device-secret. 'request' creates it (32 random bytes,\n"
          "  mode 0600) when missing; the identity only opens with the same secret.\n\n"
          "exit status: 0 success, 1 refused or failed (error on stderr as\n"
          "  'custos-device: error: CODE: MESSAGE [field: FIELD]'), 2 usage error.\n\n"
          "environment:\n"
          "  CUSTOS_SECRET_FILE       default device secret file (see above)\n",
          stdout);
#ifdef CUSTOS_TEST_HOOKS
    fputs("  CUSTOS_FAKE_NOW=SECONDS  test hook (this is a test build): the device clock reads\n"
          "                           this Unix time (expiry tests).\n",
          stdout);
#endif
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(NULL, "no command given");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_help();
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("custos-device %s\n", CUSTOS_VERSION_STRING);
        return 0;
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            print_help();
            return 0;
        }
        const cli_command *h = cli_find(argv[2]);
        if (h == NULL)
            return cli_usage_error(NULL, "no such command '%s'", argv[2]);
        print_command_help(h);
        return 0;
    }
    const cli_command *c = cli_find(name);
    if (c == NULL)
        return cli_usage_error(NULL, "unknown command '%s'", name);
    cli_args a;
    int rc = cli_parse(&a, c, argc - 2, argv + 2);
    if (rc != 0)
        return rc;
    if (a.help) {
        print_command_help(c);
        return 0;
    }
    custos_error_clear();
    return c->run(&a);
}
