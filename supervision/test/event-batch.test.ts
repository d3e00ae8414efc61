/** The event batcher: jobs that arrive together are handled together, one batch at a time, and fail together. */
import { EventBatcher } from '../event-batch';

describe('EventBatcher', () => {
  it('gathers what arrives while a batch waits or runs, caps the batch size, and handles one batch at a time', async () => {
    const batches: number[][] = [];
    let running = 0;
    let overlapped = false;
    const batcher = new EventBatcher<number>(async (items) => {
      running++;
      overlapped ||= running > 1;
      batches.push(items);
      await new Promise((r) => setTimeout(r, 30));
      running--;
    }, 10, 4);
    await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => batcher.add(n)));
    expect(batches).toEqual([[1, 2, 3, 4], [5, 6, 7]]);
    expect(overlapped).toBe(false);
  });

  it('a failed batch fails every job in it (BullMQ retries them), and the next batch still runs', async () => {
    let calls = 0;
    const batcher = new EventBatcher<string>(async (items) => {
      calls++;
      if (items.includes('bad')) throw new Error('database unavailable');
    }, 5, 10);
    const results = await Promise.allSettled([batcher.add('a'), batcher.add('bad')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expect(batcher.add('c')).resolves.toBeUndefined();
    expect(calls).toBe(2);
  });
});
