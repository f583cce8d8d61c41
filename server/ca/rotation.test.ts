import fc from 'fast-check';
import {
  activateAt,
  activateThreshold,
  defaultRotationInterval,
  isPublished,
  nextRotationAction,
  prepareAt,
  prepareThreshold,
  type SlotView,
} from './rotation';

const slot = (over: Partial<SlotView> & Pick<SlotView, 'id' | 'state'>): SlotView => ({ notBefore: 0, notAfter: 600, usable: true, ...over });

describe('thresholds (SPIRE defaults)', () => {
  it('prepares at half the lifetime and activates at five-sixths', () => {
    const a = { notBefore: 1000, notAfter: 1060 };
    expect(prepareThreshold(a)).toBe(30);
    expect(prepareAt(a)).toBe(1030);
    expect(activateThreshold(a)).toBe(10);
    expect(activateAt(a)).toBe(1050);
  });

  it('caps the thresholds at 30 and 7 days for long-lived keys', () => {
    const year = { notBefore: 0, notAfter: 365 * 86400 };
    expect(prepareThreshold(year)).toBe(30 * 86400);
    expect(activateThreshold(year)).toBe(7 * 86400);
  });

  it('checks every 1/60 of the CA lifetime, at most every 10 s', () => {
    expect(defaultRotationInterval(60)).toBe(1);
    expect(defaultRotationInterval(24 * 3600)).toBe(10);
  });

  it('publishes prepared, active, retired and tainted keys until they are pruned; never revoked ones', () => {
    for (const state of ['prepared', 'active', 'retired', 'tainted'] as const) expect(isPublished({ state })).toBe(true);
    expect(isPublished({ state: 'revoked' })).toBe(false);
  });
});

describe('nextRotationAction', () => {
  const active = slot({ id: 'a', state: 'active', notBefore: 0, notAfter: 600 });

  it('prepares a first key, then activates it', () => {
    expect(nextRotationAction([], 0)).toEqual({ type: 'prepare', reason: 'no active key' });
    expect(nextRotationAction([slot({ id: 'p', state: 'prepared' })], 0)).toEqual({ type: 'activate', id: 'p', reason: 'no active key' });
  });

  it('does nothing before half-life, prepares at it, activates at five-sixths', () => {
    expect(nextRotationAction([active], 299)).toBeUndefined();
    expect(nextRotationAction([active], 300)).toMatchObject({ type: 'prepare' });
    const prepared = slot({ id: 'b', state: 'prepared', notBefore: 300, notAfter: 900 });
    expect(nextRotationAction([active, prepared], 499)).toBeUndefined();
    expect(nextRotationAction([active, prepared], 500)).toMatchObject({ type: 'activate', id: 'b' });
  });

  it('prunes a retired, tainted or revoked key once it has expired (its SVIDs are capped at its notAfter)', () => {
    const next = slot({ id: 'b', state: 'active', notBefore: 500, notAfter: 1100 });
    for (const state of ['retired', 'tainted', 'revoked'] as const) {
      const old = { ...active, state };
      expect(nextRotationAction([old, next], 599)).toBeUndefined();
      expect(nextRotationAction([old, next], 600)).toEqual({ type: 'prune', id: 'a' });
    }
  });

  it('repairs what a crash or a lost key leaves behind', () => {
    const newer = slot({ id: 'b', state: 'active', notBefore: 300, notAfter: 900 });
    // killed between "activate new" and "retire old": the newer one wins
    expect(nextRotationAction([active, newer], 500)).toEqual({ type: 'retire', id: 'a', reason: 'superseded by a newer active key' });
    expect(nextRotationAction([{ ...active, usable: false }], 10)).toMatchObject({ type: 'retire', id: 'a' });
    expect(nextRotationAction([active, slot({ id: 'p', state: 'prepared', usable: false })], 10)).toMatchObject({ type: 'drop', id: 'p' });
    const p1 = slot({ id: 'p1', state: 'prepared', notBefore: 300, notAfter: 900 });
    const p2 = slot({ id: 'p2', state: 'prepared', notBefore: 310, notAfter: 910 });
    expect(nextRotationAction([active, p1, p2], 320)).toMatchObject({ type: 'drop', id: 'p1' });
  });

  it('after a long downtime: retires the expired key, drops an expired prepared one, then starts over', () => {
    const stale = slot({ id: 'p', state: 'prepared', notBefore: 300, notAfter: 900 });
    expect(nextRotationAction([active, stale], 1000)).toMatchObject({ type: 'drop', id: 'p' });
    expect(nextRotationAction([active], 1000)).toMatchObject({ type: 'retire', id: 'a', reason: 'expired' });
    expect(nextRotationAction([{ ...active, state: 'retired' }], 1000)).toMatchObject({ type: 'prepare' });
  });

  it('property: applying the actions always settles with exactly one usable, unexpired active key', () => {
    const states = fc.constantFrom('prepared', 'active', 'retired', 'tainted', 'revoked') as fc.Arbitrary<SlotView['state']>;
    const arbSlot = fc.record({ state: states, notBefore: fc.integer({ min: 0, max: 1000 }), life: fc.integer({ min: 1, max: 1000 }), usable: fc.boolean() });
    fc.assert(
      fc.property(fc.array(arbSlot, { maxLength: 6 }), fc.integer({ min: 0, max: 3000 }), (raw, now) => {
        let slots: SlotView[] = raw.map((r, i) => ({ id: `s${i}`, state: r.state, notBefore: r.notBefore, notAfter: r.notBefore + r.life, usable: r.usable }));
        let n = 0;
        for (let a = nextRotationAction(slots, now); a; a = nextRotationAction(slots, now)) {
          if (++n > 20) throw new Error('does not settle');
          if (a.type === 'prepare') slots.push({ id: `new${n}`, state: 'prepared', notBefore: now, notAfter: now + 600, usable: true });
          else if (a.type === 'activate') slots = slots.map((s) => (s.id === a.id ? { ...s, state: 'active' } : s.state === 'active' ? { ...s, state: 'retired' } : s));
          else if (a.type === 'retire') slots = slots.map((s) => (s.id === a.id ? { ...s, state: 'retired' } : s));
          else slots = slots.filter((s) => s.id !== a.id);
        }
        const actives = slots.filter((s) => s.state === 'active');
        expect(actives).toHaveLength(1);
        expect(actives[0]!.usable && actives[0]!.notAfter > now).toBe(true);
        expect(slots.filter((s) => s.state === 'prepared').every((s) => s.usable && s.notAfter > now)).toBe(true);
      }),
    );
  });
});

describe('clock steps and upstream limits', () => {
  it('retires an active key the clock is behind and drops such a prepared one (they can sign nothing valid)', () => {
    const a = slot({ id: 'a', state: 'active', notBefore: 1000, notAfter: 1600, validFrom: 900 });
    expect(nextRotationAction([a], 800)).toMatchObject({ type: 'retire', id: 'a' });
    expect(nextRotationAction([a], 950)).toBeUndefined(); // within the backdating
    const p = slot({ id: 'p', state: 'prepared', notBefore: 1300, notAfter: 1900, validFrom: 1200 });
    expect(nextRotationAction([a, p], 1000)).toMatchObject({ type: 'drop', id: 'p' });
  });

  it('does not prune an expired key within its prune grace', () => {
    const old = slot({ id: 'o', state: 'retired', notBefore: 0, notAfter: 600, prunable: false });
    const a = slot({ id: 'a', state: 'active', notBefore: 500, notAfter: 1100 });
    expect(nextRotationAction([old, a], 700)).toBeUndefined();
    expect(nextRotationAction([{ ...old, prunable: true }, a], 700)).toEqual({ type: 'prune', id: 'o' });
  });

  it('prepares no successor that could not outlive the active key (an upstream expiring sooner), and none once the upstream expired', () => {
    const a = slot({ id: 'a', state: 'active', notBefore: 0, notAfter: 100 });
    expect(nextRotationAction([a], 60, { maxNotAfter: 100 })).toBeUndefined();
    expect(nextRotationAction([a], 60, { maxNotAfter: 5000 })).toMatchObject({ type: 'prepare' });
    expect(nextRotationAction([], 200, { maxNotAfter: 100 })).toBeUndefined();
    expect(nextRotationAction([], 50, { maxNotAfter: 100 })).toMatchObject({ type: 'prepare', reason: 'no active key' });
  });
});
