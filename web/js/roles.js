// What each role may do (docs/api.md, "Credentials and roles"). The console
// only hides what a role may not do; the server enforces every call.

const ALLOWED = {
  approve: ['admin', 'approver'], // approve, reject
  upload: ['admin', 'technician'], // upload .mcpr, download profiles, complete provisioning
  mock: ['admin', 'technician'], // mock device files
  admin: ['admin'], // systems, policies, packages, gateways, users
};

export function can(user, what) {
  return Boolean(user && ALLOWED[what] && ALLOWED[what].includes(user.role));
}

export const ROLE_LABEL = {
  admin: 'Security admin',
  approver: 'Approver',
  technician: 'Technician',
  auditor: 'Auditor',
};
