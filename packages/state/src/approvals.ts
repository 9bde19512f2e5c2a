import { CaracalError } from '@caracal/core';
import { enqueue, type Queryable } from '@caracal/store';
import { z } from 'zod';
import {
  assertZone,
  CONTROL_STREAM,
  type DbOrTx,
  decodeCursor,
  inTx,
  newId,
  OUTBOX_OWNER,
  type Page,
  type PageRequest,
  pageSize,
  parseInput,
  toPage,
  type WriteContext,
} from './internal.js';

/** A request the zone's policy held for a human decision. */
export interface Approval {
  id: string;
  zone_id: string;
  application_id: string;
  resources: string[];
  scopes: string[];
  /** Approval tiers the decision grants (the policy's `approved_tiers` on the next exchange). */
  tiers: string[];
  reasons: string[];
  /** `expired` is derived: a pending or approved approval past `expires_at`. */
  status: 'pending' | 'approved' | 'denied' | 'used' | 'expired';
  created_at: string;
  expires_at: string;
  decided_at: string | null;
  decided_by: string | null;
  note: string | null;
}

interface ApprovalRow extends Omit<Approval, 'created_at' | 'expires_at' | 'decided_at' | 'status'> {
  status: 'pending' | 'approved' | 'denied' | 'used';
  created_at: Date;
  expires_at: Date;
  decided_at: Date | null;
}

const COLUMNS =
  'id, zone_id, application_id, resources, scopes, tiers, reasons, status, created_at, expires_at, decided_at, decided_by, note';
export const DEFAULT_APPROVAL_TTL_SECONDS = 900;

export const decideApprovalInput = z.strictObject({
  approve: z.boolean(),
  note: z.string().max(1000).optional(),
});

function toApproval(r: ApprovalRow, now: number): Approval {
  const live = r.status === 'pending' || r.status === 'approved';
  return {
    ...r,
    status: live && r.expires_at.getTime() <= now ? 'expired' : r.status,
    created_at: r.created_at.toISOString(),
    expires_at: r.expires_at.toISOString(),
    decided_at: r.decided_at?.toISOString() ?? null,
  };
}

const notFound = (id: string) => new CaracalError('approval_not_found', 404, `Approval '${id}' not found.`);

/** Record a hold (STS): the exchange answered `interaction_required` with this approval's id. */
export async function requestApproval(
  q: DbOrTx,
  ctx: WriteContext,
  hold: {
    zoneId: string;
    applicationId: string;
    resources: string[];
    scopes: string[];
    tiers: string[];
    reasons: string[];
    ttlSeconds?: number;
  },
): Promise<Approval> {
  return inTx(q, async (tx) => {
    const id = newId('apr');
    const created = new Date(ctx.now);
    const expires = new Date(ctx.now + (hold.ttlSeconds ?? DEFAULT_APPROVAL_TTL_SECONDS) * 1000);
    const [row] = await tx.query<ApprovalRow>(
      `INSERT INTO state_approvals (id, zone_id, application_id, resources, scopes, tiers, reasons, status, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) RETURNING ${COLUMNS}`,
      [
        id,
        hold.zoneId,
        hold.applicationId,
        hold.resources,
        hold.scopes,
        hold.tiers,
        hold.reasons,
        created,
        expires,
      ],
    );
    await event(tx, ctx, 'approval.requested', hold.zoneId, {
      approvalId: id,
      applicationId: hold.applicationId,
    });
    return toApproval(row!, ctx.now);
  });
}

export async function getApproval(q: Queryable, id: string, now: number): Promise<Approval | null> {
  const [row] = await q.query<ApprovalRow>(`SELECT ${COLUMNS} FROM state_approvals WHERE id = $1`, [id]);
  return row ? toApproval(row, now) : null;
}

export async function listApprovals(
  q: Queryable,
  zoneId: string,
  now: number,
  page: PageRequest = {},
): Promise<Page<Approval>> {
  await assertZone(q, zoneId);
  const size = pageSize(page.limit);
  const after = decodeCursor(page.cursor, ['string']);
  const rows = await q.query<ApprovalRow>(
    `SELECT ${COLUMNS} FROM state_approvals WHERE zone_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3`,
    [zoneId, after?.[0] ?? null, size + 1],
  );
  return toPage(
    rows,
    size,
    (r) => [r.id],
    (r) => toApproval(r, now),
  );
}

/** An administrator approves or denies a pending approval; 409 when it is no longer pending. */
export async function decideApproval(
  q: DbOrTx,
  ctx: WriteContext,
  zoneId: string,
  id: string,
  input: unknown,
): Promise<Approval> {
  const d = parseInput(decideApprovalInput, input, 'approval decision');
  return inTx(q, async (tx) => {
    const [row] = await tx.query<ApprovalRow>(
      `UPDATE state_approvals SET status = $3, decided_at = $4, decided_by = $5, note = $6
        WHERE id = $1 AND zone_id = $2 AND status = 'pending' AND expires_at > $4 RETURNING ${COLUMNS}`,
      [id, zoneId, d.approve ? 'approved' : 'denied', new Date(ctx.now), ctx.actor, d.note ?? null],
    );
    if (!row) {
      const current = await getApproval(tx, id, ctx.now);
      if (!current || current.zone_id !== zoneId) throw notFound(id);
      throw new CaracalError(
        'approval_not_pending',
        409,
        `Approval '${id}' is ${current.status}, not pending.`,
      );
    }
    await event(tx, ctx, 'approval.decided', zoneId, { approvalId: id, approved: d.approve });
    return toApproval(row, ctx.now);
  });
}

/**
 * Use an approved approval once (STS, on the exchange that presents it): it must belong to the zone and
 * application, be unexpired, and cover every requested resource and scope. Returns the granted tiers.
 */
export async function consumeApproval(
  q: DbOrTx,
  ctx: WriteContext,
  use: { id: string; zoneId: string; applicationId: string; resources: string[]; scopes: string[] },
): Promise<Approval | null> {
  return inTx(q, async (tx) => {
    const [row] = await tx.query<ApprovalRow>(
      `UPDATE state_approvals SET status = 'used', used_at = $4
        WHERE id = $1 AND zone_id = $2 AND application_id = $3 AND status = 'approved' AND expires_at > $4
          AND resources @> $5::text[] AND scopes @> $6::text[]
        RETURNING ${COLUMNS}`,
      [use.id, use.zoneId, use.applicationId, new Date(ctx.now), use.resources, use.scopes],
    );
    return row ? toApproval(row, ctx.now) : null;
  });
}

async function event(
  tx: Queryable,
  ctx: WriteContext,
  type: 'approval.requested' | 'approval.decided',
  zoneId: string,
  detail: Record<string, unknown>,
) {
  // No zone version bump: an approval changes no state the STS caches.
  await enqueue(tx, {
    owner: OUTBOX_OWNER,
    stream: CONTROL_STREAM,
    payload: {
      type,
      zoneId,
      ...detail,
      zoneVersion: null,
      actor: ctx.actor,
      at: new Date(ctx.now).toISOString(),
    },
  });
}
