/**
 * Membership: the consortium's organisations (with their business roles: core enterprise,
 * supplier, bank, warehouse, exchange, regulator, gateway) and members (an address belongs to one
 * organisation and holds member roles such as `admin`, `treasury`, `credit`).
 *
 * Other contracts check permissions here with nested view calls (`member`, `requireOrgRole`).
 * After genesis it changes only through the approvals contract: every method refuses any other
 * sender, so membership changes are proposals approved under a policy (see contracts/approvals.ts).
 */
import type { Context, Methods, ViewContext, Views } from './api.ts';

/** Organisation roles (the genesis file's list). */
const ORG_ROLES = ['core-enterprise', 'supplier', 'bank', 'warehouse', 'exchange', 'regulator', 'gateway'];
/** Bounds: organisations in the consortium, members per organisation, roles per member. */
const MAX_ORGS = 256;
const MAX_MEMBERS_PER_ORG = 256;
const MAX_MEMBER_ROLES = 8;

interface Org {
  id: string;
  name: string;
  roles: string[];
  members: number;
}
interface Member {
  address: string;
  org: string;
  roles: string[];
}

function isNameChar(c: string): boolean {
  return (
    (c >= 'a' && c <= 'z') ||
    (c >= 'A' && c <= 'Z') ||
    (c >= '0' && c <= '9') ||
    c === '-' ||
    c === '_' ||
    c === '.'
  );
}

function checkName(ctx: ViewContext, v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > 64)
    ctx.revert('BAD_ARGS', `${what} must be a name of 1..64 characters`);
  for (const c of v)
    if (!isNameChar(c))
      ctx.revert('BAD_ARGS', `${what} "${v}" may hold only letters, digits, '-', '_' and '.'`);
  return v;
}

function checkAddress(ctx: ViewContext, v: unknown, what = 'address'): string {
  if (typeof v !== 'string' || v.length !== 42 || !v.startsWith('0x'))
    ctx.revert('BAD_ARGS', `${what} must be a 0x-hex address of 20 bytes`);
  for (const c of v.slice(2))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      ctx.revert('BAD_ARGS', `${what} must be lowercase hex`);
  return v;
}

function checkOrgRoles(ctx: ViewContext, v: unknown): string[] {
  if (!Array.isArray(v) || v.length < 1 || v.length > ORG_ROLES.length)
    ctx.revert('BAD_ARGS', 'roles must be a non-empty list of organisation roles');
  const out: string[] = [];
  for (const r of v) {
    if (typeof r !== 'string' || !ORG_ROLES.includes(r))
      ctx.revert(
        'BAD_ARGS',
        `unknown organisation role "${String(r)}"; expected one of ${ORG_ROLES.join(', ')}`,
      );
    if (out.includes(r)) ctx.revert('BAD_ARGS', `role ${r} listed twice`);
    out.push(r);
  }
  return ORG_ROLES.filter((r) => out.includes(r));
}

function checkMemberRoles(ctx: ViewContext, v: unknown): string[] {
  if (!Array.isArray(v) || v.length > MAX_MEMBER_ROLES)
    ctx.revert('BAD_ARGS', `member roles must be a list of at most ${MAX_MEMBER_ROLES} names`);
  const out: string[] = [];
  for (const r of v) {
    const name = checkName(ctx, r, 'member role');
    if (out.includes(name)) ctx.revert('BAD_ARGS', `member role ${name} listed twice`);
    out.push(name);
  }
  return out.sort();
}

function getOrg(ctx: ViewContext, id: string): Org | undefined {
  return ctx.state.get(`org:${id}`) as Org | undefined;
}
function getMember(ctx: ViewContext, address: string): Member | undefined {
  return ctx.state.get(`m:${address}`) as Member | undefined;
}

function onlyApprovals(ctx: Context): void {
  if (ctx.sender !== ctx.state.get('approvals'))
    ctx.revert(
      'NOT_AUTHORIZED',
      'membership changes only through an approved proposal of the approvals contract',
    );
}

function addOrg(ctx: Context, a: { id?: unknown; name?: unknown; roles?: unknown }): void {
  const id = checkName(ctx, a.id, 'organisation id');
  if (typeof a.name !== 'string' || a.name.length < 1 || a.name.length > 128)
    ctx.revert('BAD_ARGS', 'organisation name must be 1..128 characters');
  const roles = checkOrgRoles(ctx, a.roles);
  if (getOrg(ctx, id) !== undefined) ctx.revert('ORG_EXISTS', `organisation ${id} exists`);
  const count = Number(ctx.state.get('orgCount') ?? 0);
  if (count >= MAX_ORGS) ctx.revert('LIMIT', `at most ${MAX_ORGS} organisations`);
  const org: Org = { id, name: a.name, roles, members: 0 };
  ctx.state.set(`org:${id}`, org as never);
  ctx.state.set('orgCount', count + 1);
  ctx.emit('OrganisationAdded', { id, name: a.name, roles, organisation: org as never });
}

function addMember(ctx: Context, a: { address?: unknown; org?: unknown; roles?: unknown }): void {
  const address = checkAddress(ctx, a.address);
  const orgId = checkName(ctx, a.org, 'org');
  const roles = checkMemberRoles(ctx, a.roles ?? []);
  const org = getOrg(ctx, orgId);
  if (org === undefined) ctx.revert('NO_ORG', `no organisation ${orgId}`);
  if (getMember(ctx, address) !== undefined) ctx.revert('MEMBER_EXISTS', `${address} is already a member`);
  if (org.members >= MAX_MEMBERS_PER_ORG)
    ctx.revert('LIMIT', `at most ${MAX_MEMBERS_PER_ORG} members per organisation`);
  const m: Member = { address, org: orgId, roles };
  const updated: Org = { ...org, members: org.members + 1 };
  ctx.state.set(`m:${address}`, m as never);
  ctx.state.set(`mo:${orgId}:${address}`, true);
  ctx.state.set(`org:${orgId}`, updated as never);
  ctx.emit('MemberAdded', { address, org: orgId, roles, member: m as never, organisation: updated as never });
}

/**
 * Genesis: `{ approvals?: string, organisations: [{ id, name, roles }], members: [{ address, org,
 * roles }] }`. `approvals` names the only contract allowed to change membership afterwards.
 */
export function init(
  ctx: Context,
  args: { approvals?: string; organisations?: unknown[]; members?: unknown[] } | null,
) {
  ctx.state.set('approvals', checkName(ctx, args?.approvals ?? 'approvals', 'approvals'));
  const orgs = args?.organisations ?? [];
  const members = args?.members ?? [];
  if (!Array.isArray(orgs) || !Array.isArray(members))
    ctx.revert('BAD_ARGS', 'organisations and members must be lists');
  for (const o of orgs) addOrg(ctx, o as never);
  for (const m of members) addMember(ctx, m as never);
}

export const methods = {
  /** Adds an organisation. Caller: approvals (governance). */
  addOrganisation(ctx: Context, args: { id: string; name: string; roles: string[] }) {
    onlyApprovals(ctx);
    addOrg(ctx, args);
  },
  /** Replaces an organisation's roles. Caller: approvals (governance). */
  setOrganisationRoles(ctx: Context, args: { id: string; roles: string[] }) {
    onlyApprovals(ctx);
    const org = getOrg(ctx, checkName(ctx, args.id, 'organisation id'));
    if (org === undefined) ctx.revert('NO_ORG', `no organisation ${args.id}`);
    const roles = checkOrgRoles(ctx, args.roles);
    const updated: Org = { ...org, roles };
    ctx.state.set(`org:${org.id}`, updated as never);
    ctx.emit('OrganisationRolesChanged', { id: org.id, roles, organisation: updated as never });
  },
  /** Adds a member to an organisation. Caller: approvals (governance or the organisation's admins). */
  addMember(ctx: Context, args: { address: string; org: string; roles: string[] }) {
    onlyApprovals(ctx);
    addMember(ctx, args);
  },
  /** Replaces a member's roles. Caller: approvals. */
  setMemberRoles(ctx: Context, args: { address: string; org: string; roles: string[] }) {
    onlyApprovals(ctx);
    const m = getMember(ctx, checkAddress(ctx, args.address));
    if (m === undefined) ctx.revert('NO_MEMBER', `${args.address} is not a member`);
    if (m.org !== args.org)
      ctx.revert('WRONG_ORG', `${args.address} belongs to ${m.org}, not ${String(args.org)}`);
    const roles = checkMemberRoles(ctx, args.roles);
    const updated: Member = { ...m, roles };
    ctx.state.set(`m:${m.address}`, updated as never);
    ctx.emit('MemberRolesChanged', { address: m.address, org: m.org, roles, member: updated as never });
  },
  /** Removes a member. Caller: approvals. */
  removeMember(ctx: Context, args: { address: string; org: string }) {
    onlyApprovals(ctx);
    const m = getMember(ctx, checkAddress(ctx, args.address));
    if (m === undefined) ctx.revert('NO_MEMBER', `${args.address} is not a member`);
    if (m.org !== args.org)
      ctx.revert('WRONG_ORG', `${args.address} belongs to ${m.org}, not ${String(args.org)}`);
    const org = getOrg(ctx, m.org)!;
    const updated: Org = { ...org, members: org.members - 1 };
    ctx.state.delete(`m:${m.address}`);
    ctx.state.delete(`mo:${m.org}:${m.address}`);
    ctx.state.set(`org:${org.id}`, updated as never);
    ctx.emit('MemberRemoved', { address: m.address, org: m.org, organisation: updated as never });
  },
} satisfies Methods;

export const views = {
  /** An organisation `{ id, name, roles, members }` or null. */
  organisation: (ctx: ViewContext, args: { id: string }) => (getOrg(ctx, String(args.id)) ?? null) as never,
  /** All organisations (at most 256). */
  organisations: (ctx: ViewContext) => ctx.state.range('org:', MAX_ORGS).map(([, v]) => v),
  /**
   * A member `{ address, org, roles, orgRoles }` or null: what other contracts read to decide
   * permissions in one nested call.
   */
  member(ctx: ViewContext, args: { address: string }) {
    const m = getMember(ctx, String(args?.address));
    if (m === undefined) return null;
    const org = getOrg(ctx, m.org);
    return { address: m.address, org: m.org, roles: m.roles, orgRoles: org?.roles ?? [] };
  },
  /** Members of one organisation (at most 256, the per-organisation bound). */
  members(ctx: ViewContext, args: { org: string }) {
    const prefix = `mo:${String(args?.org)}:`;
    return ctx.state
      .range(prefix, MAX_MEMBERS_PER_ORG)
      .map(([k]) => getMember(ctx, k.slice(prefix.length)) ?? null) as never;
  },
  /** True when `address` is a member of an organisation holding `role` (an organisation role). */
  hasOrgRole(ctx: ViewContext, args: { address: string; role: string }) {
    const m = getMember(ctx, String(args.address));
    return m !== undefined && (getOrg(ctx, m.org)?.roles ?? []).includes(args.role);
  },
  /** The organisation of a member, or null. */
  orgOf: (ctx: ViewContext, args: { address: string }) => getMember(ctx, String(args.address))?.org ?? null,
} satisfies Views;
