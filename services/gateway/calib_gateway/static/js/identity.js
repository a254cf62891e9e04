// Who is signed in, which observatories they may see, and what they may do there.

/**
 * The caller from `GET /api/v1/me` (`{name, server_admin, memberships: [{observatory_id,
 * can_admin}]}`); server admins see every observatory of `GET /api/v1/admin/observatories`.
 */
export async function loadIdentity(api) {
  const me = await api.get("/api/v1/me");
  let observatories = me.memberships.map((m) => ({ id: m.observatory_id, name: m.observatory_id, can_admin: m.can_admin }));
  if (me.server_admin) {
    observatories = (await api.get("/api/v1/admin/observatories")).items
      .map((o) => ({ id: o.id, name: o.name, can_admin: true }));
  }
  return new Identity(me.name || "", Boolean(me.server_admin), observatories);
}

export class Identity {
  constructor(name, serverAdmin, observatories) {
    this.name = name;
    this.serverAdmin = serverAdmin;
    this.observatories = [...observatories].sort((a, b) => a.id.localeCompare(b.id));
  }

  canView(id) {
    return this.observatories.some((o) => o.id === id);
  }

  /** Change things at an observatory: masters, frames, settings, jobs (SPEC §8 permissions). */
  canManage(id) {
    if (this.serverAdmin) return true;
    return this.observatories.some((o) => o.id === id && o.can_admin);
  }

  get role() {
    if (this.serverAdmin) return "server admin";
    return this.observatories.some((o) => o.can_admin) ? "observatory admin" : "observatory member";
  }
}
