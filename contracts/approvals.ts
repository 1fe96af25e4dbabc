/**
 * Approvals: the one multi-level signature engine, for governance and for business steps.
 *
 * A policy is a threshold tree over members, organisations and roles:
 * - `{ kind: 'signer', address }`: that member approved;
 * - `{ kind: 'members', org?, orgRole?, role?, min, perOrg? }`: at least `min` distinct approvers
 *   who are members of `org` (or of any organisation holding `orgRole`) and hold member role
 *   `role` (with `perOrg`, at least `min` distinct organisations among them);
 * - `{ kind: 'threshold', min, of: [nodes] }`: at least `min` children hold (AND = all, OR = 1).
 * Policies are versioned; a proposal pins the version it was created under, so changing a policy
 * never changes what an open proposal needs.
 *
 * Two implicit policies need no setup: `governance` (stored at genesis: admins of at least `min`
 * distinct organisations) and `admins:<org>` (any one admin of that organisation, version 0).
 *
 * A proposal names a target call. Who may propose what:
 * - a contract may propose calls to itself (business steps: receivables' confirmation and
 *   financing approval), under any existing policy it names;
 * - a member may propose, under `governance`: membership changes, this contract's own actions
 *   (`setPolicy`, `grantLifecycle`, `setParam`, `setValidators`) and any contract method whose
 *   name starts with `gov`; under `admins:<org>`: member changes inside `<org>` and `setPolicy` of
 *   policies named `<org>.<name>`.
 *
 * Approvals and rejections come from transactions or from offline signature bundles that anyone
 * may submit: each signs the UTF-8 text of `signingMessage` (view) with Ed25519. When the pinned
 * policy holds, the proposal executes by calling the target (its failure is recorded, not
 * reverted); when `rejectMin` eligible members reject, or the proposer cancels, or the expiry
 * time passes (a scheduled callback), or the approved call fails, the target's `onReject` method
 * is told.
 */
import type { Bytes, Context, Methods, Value, ViewContext, Views } from './api.ts';

const MAX_TREE_NODES = 32;
const MAX_TREE_DEPTH = 4;
/** Approvers and rejecters per proposal (bounds evaluation cost). */
const MAX_VOTERS = 64;
/** Signatures in one bundle. */
const MAX_BUNDLE = 32;
const DEFAULT_EXPIRY_MS = 7 * 24 * 3600 * 1000;
const MAX_EXPIRY_MS = 90 * 24 * 3600 * 1000;
/** Validator-set changes take effect this many blocks after approval. */
const VALIDATOR_DELAY_BLOCKS = 2;
const LIFECYCLE_KINDS = ['deploy', 'upgrade', 'freeze', 'unfreeze'];
const OWN_ACTIONS = ['setPolicy', 'grantLifecycle', 'setParam', 'setValidators'];
const MEMBER_METHODS = ['addMember', 'setMemberRoles', 'removeMember'];
const ORG_METHODS = ['addOrganisation', 'setOrganisationRoles'];

interface MemberInfo {
  address: string;
  org: string;
  roles: string[];
  orgRoles: string[];
}
type Tree =
  | { kind: 'signer'; address: string }
  | { kind: 'members'; org?: string; orgRole?: string; role?: string; min: number; perOrg?: boolean }
  | { kind: 'threshold'; min: number; of: Tree[] };
interface Policy {
  id: string;
  version: number;
  tree: Tree;
  rejectMin: number;
}
interface Proposal {
  id: string;
  policyId: string;
  policyVersion: number;
  proposer: string;
  target: string;
  method: string;
  args: Value;
  onReject: string | null;
  status: string;
  approvals: string[];
  rejections: string[];
  createdAt: number;
  expiresAt: number;
  digest: string;
  result: string;
}

// ---------------------------------------------------------------------------------------------
// Validation helpers (contracts cannot import runtime code, so each carries its own).

function isNameChar(c: string): boolean {
  return (
    (c >= 'a' && c <= 'z') ||
    (c >= 'A' && c <= 'Z') ||
    (c >= '0' && c <= '9') ||
    c === '-' ||
    c === '_' ||
    c === '.' ||
    c === ':'
  );
}
function checkName(ctx: ViewContext, v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > 64)
    ctx.revert('BAD_ARGS', `${what} must be a name of 1..64 characters`);
  for (const c of v)
    if (!isNameChar(c))
      ctx.revert('BAD_ARGS', `${what} "${v}" holds a character other than letters, digits, - _ . :`);
  return v;
}
function isHex(s: string): boolean {
  for (const c of s) if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}
function checkAddress(ctx: ViewContext, v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length !== 42 || !v.startsWith('0x') || !isHex(v.slice(2)))
    ctx.revert('BAD_ARGS', `${what} must be a lowercase 0x-hex address of 20 bytes`);
  return v;
}
const HEX = '0123456789abcdef';
function toHex(b: Bytes): string {
  let s = '';
  for (const x of b) s += HEX[x >> 4]! + HEX[x & 15]!;
  return s;
}
function bytesArg(ctx: ViewContext, v: unknown, len: number, what: string): Bytes {
  if (v instanceof Uint8Array) {
    if (v.length !== len) ctx.revert('BAD_ARGS', `${what} must be ${len} bytes`);
    return v;
  }
  if (typeof v !== 'string') ctx.revert('BAD_ARGS', `${what} must be bytes or a hex string`);
  const h = v.startsWith('0x') ? v.slice(2) : v;
  if (h.length !== len * 2 || !isHex(h))
    ctx.revert('BAD_ARGS', `${what} must be ${len} bytes of lowercase hex`);
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = HEX.indexOf(h[2 * i]!) * 16 + HEX.indexOf(h[2 * i + 1]!);
  return out;
}
function isAddress(s: string): boolean {
  return s.startsWith('0x');
}

/** A deterministic text form of a value (sorted keys), hashed into a proposal's digest. */
function canonical(v: Value): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number' || typeof v === 'bigint') return `${String(v)}n`;
  if (typeof v === 'string') return `s${v.length}:${v}`;
  if (v instanceof Uint8Array) return `b${toHex(v)}`;
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `s${k.length}:${k}=${canonical(v[k]!)}`).join(',')}}`;
}

function checkTree(ctx: ViewContext, t: unknown, depth: number, count: { n: number }): Tree {
  if (depth > MAX_TREE_DEPTH) ctx.revert('BAD_POLICY', `policy trees nest at most ${MAX_TREE_DEPTH} deep`);
  if (++count.n > MAX_TREE_NODES)
    ctx.revert('BAD_POLICY', `policy trees have at most ${MAX_TREE_NODES} nodes`);
  if (t === null || typeof t !== 'object' || Array.isArray(t))
    ctx.revert('BAD_POLICY', 'a policy node must be an object');
  const n = t as Record<string, unknown>;
  const min = n['min'];
  if (n['kind'] === 'signer')
    return { kind: 'signer', address: checkAddress(ctx, n['address'], 'signer address') };
  if (typeof min !== 'number' || !Number.isSafeInteger(min) || min < 1 || min > MAX_VOTERS)
    ctx.revert('BAD_POLICY', `min must be an integer 1..${MAX_VOTERS}`);
  if (n['kind'] === 'members') {
    const out: Tree = { kind: 'members', min };
    if (n['org'] !== undefined && n['org'] !== null) out.org = checkName(ctx, n['org'], 'org');
    if (n['orgRole'] !== undefined && n['orgRole'] !== null)
      out.orgRole = checkName(ctx, n['orgRole'], 'orgRole');
    if (n['role'] !== undefined && n['role'] !== null) out.role = checkName(ctx, n['role'], 'role');
    if (out.org === undefined && out.orgRole === undefined && out.role === undefined)
      ctx.revert('BAD_POLICY', 'a members node names an org, an orgRole or a role');
    if (n['perOrg'] !== undefined && n['perOrg'] !== null) {
      if (typeof n['perOrg'] !== 'boolean') ctx.revert('BAD_POLICY', 'perOrg must be a boolean');
      if (n['perOrg']) out.perOrg = true;
    }
    return out;
  }
  if (n['kind'] === 'threshold') {
    const of = n['of'];
    if (!Array.isArray(of) || of.length < 1)
      ctx.revert('BAD_POLICY', 'a threshold node has children in `of`');
    if (min > of.length) ctx.revert('BAD_POLICY', `min ${min} exceeds the ${of.length} children`);
    return { kind: 'threshold', min, of: of.map((c) => checkTree(ctx, c, depth + 1, count)) };
  }
  return ctx.revert(
    'BAD_POLICY',
    `unknown policy node kind ${String(n['kind'])}; expected signer, members or threshold`,
  );
}

function checkPolicy(
  ctx: ViewContext,
  a: { id?: unknown; tree?: unknown; rejectMin?: unknown },
): { id: string; tree: Tree; rejectMin: number } {
  const id = checkName(ctx, a.id, 'policy id');
  if (id.startsWith('admins:'))
    ctx.revert('BAD_POLICY', 'admins:<org> policies are implicit and cannot be set');
  const tree = checkTree(ctx, a.tree, 1, { n: 0 });
  const rejectMin = a.rejectMin ?? 1;
  if (
    typeof rejectMin !== 'number' ||
    !Number.isSafeInteger(rejectMin) ||
    rejectMin < 1 ||
    rejectMin > MAX_VOTERS
  )
    ctx.revert('BAD_POLICY', `rejectMin must be an integer 1..${MAX_VOTERS}`);
  return { id, tree, rejectMin };
}

// ---------------------------------------------------------------------------------------------

function cfg(ctx: ViewContext): { membership: string } {
  return ctx.state.get('cfg') as { membership: string };
}

function memberInfo(ctx: ViewContext, address: string): MemberInfo | null {
  return ctx.call(cfg(ctx).membership, 'member', { address }) as MemberInfo | null;
}

/** The policy version a proposal pins (implicit `admins:<org>` is version 0). */
function policyAt(ctx: ViewContext, id: string, version?: number): Policy | undefined {
  if (id.startsWith('admins:')) {
    return {
      id,
      version: 0,
      tree: { kind: 'members', org: id.slice(7), role: 'admin', min: 1 },
      rejectMin: 1,
    };
  }
  if (version === undefined) return ctx.state.get(`pol:${id}`) as Policy | undefined;
  return ctx.state.get(`polv:${id}:${version}`) as Policy | undefined;
}

function matchesLeaf(t: Tree & { kind: 'members' }, m: MemberInfo): boolean {
  return (
    (t.org === undefined || m.org === t.org) &&
    (t.orgRole === undefined || m.orgRoles.includes(t.orgRole)) &&
    (t.role === undefined || m.roles.includes(t.role))
  );
}

function holds(t: Tree, voters: MemberInfo[]): boolean {
  if (t.kind === 'signer') return voters.some((v) => v.address === t.address);
  if (t.kind === 'members') {
    const matching = voters.filter((v) => matchesLeaf(t, v));
    // perOrg counts organisations, not people: M-of-N organisations whatever their admin counts.
    const count = t.perOrg === true ? new Set(matching.map((v) => v.org)).size : matching.length;
    return count >= t.min;
  }
  return t.of.filter((c) => holds(c, voters)).length >= t.min;
}

function eligible(t: Tree, m: MemberInfo): boolean {
  if (t.kind === 'signer') return t.address === m.address;
  if (t.kind === 'members') return matchesLeaf(t, m);
  return t.of.some((c) => eligible(c, m));
}

function save(ctx: Context, p: Proposal): void {
  ctx.state.set(`p:${p.id}`, p as never);
}

function load(ctx: ViewContext, id: unknown): Proposal {
  if (typeof id !== 'string' || id.length > 80) ctx.revert('BAD_ARGS', 'proposal id must be a string');
  const p = ctx.state.get(`p:${id}`) as Proposal | undefined;
  if (p === undefined) ctx.revert('NO_PROPOSAL', `no proposal ${id}`);
  return p;
}

function event(ctx: Context, name: string, p: Proposal, extra: Record<string, Value> = {}): void {
  ctx.emit(name, {
    id: p.id,
    policyId: p.policyId,
    policyVersion: p.policyVersion,
    target: p.target,
    method: p.method,
    status: p.status,
    ...extra,
    proposal: p as never,
  });
}

/** Applies one of this contract's own governance actions (validated when proposed). */
function applyOwn(ctx: Context, p: Proposal): void {
  const a = p.args as Record<string, Value>;
  if (p.method === 'setPolicy') {
    const { id, tree, rejectMin } = checkPolicy(ctx, a);
    const prev = policyAt(ctx, id);
    const pol: Policy = { id, version: (prev?.version ?? 0) + 1, tree, rejectMin };
    ctx.state.set(`pol:${id}`, pol as never);
    ctx.state.set(`polv:${id}:${pol.version}`, pol as never);
    ctx.emit('PolicySet', { id, version: pol.version, proposalId: p.id, policy: pol as never });
  } else if (p.method === 'grantLifecycle') {
    const grant = {
      kind: a['kind']!,
      contract: a['contract']!,
      sender: a['sender'] ?? null,
      fromVersion: a['fromVersion'] ?? null,
      proposalId: p.id,
      height: ctx.height,
    };
    ctx.state.set(`grant:${a['kind'] as string}:${a['contract'] as string}`, grant);
    ctx.emit('LifecycleGranted', grant);
  } else if (p.method === 'setParam') {
    ctx.state.set(`param:${a['key'] as string}`, a['value'] ?? null);
    ctx.emit('ParamSet', { key: a['key']!, value: a['value'] ?? null, proposalId: p.id });
  } else {
    const change = {
      validators: a['validators']!,
      effectiveHeight: ctx.height + VALIDATOR_DELAY_BLOCKS,
      proposalId: p.id,
    };
    ctx.state.set('validators:pending', change);
    ctx.emit('ValidatorSetChanged', change);
  }
}

/** Checks what a member may propose at top level (see the module comment). */
function checkTopLevel(ctx: Context, policyId: string, target: string, method: string, args: Value): void {
  const a = (args ?? {}) as Record<string, Value>;
  if (args === null || typeof args !== 'object' || Array.isArray(args) || args instanceof Uint8Array)
    ctx.revert('BAD_ARGS', 'proposal args must be an object');
  const membership = cfg(ctx).membership;
  if (target === ctx.contract) {
    if (!OWN_ACTIONS.includes(method))
      ctx.revert(
        'BAD_TARGET',
        `approvals has no governance action ${method}; expected one of ${OWN_ACTIONS.join(', ')}`,
      );
    if (method === 'setPolicy') {
      const { id } = checkPolicy(ctx, a);
      const owner = id.indexOf('.') > 0 ? id.slice(0, id.indexOf('.')) : null;
      if (policyId !== 'governance' && !(owner !== null && policyId === `admins:${owner}`))
        ctx.revert(
          'WRONG_POLICY',
          `setPolicy ${id} needs the governance policy${owner === null ? '' : ` or admins:${owner}`}`,
        );
      return;
    }
    if (policyId !== 'governance') ctx.revert('WRONG_POLICY', `${method} needs the governance policy`);
    if (method === 'grantLifecycle') {
      if (!LIFECYCLE_KINDS.includes(a['kind'] as string))
        ctx.revert('BAD_ARGS', `kind must be one of ${LIFECYCLE_KINDS.join(', ')}`);
      checkName(ctx, a['contract'], 'contract');
      if (a['sender'] !== undefined && a['sender'] !== null) checkAddress(ctx, a['sender'], 'sender');
      if (
        a['fromVersion'] !== undefined &&
        a['fromVersion'] !== null &&
        (typeof a['fromVersion'] !== 'number' || !Number.isSafeInteger(a['fromVersion']))
      )
        ctx.revert('BAD_ARGS', 'fromVersion must be an integer');
    } else if (method === 'setParam') {
      checkName(ctx, a['key'], 'param key');
    } else {
      const vs = a['validators'];
      if (!Array.isArray(vs) || vs.length < 1 || vs.length > 100)
        ctx.revert('BAD_ARGS', 'validators must be a list of 1..100 entries');
      for (const v of vs) {
        const o = v as Record<string, Value>;
        if (o === null || typeof o !== 'object')
          ctx.revert('BAD_ARGS', 'each validator is { name, organisation, publicKey }');
        checkName(ctx, o['name'], 'validator name');
        checkName(ctx, o['organisation'], 'validator organisation');
        bytesArg(ctx, o['publicKey'], 32, 'validator publicKey');
      }
    }
    return;
  }
  if (target === membership) {
    if (ORG_METHODS.includes(method)) {
      if (policyId !== 'governance') ctx.revert('WRONG_POLICY', `${method} needs the governance policy`);
      return;
    }
    if (MEMBER_METHODS.includes(method)) {
      if (policyId !== 'governance' && policyId !== `admins:${a['org'] as string}`)
        ctx.revert(
          'WRONG_POLICY',
          `${method} in ${a['org'] as string} needs governance or admins:${a['org'] as string}`,
        );
      return;
    }
    ctx.revert('BAD_TARGET', `membership has no method ${method}`);
  }
  if (!method.startsWith('gov'))
    ctx.revert('BAD_TARGET', `members may propose only governance calls (methods named gov*) to ${target}`);
  if (policyId !== 'governance')
    ctx.revert('WRONG_POLICY', `${target}.${method} needs the governance policy`);
}

function finish(ctx: Context, p: Proposal, status: string, reason: string): void {
  p.status = status;
  save(ctx, p);
  event(
    ctx,
    status === 'REJECTED'
      ? 'ProposalRejected'
      : status === 'EXPIRED'
        ? 'ProposalExpired'
        : 'ProposalCancelled',
    p,
    { reason },
  );
  tellRejected(ctx, p, reason);
}

/** Tells the proposer's `onReject` (if named) that the call will not happen; its failure is recorded. */
function tellRejected(ctx: Context, p: Proposal, reason: string): void {
  if (p.onReject === null) return;
  try {
    ctx.call(p.target, p.onReject, { proposalId: p.id, reason, args: p.args });
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'UNKNOWN';
    p.result = `onReject failed: ${code}`;
    save(ctx, p);
    event(ctx, 'ProposalCallbackFailed', p, { code });
  }
}

function execute(ctx: Context, p: Proposal): void {
  p.status = 'APPROVED';
  save(ctx, p);
  event(ctx, 'ProposalApproved', p, { approvals: p.approvals });
  if (p.target === ctx.contract) {
    applyOwn(ctx, p);
    p.status = 'EXECUTED';
  } else {
    try {
      ctx.call(p.target, p.method, p.args);
      p.status = 'EXECUTED';
    } catch (err) {
      p.status = 'FAILED';
      p.result = (err as { code?: string }).code ?? 'UNKNOWN';
    }
  }
  save(ctx, p);
  event(ctx, p.status === 'EXECUTED' ? 'ProposalExecuted' : 'ProposalFailed', p, { result: p.result });
  // A call the target refused will not happen: the proposer learns it as it learns a rejection.
  if (p.status === 'FAILED') tellRejected(ctx, p, `failed: ${p.result}`);
}

/** Records one vote; executes or rejects when the pinned policy decides. */
function vote(ctx: Context, p: Proposal, voter: string, decision: string): void {
  if (p.status !== 'PENDING') ctx.revert('NOT_PENDING', `proposal ${p.id} is ${p.status}`);
  if (ctx.time >= p.expiresAt) ctx.revert('EXPIRED', `proposal ${p.id} expired at ${p.expiresAt}`);
  if (p.approvals.includes(voter) || p.rejections.includes(voter))
    ctx.revert('ALREADY_VOTED', `${voter} already voted on ${p.id}`);
  if (p.approvals.length + p.rejections.length >= MAX_VOTERS)
    ctx.revert('LIMIT', `at most ${MAX_VOTERS} votes per proposal`);
  const pol = policyAt(ctx, p.policyId, p.policyVersion);
  if (pol === undefined) ctx.revert('NO_POLICY', `policy ${p.policyId} v${p.policyVersion} is missing`);
  const me = memberInfo(ctx, voter);
  if (me === null || !eligible(pol.tree, me))
    ctx.revert('NOT_ELIGIBLE', `${voter} is not named by policy ${p.policyId} v${p.policyVersion}`);
  if (decision === 'approve') {
    p.approvals.push(voter);
    save(ctx, p);
    event(ctx, 'ProposalApprovedBy', p, { voter });
    const voters: MemberInfo[] = [];
    for (const a of p.approvals) {
      const m = memberInfo(ctx, a);
      // A voter removed from membership since voting no longer counts.
      if (m !== null && eligible(pol.tree, m)) voters.push(m);
    }
    if (holds(pol.tree, voters)) execute(ctx, p);
  } else if (decision === 'reject') {
    p.rejections.push(voter);
    save(ctx, p);
    event(ctx, 'ProposalRejectedBy', p, { voter });
    if (p.rejections.length >= pol.rejectMin) finish(ctx, p, 'REJECTED', 'rejected');
  } else ctx.revert('BAD_ARGS', 'decision must be approve or reject');
}

function message(ctx: ViewContext, p: Proposal, decision: string): string {
  return `trellis.approvals.v1\n${ctx.contract}\n${p.id}\n${decision}\n${p.digest}`;
}

/**
 * Genesis: `{ membership?: string, governance: { tree, rejectMin? }, policies?: [{ id, tree,
 * rejectMin? }] }`.
 */
export function init(
  ctx: Context,
  args: { membership?: string; governance?: unknown; policies?: unknown[] } | null,
) {
  ctx.state.set('cfg', { membership: checkName(ctx, args?.membership ?? 'membership', 'membership') });
  const all = [{ ...(args?.governance as object), id: 'governance' }, ...(args?.policies ?? [])];
  if (args?.governance === undefined) ctx.revert('BAD_ARGS', 'init needs a governance policy');
  for (const raw of all) {
    const { id, tree, rejectMin } = checkPolicy(ctx, raw as never);
    const pol: Policy = { id, version: 1, tree, rejectMin };
    ctx.state.set(`pol:${id}`, pol as never);
    ctx.state.set(`polv:${id}:1`, pol as never);
    ctx.emit('PolicySet', { id, version: 1, proposalId: null, policy: pol as never });
  }
}

export const methods = {
  /**
   * Opens a proposal: `{ policy, target, method, args, onReject?, expiresInMs? }`; returns its id.
   * Caller: a member (governance and membership calls, see the module comment) or a contract
   * proposing a call to itself.
   */
  propose(
    ctx: Context,
    args: {
      policy: string;
      target: string;
      method: string;
      args?: Value;
      onReject?: string;
      expiresInMs?: number;
    },
  ) {
    const policyId = checkName(ctx, args.policy, 'policy');
    const target = checkName(ctx, args.target, 'target');
    const method = checkName(ctx, args.method, 'method');
    const onReject =
      args.onReject === undefined || args.onReject === null
        ? null
        : checkName(ctx, args.onReject, 'onReject');
    const expiresIn = args.expiresInMs ?? DEFAULT_EXPIRY_MS;
    if (
      typeof expiresIn !== 'number' ||
      !Number.isSafeInteger(expiresIn) ||
      expiresIn < 1 ||
      expiresIn > MAX_EXPIRY_MS
    )
      ctx.revert('BAD_ARGS', `expiresInMs must be 1..${MAX_EXPIRY_MS}`);
    const pol = policyAt(ctx, policyId);
    if (pol === undefined) ctx.revert('NO_POLICY', `no policy ${policyId}`);
    const callArgs = args.args ?? {};
    if (isAddress(ctx.sender)) {
      if (memberInfo(ctx, ctx.sender) === null) ctx.revert('NOT_MEMBER', `${ctx.sender} is not a member`);
      if (onReject !== null) ctx.revert('BAD_ARGS', 'only a contract proposing to itself names onReject');
      checkTopLevel(ctx, policyId, target, method, callArgs);
    } else if (target !== ctx.sender) {
      ctx.revert('BAD_TARGET', `contract ${ctx.sender} may propose calls only to itself, not to ${target}`);
    }
    const seq = Number(ctx.state.get('seq') ?? 0) + 1;
    ctx.state.set('seq', seq);
    const id = `P${seq}`;
    const digest = toHex(
      ctx.sha256(canonical([ctx.txHash, id, policyId, pol.version, target, method, callArgs, onReject])),
    );
    const p: Proposal = {
      id,
      policyId,
      policyVersion: pol.version,
      proposer: ctx.sender,
      target,
      method,
      args: callArgs,
      onReject,
      status: 'PENDING',
      approvals: [],
      rejections: [],
      createdAt: ctx.time,
      expiresAt: ctx.time + expiresIn,
      digest,
      result: '',
    };
    save(ctx, p);
    ctx.schedule(p.expiresAt, 'expire', { id });
    event(ctx, 'ProposalCreated', p, { proposer: ctx.sender, expiresAt: p.expiresAt });
    return id;
  },
  /** Approves as the sender. Caller: a member the pinned policy names. */
  approve(ctx: Context, args: { id: string }) {
    vote(ctx, load(ctx, args?.id), ctx.sender, 'approve');
    return load(ctx, args.id).status;
  },
  /** Rejects as the sender. Caller: a member the pinned policy names. */
  reject(ctx: Context, args: { id: string }) {
    vote(ctx, load(ctx, args?.id), ctx.sender, 'reject');
    return load(ctx, args.id).status;
  },
  /**
   * Offline signature bundle: `{ id, signatures: [{ publicKey, signature, decision }] }`, each an
   * Ed25519 signature over `signingMessage({ id, decision })`. Caller: anyone (a relayer).
   */
  submitSignatures(
    ctx: Context,
    args: { id: string; signatures: Array<{ publicKey: unknown; signature: unknown; decision: string }> },
  ) {
    const sigs = args?.signatures;
    if (!Array.isArray(sigs) || sigs.length < 1 || sigs.length > MAX_BUNDLE)
      ctx.revert('BAD_ARGS', `signatures must be a list of 1..${MAX_BUNDLE}`);
    for (const s of sigs) {
      const p = load(ctx, args.id);
      if (s === null || typeof s !== 'object')
        ctx.revert('BAD_ARGS', 'each signature is { publicKey, signature, decision }');
      const pk = bytesArg(ctx, s.publicKey, 32, 'publicKey');
      const sig = bytesArg(ctx, s.signature, 64, 'signature');
      if (s.decision !== 'approve' && s.decision !== 'reject')
        ctx.revert('BAD_ARGS', 'decision must be approve or reject');
      if (!ctx.verifyEd25519(sig, message(ctx, p, s.decision), pk))
        ctx.revert('BAD_SIGNATURE', `signature by ${toHex(pk)} does not verify`);
      const voter = `0x${toHex(ctx.sha256(pk).slice(0, 20))}`;
      if (p.status !== 'PENDING') break; // decided by an earlier signature of this bundle
      vote(ctx, p, voter, s.decision);
    }
    return load(ctx, args.id).status;
  },
  /** Withdraws a pending proposal. Caller: its proposer. */
  cancel(ctx: Context, args: { id: string }) {
    const p = load(ctx, args?.id);
    if (p.proposer !== ctx.sender)
      ctx.revert('NOT_AUTHORIZED', `only the proposer ${p.proposer} may cancel ${p.id}`);
    if (p.status !== 'PENDING') ctx.revert('NOT_PENDING', `proposal ${p.id} is ${p.status}`);
    finish(ctx, p, 'CANCELLED', 'cancelled');
  },
  /** Scheduled at creation: a still-pending proposal expires. Caller: the scheduler only. */
  expire(ctx: Context, args: { id: string }) {
    if (!ctx.scheduled || ctx.sender !== ctx.contract)
      ctx.revert('NOT_AUTHORIZED', 'expire runs only as a scheduled callback');
    const p = load(ctx, args.id);
    if (p.status === 'PENDING') finish(ctx, p, 'EXPIRED', 'expired');
  },
} satisfies Methods;

export const views = {
  /** A proposal, or null. */
  proposal: (ctx: ViewContext, args: { id: string }) => ctx.state.get(`p:${String(args?.id)}`) ?? null,
  /** A policy's current version (or `version` when given), or null. */
  policy: (ctx: ViewContext, args: { id: string; version?: number }) =>
    (policyAt(ctx, String(args?.id), args.version) ?? null) as never,
  /** True when a policy exists (implicit admins:<org> always does). */
  hasPolicy: (ctx: ViewContext, args: { id: string }) => policyAt(ctx, String(args?.id)) !== undefined,
  /** The UTF-8 text an offline signer signs with Ed25519 to approve or reject. */
  signingMessage(ctx: ViewContext, args: { id: string; decision: string }) {
    if (args.decision !== 'approve' && args.decision !== 'reject')
      ctx.revert('BAD_ARGS', 'decision must be approve or reject');
    return message(ctx, load(ctx, args.id), args.decision);
  },
  /** A governance parameter, or null. */
  param: (ctx: ViewContext, args: { key: string }) => ctx.state.get(`param:${String(args?.key)}`) ?? null,
  /** A lifecycle grant `{ kind, contract, sender, fromVersion, proposalId, height }`, or null. */
  grant: (ctx: ViewContext, args: { kind: string; contract: string }) =>
    ctx.state.get(`grant:${String(args.kind)}:${String(args.contract)}`) ?? null,
  /** The approved validator-set change `{ validators, effectiveHeight, proposalId }`, or null. */
  pendingValidators: (ctx: ViewContext) => ctx.state.get('validators:pending') ?? null,
} satisfies Views;
