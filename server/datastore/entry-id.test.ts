import { newEntryId } from './entry-id';

test('entry IDs are RFC 9562 UUIDv7: the time in the first 48 bits, version 7, variant 10', () => {
  const at = Date.UTC(2026, 11, 4, 12, 0, 0, 123);
  const id = newEntryId(at);
  expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(at);
});

test('IDs made in a later millisecond sort after earlier ones, and 10,000 in one millisecond are distinct', () => {
  const t = Date.now();
  const ids = Array.from({ length: 50 }, (_, i) => newEntryId(t + i));
  expect([...ids].sort()).toEqual(ids);
  expect(new Set(Array.from({ length: 10_000 }, () => newEntryId(t))).size).toBe(10_000);
});
