/* SQLite store: the schema and its migrations. A new store is made by
 * running every migration from an empty database, so the path that upgrades
 * an existing data directory is the one every test exercises.
 *
 * Version 1: authorities, systems, packages, requests, certificates,
 * profiles, audit. Version 2 (custosd serve): operators (users,
 * credentials), auto-approval policies, stored package files, install
 * receipts, the requests' hardware id, per-state counters kept by triggers,
 * and the indexes the operator API's filtered, paged lists need at a
 * million rows. Version 3: gateways (proxy provisioning). Version 4: prefix
 * indexes that cover a search (sqlite_search.c). */
#include <stdlib.h>
#include <string.h>

#include "internal/format.h"
#include "internal/util.h"
#include "store/sqlite_int.h"

static const char SCHEMA_V1[] =
    "CREATE TABLE authorities(name TEXT PRIMARY KEY, der BLOB NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE systems(name TEXT PRIMARY KEY, json TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE packages(id TEXT PRIMARY KEY, system TEXT NOT NULL REFERENCES systems(name),"
    " created INTEGER NOT NULL, expires INTEGER NOT NULL, cert BLOB NOT NULL);"
    "CREATE INDEX packages_system ON packages(system, created);"
    "CREATE TABLE requests(id TEXT PRIMARY KEY, device_id TEXT NOT NULL, state INTEGER NOT NULL,"
    " kind TEXT NOT NULL, via TEXT NOT NULL, system TEXT NOT NULL REFERENCES systems(name),"
    " component TEXT NOT NULL, serial TEXT NOT NULL, model TEXT NOT NULL, firmware TEXT NOT NULL,"
    " package_id TEXT NOT NULL, signer_serial TEXT NOT NULL, duplicate_serial INTEGER NOT NULL,"
    " reason TEXT NOT NULL, expires INTEGER NOT NULL, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL, digest BLOB NOT NULL, der BLOB NOT NULL);"
    "CREATE UNIQUE INDEX requests_digest ON requests(digest);"
    "CREATE INDEX requests_state ON requests(state, created);"
    "CREATE INDEX requests_component ON requests(system, component, created);"
    "CREATE INDEX requests_serial ON requests(serial);"
    "CREATE INDEX requests_device ON requests(device_id, created);"
    "CREATE INDEX requests_created ON requests(created, id);"
    "CREATE TABLE certificates(serial TEXT NOT NULL, request_id TEXT REFERENCES requests(id),"
    " device_id TEXT NOT NULL, template TEXT NOT NULL, issuer TEXT NOT NULL,"
    " mock INTEGER NOT NULL, not_after INTEGER NOT NULL, created INTEGER NOT NULL,"
    " der BLOB NOT NULL);"
    "CREATE UNIQUE INDEX certificates_serial ON certificates(serial);"
    "CREATE INDEX certificates_request ON certificates(request_id);"
    "CREATE TABLE profiles(request_id TEXT PRIMARY KEY REFERENCES requests(id),"
    " der BLOB NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE audit(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, actor TEXT NOT NULL,"
    " origin TEXT NOT NULL, action TEXT NOT NULL, object TEXT NOT NULL, detail TEXT NOT NULL,"
    " hash BLOB NOT NULL);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;";

/* Lists are newest first by (created, id) descending: every index ends in
 * (created, id) so a page is an index range scan, whatever the filter. */
static const char MIGRATE_V2[] =
    "ALTER TABLE requests ADD COLUMN hardware_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE packages ADD COLUMN file BLOB;"
    "DROP INDEX requests_state;"
    "DROP INDEX requests_component;"
    "CREATE INDEX requests_state ON requests(state, created, id);"
    "CREATE INDEX requests_system ON requests(system, created, id);"
    "CREATE INDEX requests_system_state ON requests(system, state, created, id);"
    "CREATE INDEX requests_component ON requests(system, component, created, id);"
    "CREATE INDEX requests_hardware ON requests(hardware_id);"
    "CREATE INDEX packages_created ON packages(created, id);"
    "CREATE INDEX audit_actor ON audit(actor, seq);"
    "CREATE INDEX audit_action ON audit(action, seq);"
    "CREATE INDEX audit_object ON audit(object, seq);"
    "CREATE INDEX audit_time ON audit(time);"
    "CREATE TABLE users(username TEXT PRIMARY KEY, role INTEGER NOT NULL,"
    " pw_hash TEXT NOT NULL, created INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE credentials(id TEXT PRIMARY KEY, kind INTEGER NOT NULL, hash BLOB NOT NULL,"
    " username TEXT NOT NULL REFERENCES users(username), name TEXT NOT NULL,"
    " csrf TEXT NOT NULL, origin TEXT NOT NULL, created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX credentials_hash ON credentials(hash);"
    "CREATE INDEX credentials_user ON credentials(username, kind);"
    "CREATE INDEX credentials_kind ON credentials(kind, created, id);"
    "CREATE TABLE policies(system TEXT PRIMARY KEY REFERENCES systems(name),"
    " mode INTEGER NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE policy_serials(system TEXT NOT NULL REFERENCES systems(name),"
    " list INTEGER NOT NULL, serial TEXT NOT NULL, PRIMARY KEY(system, list, serial))"
    " WITHOUT ROWID;"
    "CREATE TABLE receipts(request_id TEXT PRIMARY KEY REFERENCES requests(id),"
    " der BLOB NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE request_counts(system TEXT NOT NULL, component TEXT NOT NULL,"
    " state INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(system, component, state))"
    " WITHOUT ROWID;"
    "INSERT INTO request_counts(system, component, state, n)"
    " SELECT system, component, state, count(*) FROM requests WHERE 1"
    " GROUP BY system, component, state;"
    "CREATE TRIGGER requests_count_insert AFTER INSERT ON requests BEGIN"
    " INSERT INTO request_counts(system, component, state, n)"
    " VALUES(NEW.system, NEW.component, NEW.state, 1)"
    " ON CONFLICT(system, component, state) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER requests_count_state AFTER UPDATE OF state ON requests"
    " WHEN OLD.state <> NEW.state BEGIN"
    " UPDATE request_counts SET n = n - 1"
    " WHERE system = OLD.system AND component = OLD.component AND state = OLD.state;"
    " INSERT INTO request_counts(system, component, state, n)"
    " VALUES(NEW.system, NEW.component, NEW.state, 1)"
    " ON CONFLICT(system, component, state) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER requests_count_delete AFTER DELETE ON requests BEGIN"
    " UPDATE request_counts SET n = n - 1"
    " WHERE system = OLD.system AND component = OLD.component AND state = OLD.state; END;";

/* ---- version 3: proxy provisioning (gateways) --------------------------- *
 * Each request records the gateway (device id, and its serial then) it came
 * through, empty for every other channel; a gateway is a provisioned device
 * of a "gateway": true component, with the admin's on/off switch, the time of
 * its last authorized call and how many items it forwarded. */
static const char MIGRATE_V3_GATEWAYS[] =
    "ALTER TABLE requests ADD COLUMN gateway_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE requests ADD COLUMN gateway_serial TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE gateways(device_id TEXT PRIMARY KEY,"
    " system TEXT NOT NULL REFERENCES systems(name), serial TEXT NOT NULL,"
    " enabled INTEGER NOT NULL DEFAULT 1, last_seen INTEGER NOT NULL DEFAULT 0,"
    " forwarded INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL);"
    "CREATE INDEX gateways_system ON gateways(system, serial);";

static custos_err migrate_v3_gateways(sq *s)
{
    return custos_sq_exec_sql(s, MIGRATE_V3_GATEWAYS, "migration to v3 (gateways)");
}

/* ---- version 4: searching a million requests ---------------------------- *
 * The serial and hardware-id indexes cover what a search needs to choose a
 * page's rows (sqlite_search.c): created and id (the list order), state,
 * system and component (the filters), and in the hardware-id index the
 * serial (to skip rows the serial range also holds). */
static const char MIGRATE_V4_SEARCH[] =
    "DROP INDEX requests_serial;"
    "CREATE INDEX requests_serial ON requests(serial, created, id, state, system, component);"
    "DROP INDEX requests_hardware;"
    "CREATE INDEX requests_hardware ON requests(hardware_id, created, id, state, system,"
    " component, serial);";

static custos_err user_version(int *out, sq *s)
{
    sqlite3_stmt *st = NULL;
    custos_err ret = CUSTOS_ERR_INTERNAL;
    *out = 0;
    CUSTOS_ENSURE(sqlite3_prepare_v2(s->c.db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK,
                  CUSTOS_ERR_IO, "store", "store: %s", sqlite3_errmsg(s->c.db));
    CUSTOS_ENSURE(sqlite3_step(st) == SQLITE_ROW, CUSTOS_ERR_IO, "store", "store: %s",
                  sqlite3_errmsg(s->c.db));
    *out = sqlite3_column_int(st, 0);
    ret = CUSTOS_OK;
out:
    sqlite3_finalize(st);
    return ret;
}

/* Version 1 stored the request without its hardware id: read it from each
 * stored .mcpr (verified when it was imported). */
static custos_err backfill_hardware_ids(sq *s)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    sqlite3_stmt *sel = NULL, *upd = NULL;
    custos_request_doc *d = NULL;
    int rc;

    CUSTOS_ENSURE(
        sqlite3_prepare_v2(s->c.db, "SELECT rowid, der FROM requests", -1, &sel, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(s->c.db, "UPDATE requests SET hardware_id = ?2 WHERE rowid = ?1", -1,
                               &upd, NULL) == SQLITE_OK,
        CUSTOS_ERR_IO, "store", "store: migration: %s", sqlite3_errmsg(s->c.db));
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        const uint8_t *der = sqlite3_column_blob(sel, 1);
        int n = sqlite3_column_bytes(sel, 1);
        if (der == NULL || n <= 0 ||
            custos_request_decode_stored(&d, der, (size_t)n) != CUSTOS_OK) {
            custos_error_clear(); /* an unreadable row keeps an empty hardware id */
            continue;
        }
        sqlite3_reset(upd);
        CUSTOS_ENSURE(sqlite3_bind_int64(upd, 1, sqlite3_column_int64(sel, 0)) == SQLITE_OK &&
                          custos_sq_bind_text(upd, 2, d->hardware_id) == SQLITE_OK &&
                          sqlite3_step(upd) == SQLITE_DONE,
                      CUSTOS_ERR_IO, "store", "store: migration: %s", sqlite3_errmsg(s->c.db));
        custos_request_doc_free(d);
        d = NULL;
    }
    CUSTOS_ENSURE(rc == SQLITE_DONE, CUSTOS_ERR_IO, "store", "store: migration: %s",
                  sqlite3_errmsg(s->c.db));
    ret = CUSTOS_OK;
out:
    custos_request_doc_free(d);
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    return ret;
}

/* One step, in the caller's transaction. */
static custos_err migrate_step(sq *s, int from)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    switch (from) {
    case 0:
        CUSTOS_GUARD(custos_sq_exec_sql(s, SCHEMA_V1, "schema v1"));
        break;
    case 1:
        CUSTOS_GUARD(custos_sq_exec_sql(s, MIGRATE_V2, "migration to v2"));
        CUSTOS_GUARD(backfill_hardware_ids(s));
        break;
    case 2:
        CUSTOS_GUARD(migrate_v3_gateways(s));
        break;
    case 3:
        CUSTOS_GUARD(custos_sq_exec_sql(s, MIGRATE_V4_SEARCH, "migration to v4 (search)"));
        break;
    default:
        CUSTOS_ENSURE(0, CUSTOS_ERR_INTERNAL, "store", "no migration from version %d", from);
    }
    ret = CUSTOS_OK;
out:
    return ret;
}

custos_err custos_sq_migrate(sq *s, int create, const char *path)
{
    custos_err ret = CUSTOS_ERR_INTERNAL;
    int version = 0, in_tx = 0;
    char sql[64];

    CUSTOS_GUARD(user_version(&version, s));
    if (version == CUSTOS_SQ_SCHEMA_VERSION)
        return CUSTOS_OK;
    CUSTOS_ENSURE(version != 0 || create, CUSTOS_ERR_UNSUPPORTED, "store",
                  "store %s is empty: not a Custos data directory", path);
    CUSTOS_ENSURE(version >= 0 && version < CUSTOS_SQ_SCHEMA_VERSION, CUSTOS_ERR_UNSUPPORTED,
                  "store", "store %s has schema version %d; this custosd needs %d", path, version,
                  CUSTOS_SQ_SCHEMA_VERSION);
    /* Several engines may open an old store at once: the first to take the
     * write lock migrates, the others find the new version inside theirs. */
    CUSTOS_GUARD(custos_sq_exec_sql(s, "BEGIN IMMEDIATE", "migration"));
    in_tx = 1;
    CUSTOS_GUARD(user_version(&version, s));
    while (version < CUSTOS_SQ_SCHEMA_VERSION) {
        CUSTOS_GUARD(migrate_step(s, version));
        version++;
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", CUSTOS_SQ_SCHEMA_VERSION);
    CUSTOS_GUARD(custos_sq_exec_sql(s, sql, "migration"));
    CUSTOS_GUARD(custos_sq_exec_sql(s, "COMMIT", "migration"));
    in_tx = 0;
    ret = CUSTOS_OK;
out:
    if (in_tx)
        (void)custos_sq_exec_sql(s, "ROLLBACK", "migration");
    return ret;
}
