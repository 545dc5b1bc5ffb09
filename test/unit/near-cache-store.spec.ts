import { ENTRY_OVERHEAD_BYTES, NearCacheStore } from '../../src/near-cache/near-cache-store';

/** The near-cache's memory and its race bookkeeping, on a clock the test moves. */
describe('NearCacheStore', () => {
  let now = 0;
  const counts = { evicted: 0, invalidated: 0, bytes: 0 };
  const store = (maxBytes = 10000, maxEntryBytes = 1000) =>
    new NearCacheStore(
      maxBytes,
      maxEntryBytes,
      {
        evicted: (n) => (counts.evicted += n),
        invalidated: (n) => (counts.invalidated += n),
        bytes: (total) => (counts.bytes = total),
      },
      () => now,
    );
  const value = (text: string, pttl = -1) => ({ bytes: Buffer.from(text), pttl });

  beforeEach(() => {
    now = 0;
    Object.assign(counts, { evicted: 0, invalidated: 0, bytes: 0 });
  });

  it('caches what a read answered, and nothing is left in flight', () => {
    const s = store();
    expect(s.end(s.begin('k'), value('v'))).toBe(true);
    expect(s.get('k')?.bytes.toString()).toBe('v');
    expect(s.readsInFlight).toBe(0);
    expect(counts.bytes).toBe(1 + 1 + ENTRY_OVERHEAD_BYTES);
  });

  it('drops a read whose key was invalidated while it was in flight', () => {
    const s = store();
    const ticket = s.begin('k');
    s.invalidate('k');
    expect(s.end(ticket, value('stale'))).toBe(false);
    expect(s.get('k')).toBeUndefined();
    expect(s.readsInFlight).toBe(0);
  });

  it('drops every read in flight at a flush, but keeps one sent after it', () => {
    const s = store();
    const before = s.begin('k');
    s.flush();
    const after = s.begin('k');
    expect(s.end(before, value('old'))).toBe(false);
    expect(s.end(after, value('new'))).toBe(true);
    expect(s.get('k')?.bytes.toString()).toBe('new');
  });

  it('keeps a read of another key, and two reads of one key settle independently', () => {
    const s = store();
    const first = s.begin('k');
    const other = s.begin('j');
    s.invalidate('k');
    const second = s.begin('k');
    expect(s.end(other, value('j'))).toBe(true);
    expect(s.end(first, value('stale'))).toBe(false);
    expect(s.end(second, value('fresh'))).toBe(true);
    expect(s.readsInFlight).toBe(0);
  });

  it('ends an entry at its PTTL counted from when the read was sent', () => {
    const s = store();
    const ticket = s.begin('k');
    now = 40; // the answer comes later than Redis read the PTTL
    s.end(ticket, value('v', 100));
    now = 99;
    expect(s.get('k')).toBeDefined();
    now = 100;
    expect(s.get('k')).toBeUndefined();
    expect(counts.evicted).toBe(1);
  });

  it('never caches a missing key, a value over maxEntryBytes, or a failed read', () => {
    const s = store(10000, 4);
    expect(s.end(s.begin('a'), { bytes: null, pttl: -2 })).toBe(false);
    expect(s.end(s.begin('b'), value('12345'))).toBe(false);
    expect(s.end(s.begin('c'))).toBe(false);
    expect(s.entryCount).toBe(0);
  });

  it('evicts the least recently used entries to stay within maxBytes', () => {
    const size = 1 + 10 + ENTRY_OVERHEAD_BYTES;
    const s = store(size * 3);
    for (const key of ['a', 'b', 'c']) {
      s.end(s.begin(key), value('0123456789'));
    }
    s.get('a'); // a is now the most recently used: b goes first
    s.end(s.begin('d'), value('0123456789'));
    expect(['a', 'b', 'c', 'd'].map((key) => s.get(key) !== undefined)).toEqual([
      true,
      false,
      true,
      true,
    ]);
    expect(s.bytes).toBe(size * 3);
    expect(counts.evicted).toBe(1);
  });
});
