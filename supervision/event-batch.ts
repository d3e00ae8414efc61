/**
 * Change events handled in batches. BullMQ (open source) hands a worker one job at a time, so the event worker runs
 * with a high concurrency and each job only joins the batch being gathered; the batch is handled when it is full or
 * a few milliseconds after its first event, and every job of it completes (or fails, and is retried by BullMQ)
 * with the batch. One batch is handled at a time per process: the next one gathers meanwhile, so the batches grow
 * with the load and the cost per event falls.
 */
export class EventBatcher<T> {
  private waiting: Array<{ item: T; resolve: () => void; reject: (err: Error) => void }> = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly handle: (items: T[]) => Promise<void>,
    /** How long the first event of a batch waits for others, ms. */
    private readonly lingerMs = 20,
    /** The most events handled together. */
    private readonly maxBatch = 1000,
  ) {}

  /** Settles when the batch this item joined has been handled. */
  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.waiting.length === 0) return;
    if (this.waiting.length >= this.maxBatch) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.lingerMs);
    }
  }

  private async flush(): Promise<void> {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    const batch = this.waiting.splice(0, this.maxBatch);
    try {
      await this.handle(batch.map((b) => b.item));
      for (const b of batch) b.resolve();
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
    } finally {
      this.running = false;
      // What gathered meanwhile goes at once: it has waited for this batch already.
      if (this.waiting.length > 0) void this.flush();
    }
  }
}
