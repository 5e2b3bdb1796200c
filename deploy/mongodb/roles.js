// One MongoDB user per service, each with a custom role granting only the
// collections that service owns (review M5): a compromised gateway, which
// faces the Internet, cannot read queries or lift phone locks, code
// attempts or channel claims.
//
// Run by a database administrator with mongosh (docs/runbook.md "Database
// users"), once at set-up and again to change a password or after a release
// that adds a collection:
//
//   YZTC_MONGODB_GATEWAY_PASSWORD=... YZTC_MONGODB_AGGREGATOR_PASSWORD=... \
//   YZTC_MONGODB_SMS_NOTIFIER_PASSWORD=... \
//     mongosh "mongodb://admin@mongodb-0.example:27017/admin?tls=true" --file deploy/mongodb/roles.js
//
// Environment: YZTC_MONGODB_DB (default yztc): the database; for each
// service, YZTC_MONGODB_<SERVICE>_PASSWORD (a user without one keeps its
// password, a new user needs one) and YZTC_MONGODB_<SERVICE>_USER (default
// yztc-<service>; a second name is how a password is rotated without
// downtime, see the runbook). Idempotent: roles are created or replaced to
// match GRANTS exactly, users created or updated.
//
// FerretDB (our local wire server, v1.24: `make run` and the tests) does not
// enforce roles, so nothing here is exercised against a live server in the
// tests; tests/security/test_m5_database_roles.py checks this script
// statically: GRANTS names exactly the collections each service's code uses
// (a new collection without a grant fails it), with these actions only, and
// the gateway none of the aggregator's or the notifier's. The platform
// connectors use no database and have no user.

// BEGIN GRANTS (JSON: read by tests/security/test_m5_database_roles.py)
const GRANTS = {
  "gateway": {
    "rate_limit_slots": ["find", "insert", "remove", "createIndex"],
    "sessions": ["find", "insert", "update", "remove", "createIndex"]
  },
  "aggregator": {
    "channel_days": ["find", "insert", "update", "remove", "createIndex"],
    "claims": ["find", "insert", "update", "remove", "createIndex"],
    "leases": ["find", "insert", "update", "remove", "createIndex"],
    "phones": ["find", "insert", "update", "remove", "createIndex"],
    "queries": ["find", "insert", "update", "remove", "createIndex"],
    "query_stats": ["find", "insert", "update", "remove", "createIndex"],
    "replicas": ["find", "insert", "update", "remove", "createIndex"],
    "work": ["find", "insert", "update", "remove", "createIndex"]
  },
  "sms_notifier": {
    "sms": ["find", "insert", "update", "remove", "createIndex"],
    "sms_leases": ["find", "insert", "update", "remove", "createIndex"],
    "sms_queue": ["find", "insert", "update", "remove", "createIndex"]
  }
};
// END GRANTS

const dbName = process.env.YZTC_MONGODB_DB || "yztc";
const target = db.getSiblingDB(dbName);

for (const [service, collections] of Object.entries(GRANTS)) {
  const env = service.toUpperCase();
  const roleName = `yztc-${service}`;
  const userName = process.env[`YZTC_MONGODB_${env}_USER`] || `yztc-${service.replace("_", "-")}`;
  const password = process.env[`YZTC_MONGODB_${env}_PASSWORD`];
  const privileges = Object.entries(collections).map(([collection, actions]) => ({
    resource: { db: dbName, collection: collection },
    actions: actions,
  }));

  // The role lives in the service's database; replaced whole, so a grant
  // removed from GRANTS is revoked.
  if (target.getRole(roleName) === null) {
    target.createRole({ role: roleName, privileges: privileges, roles: [] });
  } else {
    target.updateRole(roleName, { privileges: privileges, roles: [] });
  }

  const roles = [{ role: roleName, db: dbName }];
  if (target.getUser(userName) === null) {
    if (!password) {
      throw new Error(`YZTC_MONGODB_${env}_PASSWORD is needed to create user ${userName}`);
    }
    target.createUser({ user: userName, pwd: password, roles: roles });
  } else if (password) {
    target.updateUser(userName, { pwd: password, roles: roles });
  } else {
    target.updateUser(userName, { roles: roles });
  }
  print(`${userName}: role ${roleName} on ${Object.keys(collections).join(", ")}`);
}
