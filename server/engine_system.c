/* Editing a system: what may change once devices hold keys made from it,
 * and keeping every engine's parsed copy in step with the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

static const custos_component_def *component_find(const custos_system_def *d, const char *name)
{
    for (size_t i = 0; i < d->n_components; i++)
        if (strcmp(d->components[i].name, name) == 0)
            return &d->components[i];
    return NULL;
}

/* Every component of @p old is in @p new with the same key templates (the
 * same names, algorithms and usages; validity and subject may change). */
static custos_err edit_allowed(const custos_system_def *old, const custos_system_def *new)
{
    custos_err ret = CUSTOS_OK;

    for (size_t i = 0; i < old->n_components; i++) {
        const custos_component_def *o = &old->components[i];
        const custos_component_def *n = component_find(new, o->name);
        CUSTOS_ENSURE(n != NULL, CUSTOS_ERR_STATE, "components",
                          "component %s cannot be removed: devices and packages use it", o->name);
        CUSTOS_ENSURE(n->n_templates == o->n_templates, CUSTOS_ERR_STATE, "templates",
                          "component %s keeps its %zu key templates: add a new component for "
                          "other keys",
                          o->name, o->n_templates);
        for (size_t t = 0; t < o->n_templates; t++) {
            const custos_key_template *a = &o->templates[t];
            const custos_key_template *b = NULL;
            for (size_t k = 0; k < n->n_templates; k++)
                if (strcmp(n->templates[k].name, a->name) == 0)
                    b = &n->templates[k];
            CUSTOS_ENSURE(b != NULL, CUSTOS_ERR_STATE, "templates",
                              "key template %s of component %s cannot be removed or renamed",
                              a->name, o->name);
            CUSTOS_ENSURE(b->alg == a->alg && b->usage == a->usage, CUSTOS_ERR_STATE,
                              "templates",
                              "key template %s of component %s keeps its algorithm and usage",
                              a->name, o->name);
        }
    }
out:
    return ret;
}

custos_err engine_system_refresh(engine_system *s, const char *json)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_system_def *def = NULL, **grown = NULL;
    char *copy = NULL;

    CUSTOS_GUARD(custos_system_parse(&def, (const uint8_t *)json, strlen(json)));
    CUSTOS_ENSURE(strcmp(def->name, s->def->name) == 0, CUSTOS_ERR_MALFORMED, "system",
                  "stored system %s has name %s", s->def->name, def->name);
    copy = strdup(json);
    grown = realloc(s->retired, (s->n_retired + 1) * sizeof(*grown));
    CUSTOS_ENSURE(copy != NULL && grown != NULL, CUSTOS_ERR_NOMEM, "system", "out of memory");
    s->retired = grown;
    grown = NULL;
    s->retired[s->n_retired++] = s->def;
    s->def = def;
    def = NULL;
    free(s->json);
    s->json = copy;
    copy = NULL;
    ret = CUSTOS_OK;
out:
    free(grown);
    free(copy);
    custos_system_free(def);
    return ret;
}

custos_err custos_engine_system_update(custos_engine *e, const char *name, const uint8_t *json,
                                       size_t len, const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_system_def *def = NULL;
    engine_system *sys;
    json_t *j = NULL, *detail = NULL;
    char *canon = NULL;
    size_t canon_len = 0, added = 0;
    int in_tx = 0;

    CUSTOS_ENSURE(e != NULL && name != NULL && json != NULL, CUSTOS_ERR_ARG, "system",
                  "no system definition");
    CUSTOS_GUARD(custos_system_parse(&def, json, len));
    CUSTOS_GUARD(custos_engine_system_gateway_check(def));
    CUSTOS_ENSURE(strcmp(def->name, name) == 0, CUSTOS_ERR_ARG, "name",
                  "a system cannot be renamed (%s is not %s)", def->name, name);
    CUSTOS_GUARD(custos_system_to_json(&j, def));
    CUSTOS_GUARD(custos_json_dump(&canon, &canon_len, j));
    CUSTOS_GUARD(e->st->ops->begin(e->st->ctx));
    in_tx = 1;
    /* Checked inside the write transaction, against the stored definition
     * (custos_engine_system re-reads it), so two edits cannot interleave. */
    sys = (engine_system *)custos_engine_system(e, name);
    CUSTOS_ENSURE(sys != NULL, CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", name);
    CUSTOS_GUARD(edit_allowed(sys->def, def));
    for (size_t i = 0; i < def->n_components; i++)
        if (component_find(sys->def, def->components[i].name) == NULL)
            added++;
    CUSTOS_GUARD(e->st->ops->system_set(e->st->ctx, name, canon));
    detail = json_pack("{s:I, s:I}", "components", (json_int_t)def->n_components,
                       "components_added", (json_int_t)added);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_engine_audit(e, actor, "system.update", name, detail));
    CUSTOS_GUARD(e->st->ops->commit(e->st->ctx));
    in_tx = 0;
    ret = engine_system_refresh(sys, canon);
out:
    if (in_tx)
        e->st->ops->rollback(e->st->ctx);
    json_decref(detail);
    json_decref(j);
    free(canon);
    custos_system_free(def);
    return ret;
}
