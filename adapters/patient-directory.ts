/**
 * Which patient id an identifier led to, remembered for a few minutes in this process: a laboratory sends many
 * results for the same patients, and a result only needs its patient to exist (it never changes demographics), so
 * the conditional create (advisory lock, search, read) is skipped when the patient was seen recently. Entries are
 * learned only from committed messages; a stale entry (a patient deleted meanwhile) makes the store refuse the
 * reference, and the message is then processed again without the directory.
 */
export class PatientDirectory {
  private readonly entries = new Map<string, { id: string; at: number }>();

  constructor(
    private readonly ttlMs = 5 * 60_000,
    private readonly maxEntries = 100_000,
  ) {}

  get(key: string): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (Date.now() - e.at > this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e.id;
  }

  learn(learned: Map<string, string>): void {
    for (const [key, id] of learned) {
      if (this.entries.size >= this.maxEntries) {
        this.entries.delete(this.entries.keys().next().value as string);
      }
      this.entries.set(key, { id, at: Date.now() });
    }
  }

  forget(keys: Iterable<string>): void {
    for (const key of keys) this.entries.delete(key);
  }
}
