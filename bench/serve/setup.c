/* bench_serve setup (untimed): the workload and a fresh data directory with
 * its system, policy "package" and one package. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/format.h"
#include "internal/util.h"

#include "serve.h"

static uint8_t *read_file(size_t *out_len, const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(CUSTOS_MAX_SYSTEM_JSON_SIZE);
    if (f == NULL || buf == NULL) {
        fprintf(stderr, "bench_serve: cannot read %s\n", path);
        exit(1);
    }
    *out_len = fread(buf, 1, CUSTOS_MAX_SYSTEM_JSON_SIZE, f);
    fclose(f);
    return buf;
}

/* --p256: one P-256 key, as bench_provision. */
static const char P256_SYSTEM[] =
    "{\"name\":\"bench-p256\",\"components\":[{\"name\":\"dev\",\"templates\":["
    "{\"name\":\"tls\",\"algorithm\":\"ecdsa-p256\",\"usage\":[\"tls-client\"],"
    "\"valid_days\":365}]}]}";

void workload_load(workload *w, const char *path, const char *component)
{
    json_t *j, *comps;
    memset(w, 0, sizeof(*w));
    if (path == NULL) {
        w->system_len = strlen(P256_SYSTEM);
        w->system = malloc(w->system_len);
        if (w->system == NULL)
            fail("out of memory");
        memcpy(w->system, P256_SYSTEM, w->system_len);
    } else {
        w->system = read_file(&w->system_len, path);
    }
    j = json_loadb((const char *)w->system, w->system_len, 0, NULL);
    snprintf(w->name, sizeof(w->name), "%s", json_string_value(json_object_get(j, "name")));
    comps = json_object_get(j, "components");
    for (size_t i = 0; i < json_array_size(comps); i++) {
        json_t *c = json_array_get(comps, i), *ts = json_object_get(c, "templates");
        const char *cn = json_string_value(json_object_get(c, "name"));
        if (cn == NULL || (component != NULL ? strcmp(cn, component) != 0 : i > 0))
            continue;
        snprintf(w->component, sizeof(w->component), "%s", cn);
        for (size_t k = 0; k < json_array_size(ts); k++) {
            const char *alg =
                json_string_value(json_object_get(json_array_get(ts, k), "algorithm"));
            if (alg != NULL && strcmp(alg, "ecdsa-p256") == 0)
                w->n_p256++;
            else if (alg != NULL && strcmp(alg, "ecdsa-p384") == 0)
                w->n_p384++;
            else
                fail("the crypto limit knows ecdsa-p256 and ecdsa-p384 keys only");
            size_t l = strlen(w->algs);
            snprintf(w->algs + l, sizeof(w->algs) - l, "%s%s", l ? " + " : "", alg);
        }
    }
    json_decref(j);
    if (w->name[0] == '\0' || w->component[0] == '\0')
        fail("no such system or component");
}

/* custosd init, the system, policy "package", one package (kept open). */
void store_setup(bench_store *out, const char *dir, const workload *w)
{
    custos_actor actor = {"bench", "local"};
    custos_engine *eng = NULL;
    uint8_t *pkg_der = NULL;
    size_t pkg_len = 0;
    custos_err r;

    snprintf(out->dir, sizeof(out->dir), "%s", dir);
    if ((r = custos_engine_init(dir)) < 0)
        die("init", r);
    if ((r = custos_engine_open(&eng, dir)) < 0)
        die("open", r);
    if ((r = custos_engine_system_create(eng, w->system, w->system_len, &actor)) < 0)
        die("system create", r);
    if ((r = custos_engine_policy_set(eng, w->name, CUSTOS_POLICY_PACKAGE, NULL, 0, NULL, 0,
                                      &actor)) < 0)
        die("policy set", r);
    if ((r = custos_engine_package_create(&pkg_der, &pkg_len, eng, w->name, "pw", 2, 30, &actor)) <
        0)
        die("package create", r);
    if ((r = custos_package_open(&out->pkg, pkg_der, pkg_len, "pw", 2, NULL)) < 0)
        die("package open", r);
    custos_engine_free(eng);
    free(pkg_der);
}
