/* subjectAltName of tls-server device certificates: the hosts of the
 * system's services.gateways URLs, and nothing else. Only names an admin
 * declared can appear on a device's server certificate, so a device cannot
 * obtain a certificate for the cloud's own name unless it is listed there. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "internal/format.h"
#include "internal/util.h"

#define DNS_MAX 253
#define LABEL_MAX 63

int custos_ca_dns_name_valid(const char *s, size_t n)
{
    size_t i, label = 0;
    int digits_only = 1;

    if (n == 0 || n > DNS_MAX || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        if (c == '-' && label == 0)
            return 0;
        if (++label > LABEL_MAX)
            return 0;
        digits_only &= (c >= '0' && c <= '9');
    }
    /* "10.0.0.300" is neither an address nor a name anyone means. */
    return s[n - 1] != '-' && !digits_only;
}

static int port_valid(const char *p, size_t n)
{
    unsigned long v = 0;
    size_t i;
    if (n == 0 || n > 5)
        return 0;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

custos_err custos_ca_url_host(char *out, size_t cap, int *out_is_ip, const char *url,
                              const char *field)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    const char *auth, *end, *host, *rest;
    size_t alen, hlen, i;
    unsigned char addr[16];

    out[0] = '\0';
    *out_is_ip = 0;
    CUSTOS_ENSURE(url != NULL, CUSTOS_ERR_MALFORMED, field, "%s is empty", field);
    if (strncmp(url, "https://", 8) == 0)
        auth = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        auth = url + 7;
    else
        CUSTOS_ENSURE(0, CUSTOS_ERR_MALFORMED, field, "%s is not an http(s) URL", field);
    alen = strcspn(auth, "/?#");
    end = auth + alen;
    CUSTOS_ENSURE(memchr(auth, '@', alen) == NULL, CUSTOS_ERR_MALFORMED, field,
                  "%s: a gateway URL carries no user name", field);
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        CUSTOS_ENSURE(close != NULL, CUSTOS_ERR_MALFORMED, field, "%s: unterminated [IPv6]", field);
        host = auth + 1;
        hlen = (size_t)(close - host);
        rest = close + 1;
        *out_is_ip = 1;
    } else {
        host = auth;
        hlen = strcspn(auth, ":/?#");
        rest = auth + hlen;
    }
    CUSTOS_ENSURE(rest == end || (rest[0] == ':' && port_valid(rest + 1, (size_t)(end - rest - 1))),
                  CUSTOS_ERR_MALFORMED, field, "%s: the port must be a number from 1 to 65535",
                  field);
    CUSTOS_ENSURE(hlen > 0 && hlen < cap && hlen <= DNS_MAX, CUSTOS_ERR_MALFORMED, field,
                  "%s has no usable host", field);
    for (i = 0; i < hlen; i++)
        out[i] = (char)tolower((unsigned char)host[i]);
    out[hlen] = '\0';
    if (*out_is_ip) {
        CUSTOS_ENSURE(inet_pton(AF_INET6, out, addr) == 1, CUSTOS_ERR_MALFORMED, field,
                      "%s: [%s] is not an IPv6 address", field, out);
    } else if (inet_pton(AF_INET, out, addr) == 1) {
        *out_is_ip = 1;
    } else {
        CUSTOS_ENSURE(custos_ca_dns_name_valid(out, hlen), CUSTOS_ERR_MALFORMED, field,
                      "%s: \"%s\" is neither a DNS name (letters, digits, hyphens, dots) nor an "
                      "IP address",
                      field, out);
    }
    ret = CUSTOS_OK;
out:
    if (ret != CUSTOS_OK)
        out[0] = '\0';
    return ret;
}

static custos_err push_name(GENERAL_NAMES *names, const char *host, int is_ip)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_OCTET_STRING *ip = NULL;
    ASN1_IA5STRING *dns = NULL;
    int i;

    CUSTOS_ENSURE(g != NULL, CUSTOS_ERR_NOMEM, "subjectAltName", "out of memory");
    if (is_ip) {
        ip = a2i_IPADDRESS(host);
        CUSTOS_ENSURE(ip != NULL, CUSTOS_ERR_MALFORMED, "subjectAltName", "%s is not an IP address",
                      host);
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        ip = NULL;
    } else {
        dns = ASN1_IA5STRING_new();
        CUSTOS_ENSURE(dns != NULL && ASN1_STRING_set(dns, host, (int)strlen(host)) == 1,
                      CUSTOS_ERR_NOMEM, "subjectAltName", "out of memory");
        GENERAL_NAME_set0_value(g, GEN_DNS, dns);
        dns = NULL;
    }
    /* Two URLs on one host (other ports, paths) make one name. */
    for (i = 0; i < sk_GENERAL_NAME_num(names); i++)
        if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(names, i), g) == 0) {
            ret = CUSTOS_OK;
            goto out;
        }
    CUSTOS_ENSURE(sk_GENERAL_NAME_push(names, g) > 0, CUSTOS_ERR_NOMEM, "subjectAltName",
                  "out of memory");
    g = NULL;
    ret = CUSTOS_OK;
out:
    GENERAL_NAME_free(g);
    ASN1_OCTET_STRING_free(ip);
    ASN1_IA5STRING_free(dns);
    return ret;
}

custos_err custos_ca_gateway_names(GENERAL_NAMES **out, int *out_has_dns,
                                   const struct custos_services *services)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    GENERAL_NAMES *names = NULL;
    char host[DNS_MAX + 1], field[40];
    size_t i;
    int is_ip = 0, has_dns = 0;

    *out = NULL;
    if (out_has_dns != NULL)
        *out_has_dns = 0;
    CUSTOS_ENSURE(services != NULL && services->n_gateways > 0, CUSTOS_ERR_MALFORMED,
                  "services.gateways", "services.gateways is required for a tls-server template");
    names = sk_GENERAL_NAME_new_null();
    CUSTOS_ENSURE(names != NULL, CUSTOS_ERR_NOMEM, "subjectAltName", "out of memory");
    for (i = 0; i < services->n_gateways; i++) {
        snprintf(field, sizeof(field), "services.gateways[%zu]", i);
        CUSTOS_GUARD(custos_ca_url_host(host, sizeof(host), &is_ip, services->gateways[i], field));
        CUSTOS_GUARD(push_name(names, host, is_ip));
        has_dns |= !is_ip;
    }
    if (out_has_dns != NULL)
        *out_has_dns = has_dns;
    *out = names;
    names = NULL;
    ret = CUSTOS_OK;
out:
    GENERAL_NAMES_free(names);
    return ret;
}
