import { createKeyring } from '@caracal/core';
import { decideApproval } from '@caracal/state';
import { migrate } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SeededZone, seedZone, startTestSts, stsTestMigrations, type TestSts } from './testing.js';

const keyring = createKeyring('m'.repeat(40));
let t: TestDb;
let sts: TestSts;
let url: string;
let zone: SeededZone;

async function exchange(extra: Record<string, string> = {}) {
  const res = await fetch(`${url}/oauth/2/token`, {
    method: 'POST',
    body: new URLSearchParams({ ...zone.form, ...extra }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}
const decide = (id: string, approve: boolean) =>
  decideApproval(t.db, { keyring, now: Date.now(), actor: 'ak_reviewer' }, zone.zoneId, id, { approve });

beforeAll(async () => {
  t = await openTestDb('postgres');
  await migrate(t.db, stsTestMigrations);
  zone = await seedZone(t.db, keyring, {
    grant: { approval_tier: 'high' },
    data: { approval_tiers: { high: { requires_approval: true } } },
  });
  sts = await startTestSts(t.db, keyring);
  url = sts.url;
});

afterAll(async () => {
  await sts?.stop();
  await t?.cleanup();
});

describe('approval holds', () => {
  it('holds, waits for a decision, mints once with the approval, and never twice', async () => {
    const held = await exchange();
    expect(held.status).toBe(403);
    expect(held.body).toMatchObject({ error: 'interaction_required', reasons: ['approval_required'] });
    const id = held.body.approval_id!;
    expect(id).toMatch(/^apr_/);
    expect(await (await fetch(`${url}/approvals/${id}`)).json()).toMatchObject({ id, status: 'pending' });

    // A long poll returns as soon as the decision lands.
    const started = Date.now();
    const waiting = fetch(`${url}/approvals/${id}?wait=10`).then((r) => r.json());
    setTimeout(() => void decide(id, true), 300);
    expect(await waiting).toMatchObject({ status: 'approved' });
    expect(Date.now() - started).toBeLessThan(5000);

    const minted = await exchange({ approval_id: id });
    expect(minted.status).toBe(200);
    expect(minted.body.access_token).toBeTruthy();
    const again = await exchange({ approval_id: id });
    expect([again.status, again.body.error]).toEqual([400, 'invalid_grant']);
  });

  it('a denied approval or one for another request never mints', async () => {
    const a = (await exchange()).body.approval_id!;
    await decide(a, false);
    expect((await exchange({ approval_id: a })).body.error).toBe('invalid_grant');
    await expect(decide(a, true)).rejects.toMatchObject({ code: 'approval_not_pending' });

    const b = (await exchange()).body.approval_id!;
    await decide(b, true);
    // An unregistered resource is refused before the approval is looked at.
    const wider = await exchange({ approval_id: b, resource: 'resource://crm/other' });
    expect(wider.body.error).toBe('invalid_target');
    expect((await exchange({ approval_id: 'apr_000000000000000000000000' })).body.error).toBe(
      'invalid_grant',
    );
  });
});
