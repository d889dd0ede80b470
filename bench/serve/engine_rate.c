/* bench_serve: the in-process engine rate for the same work as the HTTPS
 * phase (a reference figure, measured with the server stopped). */
#include <stdio.h>
#include <stdlib.h>

#include "serve.h"

/* submit (import + auto-approve) + profile export + receipt, one thread;
 * only the engine's calls are timed (the device's receipt is not). */
double engine_rate(const char *root, const workload *w, size_t n, double parts_ms[3])
{
    char dir[600];
    bench_store st;
    custos_engine *eng = NULL;
    custos_actor actor = {"bench", "local"};
    double dev_ms, t[3] = {0, 0, 0};
    custos_err r;

    snprintf(dir, sizeof(dir), "%s/engine-data", root);
    store_setup(&st, dir, w);
    device *devs = devices_make(n, st.pkg, w->component, root, "e", &dev_ms);
    if ((r = custos_engine_open(&eng, dir)) < 0)
        die("open", r);
    for (size_t i = 0; i < n; i++) {
        custos_request_summary s;
        int created = 0;
        uint8_t *prof = NULL, *rc = NULL;
        size_t prof_len = 0, rc_len = 0;
        double t0 = now_s();
        if ((r = custos_engine_request_submit(&s, &created, eng, devs[i].req, devs[i].req_len,
                                              "connected", &actor)) < 0)
            die("submit", r);
        if (s.state != CUSTOS_STATE_CERTIFIED)
            fail("the policy did not certify the request");
        double t1 = now_s();
        if ((r = custos_engine_profile_export(&prof, &prof_len, eng, s.request_id)) < 0)
            die("profile export", r);
        double t2 = now_s();
        if ((r = receipt_make(&rc, &rc_len, &devs[i], s.device_id, prof, prof_len)) < 0)
            die("receipt", r);
        char id[CUSTOS_ID_LEN + 1];
        snprintf(id, sizeof(id), "%s", s.request_id); /* accept clears its output first */
        double t3 = now_s();
        if ((r = custos_engine_receipt_accept(&s, eng, id, rc, rc_len, &actor)) < 0)
            die("receipt accept", r);
        double t4 = now_s();
        t[0] += t1 - t0;
        t[1] += t2 - t1;
        t[2] += t4 - t3;
        free(prof);
        free(rc);
    }
    custos_engine_free(eng);
    custos_package_free(st.pkg);
    devices_free(devs, n);
    for (int k = 0; k < 3; k++)
        parts_ms[k] = 1e3 * t[k] / (double)n;
    return (double)n / (t[0] + t[1] + t[2]);
}
