/* Auto-approval policies per system and the submission path that applies
 * them (custos_engine_request_submit).
 *
 * The policy is read from the store on every new request (one primary-key
 * lookup, plus one for each list consulted), never cached: another engine
 * may have changed it a moment ago. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

static const char *const MODE_NAMES[] = {NULL, "manual", "package", "allow_list"};

const char *custos_policy_mode_name(custos_policy_mode m)
{
    return custos_engine_name_of(MODE_NAMES, CUSTOS_POLICY_MANUAL, CUSTOS_POLICY_ALLOW_LIST,
                                 (int)m);
}

custos_policy_mode custos_policy_mode_from_name(const char *name)
{
    return (custos_policy_mode)custos_engine_name_find(MODE_NAMES, CUSTOS_POLICY_MANUAL,
                                                       CUSTOS_POLICY_ALLOW_LIST, name);
}

static custos_err system_known(custos_engine *e, const char *system)
{
    char *json = NULL;
    custos_err r;
    if (system == NULL || !custos_name_valid(system, CUSTOS_MAX_NAME_LEN))
        return custos_error_set(CUSTOS_ERR_NOT_FOUND, "system", "unknown system");
    r = e->st->ops->system_get(e->st->ctx, &json, system);
    free(json);
    if (r == CUSTOS_ERR_NOT_FOUND)
        return custos_error_set(CUSTOS_ERR_NOT_FOUND, "system", "unknown system %s", system);
    return r;
}

static custos_err check_list(const char *const *serials, size_t n, const char *field)
{
    size_t i;
    if (serials == NULL)
        return CUSTOS_OK;
    if (n > CUSTOS_POLICY_MAX_SERIALS)
        return custos_error_set(CUSTOS_ERR_LIMIT, field, "%zu serials; at most %d per list", n,
                                CUSTOS_POLICY_MAX_SERIALS);
    for (i = 0; i < n; i++)
        if (serials[i] == NULL || !custos_serial_valid(serials[i]))
            return custos_error_set(CUSTOS_ERR_ARG, field, "%s[%zu] is not a valid serial", field,
                                    i);
    return CUSTOS_OK;
}

custos_err custos_engine_policy_set(custos_engine *e, const char *system, custos_policy_mode mode,
                                    const char *const *allow, size_t n_allow,
                                    const char *const *deny, size_t n_deny,
                                    const custos_actor *actor)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_policy p;
    json_t *detail = NULL;
    int in_tx = 0;

    CUSTOS_ENSURE(e != NULL, CUSTOS_ERR_ARG, "policy", "no engine");
    CUSTOS_ENSURE(mode >= CUSTOS_POLICY_MANUAL && mode <= CUSTOS_POLICY_ALLOW_LIST, CUSTOS_ERR_ARG,
                  "mode", "mode must be manual, package or allow_list");
    CUSTOS_GUARD(check_list(allow, n_allow, "allow"));
    CUSTOS_GUARD(check_list(deny, n_deny, "deny"));
    CUSTOS_GUARD(system_known(e, system));
    CUSTOS_GUARD(custos_engine_tx_begin(e, &in_tx));
    CUSTOS_GUARD(e->st->ops->policy_put(e->st->ctx, system, (int)mode, custos_engine_now(e)));
    if (allow != NULL)
        CUSTOS_GUARD(
            e->st->ops->policy_list_set(e->st->ctx, system, CUSTOS_STORE_ALLOW, allow, n_allow));
    if (deny != NULL)
        CUSTOS_GUARD(
            e->st->ops->policy_list_set(e->st->ctx, system, CUSTOS_STORE_DENY, deny, n_deny));
    CUSTOS_GUARD(e->st->ops->policy_get(e->st->ctx, &p, system, 1));
    detail = json_pack("{s:s, s:I, s:I, s:b, s:b}", "mode", custos_policy_mode_name(mode),
                       "allow_count", (json_int_t)p.n_allow, "deny_count", (json_int_t)p.n_deny,
                       "allow_replaced", allow != NULL, "deny_replaced", deny != NULL);
    CUSTOS_ENSURE(detail != NULL, CUSTOS_ERR_NOMEM, "audit", "out of memory");
    CUSTOS_GUARD(custos_engine_audit(e, actor, "policy.set", system, detail));
    CUSTOS_GUARD(custos_engine_tx_commit(e, &in_tx));
    ret = CUSTOS_OK;
out:
    if (e != NULL)
        custos_engine_tx_end(e, &in_tx);
    json_decref(detail);
    return ret;
}

static int append_serial(const char *name, const uint8_t *data, size_t len, void *ctx)
{
    (void)data;
    (void)len;
    return json_array_append_new(ctx, json_string(name)) == 0 ? 0 : CUSTOS_ERR_NOMEM;
}

custos_err custos_engine_policy_get(json_t **out, custos_engine *e, const char *system,
                                    int include_lists)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_policy p;
    json_t *j = NULL, *allow = NULL, *deny = NULL;

    CUSTOS_ENSURE(out != NULL && e != NULL, CUSTOS_ERR_ARG, "policy", "missing argument");
    *out = NULL;
    CUSTOS_GUARD(system_known(e, system));
    CUSTOS_GUARD(e->st->ops->policy_get(e->st->ctx, &p, system, 1));
    j = json_pack(
        "{s:s, s:s, s:I, s:I}", "system", system, "mode",
        custos_policy_mode_name(p.mode != 0 ? (custos_policy_mode)p.mode : CUSTOS_POLICY_MANUAL),
        "allow_count", (json_int_t)p.n_allow, "deny_count", (json_int_t)p.n_deny);
    CUSTOS_ENSURE(j != NULL, CUSTOS_ERR_NOMEM, "policy", "out of memory");
    if (include_lists) {
        allow = json_array();
        deny = json_array();
        CUSTOS_ENSURE(allow != NULL && deny != NULL, CUSTOS_ERR_NOMEM, "policy", "out of memory");
        CUSTOS_GUARD(e->st->ops->policy_list_iter(e->st->ctx, system, CUSTOS_STORE_ALLOW,
                                                  append_serial, allow));
        CUSTOS_GUARD(e->st->ops->policy_list_iter(e->st->ctx, system, CUSTOS_STORE_DENY,
                                                  append_serial, deny));
        CUSTOS_ENSURE(json_object_set_new(j, "allow", allow) == 0, CUSTOS_ERR_NOMEM, "policy",
                      "out of memory");
        allow = NULL;
        CUSTOS_ENSURE(json_object_set_new(j, "deny", deny) == 0, CUSTOS_ERR_NOMEM, "policy",
                      "out of memory");
        deny = NULL;
    }
    *out = j;
    j = NULL;
    ret = CUSTOS_OK;
out:
    json_decref(allow);
    json_decref(deny);
    json_decref(j);
    return ret;
}

/* ---- submission ----------------------------------------------------------- */

/* Whether the policy of the request's system approves it; *why says why not
 * (for the audit trail) when a policy other than manual holds it. */
static custos_err policy_decide(int *approve, custos_policy_mode *mode, const char **why,
                                custos_engine *e, const custos_request_summary *r)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_store_policy p;
    custos_store_request latest;
    int listed = 0;
    custos_err got;

    memset(&latest, 0, sizeof(latest));
    *approve = 0;
    *why = NULL;
    CUSTOS_GUARD(e->st->ops->policy_get(e->st->ctx, &p, r->system, 0));
    *mode = p.mode != 0 ? (custos_policy_mode)p.mode : CUSTOS_POLICY_MANUAL;
    if (*mode == CUSTOS_POLICY_MANUAL)
        return CUSTOS_OK;
    if (r->duplicate_serial) {
        *why = "duplicate serial: another device of the system has it";
        return CUSTOS_OK;
    }
    CUSTOS_GUARD(
        e->st->ops->policy_has(e->st->ctx, &listed, r->system, CUSTOS_STORE_DENY, r->serial));
    if (listed) {
        *why = "the serial is on the deny-list";
        return CUSTOS_OK;
    }
    if (*mode == CUSTOS_POLICY_ALLOW_LIST) {
        CUSTOS_GUARD(
            e->st->ops->policy_has(e->st->ctx, &listed, r->system, CUSTOS_STORE_ALLOW, r->serial));
        *approve = listed;
        *why = listed ? NULL : "the serial is not on the allow-list";
        return CUSTOS_OK;
    }
    /* package: import verified the signature (the system's package for an
     * initial request, the device's current certificate for a renewal); a
     * renewal also needs a device that finished provisioning once. */
    if (strcmp(r->kind, "initial") == 0) {
        *approve = 1;
        return CUSTOS_OK;
    }
    got = e->st->ops->request_latest_provisioned(e->st->ctx, &latest, r->device_id);
    CUSTOS_ENSURE(got == CUSTOS_OK || got == CUSTOS_ERR_NOT_FOUND, got, "store",
                  "store lookup failed");
    custos_error_clear();
    *approve = got == CUSTOS_OK;
    *why = *approve ? NULL : "the device has not been provisioned yet";
    ret = CUSTOS_OK;
out:
    custos_store_request_clear(&latest);
    return ret;
}

static custos_err note(custos_engine *e, const custos_actor *actor, const char *action,
                       const char *id, json_t *detail)
{
    custos_err r = detail != NULL ? custos_engine_audit(e, actor, action, id, detail)
                                  : custos_error_set(CUSTOS_ERR_NOMEM, "audit", "out of memory");
    json_decref(detail);
    return r;
}

/* The policy's actor, "policy:MODE" (from the caller's origin). */
typedef struct policy_who {
    char who[32];
    custos_actor actor;
} policy_who;

static void policy_actor_set(policy_who *w, custos_policy_mode mode, const custos_actor *actor)
{
    snprintf(w->who, sizeof(w->who), "policy:%s", custos_policy_mode_name(mode));
    w->actor.who = w->who;
    w->actor.from = actor != NULL && actor->from != NULL ? actor->from : "";
}

typedef struct auto_ctx {
    policy_who pw;
    const custos_actor *caller;
} auto_ctx;

/* engine_auto.decide: the policy's decision before the write. */
static custos_err auto_decide(int *approve, engine_auto *a, custos_engine *e,
                              const custos_request_summary *r)
{
    auto_ctx *c = a->ctx;
    custos_policy_mode mode = CUSTOS_POLICY_MANUAL;
    const char *why = NULL;
    custos_err ret = policy_decide(approve, &mode, &why, e, r);
    if (ret != CUSTOS_OK)
        return ret;
    policy_actor_set(&c->pw, mode, c->caller);
    a->approver = &c->pw.actor;
    return CUSTOS_OK;
}

custos_err custos_engine_request_submit(custos_request_summary *out, int *out_created,
                                        custos_engine *e, const uint8_t *der, size_t len,
                                        const char *via, const custos_actor *actor)
{
    return custos_engine_request_submit_gw(out, out_created, e, der, len, via, actor, NULL);
}

custos_err custos_engine_request_submit_gw(custos_request_summary *out, int *out_created,
                                           custos_engine *e, const uint8_t *der, size_t len,
                                           const char *via, const custos_actor *actor,
                                           const custos_gateway_info *gw)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    custos_request_summary after;
    custos_policy_mode mode = CUSTOS_POLICY_MANUAL;
    const char *why = NULL;
    auto_ctx ctx;
    engine_auto a;
    int approve = 0;

    memset(&ctx, 0, sizeof(ctx));
    memset(&a, 0, sizeof(a));
    ctx.caller = actor;
    a.decide = auto_decide;
    a.ctx = &ctx;
    a.gateway = gw;
    /* When the policy approves, the request is issued for before it is
     * stored and certified in the import's transaction. */
    CUSTOS_GUARD(custos_engine_request_import_auto(out, out_created, e, der, len, via, actor, &a));
    if (!*out_created || a.certified)
        return CUSTOS_OK;
    if (a.failed != CUSTOS_OK) {
        ret = a.failed;
        goto failed;
    }
    if (out->state != CUSTOS_STATE_PENDING)
        return CUSTOS_OK;
    /* Stored pending without issuance: apply the policy as it stands now. */
    CUSTOS_GUARD(policy_decide(&approve, &mode, &why, e, out));
    policy_actor_set(&ctx.pw, mode, actor);
    if (!approve) {
        if (why != NULL)
            CUSTOS_GUARD(note(e, &ctx.pw.actor, "policy.hold", out->request_id,
                              json_pack("{s:s}", "reason", why)));
        return CUSTOS_OK;
    }
    ret = custos_engine_request_approve(&after, e, out->request_id, &ctx.pw.actor);
    if (ret == CUSTOS_OK) {
        *out = after;
        return CUSTOS_OK;
    }
    a.failure = *custos_error_last();
    custos_error_clear();
failed:
    /* The import stands; the request waits for a person, with the reason on
     * record. (It may also have been approved by someone else meanwhile.) */
    CUSTOS_GUARD(
        note(e, a.approver != NULL ? a.approver : &ctx.pw.actor, "policy.approve_failed",
             out->request_id,
             json_pack("{s:s, s:s}", "code", custos_err_code(ret), "message", a.failure.message)));
    if (custos_engine_request_get(&after, e, out->request_id) == CUSTOS_OK)
        *out = after;
    custos_error_clear();
    ret = CUSTOS_OK;
out:
    return ret;
}
