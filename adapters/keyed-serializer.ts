/**
 * Runs tasks one after another per key, and tasks of different keys in parallel: messages about one patient are
 * applied in the order they arrived (a later A08 never overtakes its A04), messages about others do not wait.
 * Within one process; across processes the conditional-write advisory lock on the patient's identifier serialises
 * the transactions, and the patient clock (hl7_patient_clock) keeps an older message from overwriting a newer one.
 */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string | undefined, task: () => Promise<T>): Promise<T> {
    if (key === undefined) {
      return task();
    }
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) {
        this.tails.delete(key);
      }
    });
    return result;
  }

  /** Keys with work queued or running (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}
