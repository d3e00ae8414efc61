/**
 * Time as the workflow sees it. Deadlines and slot releases are BullMQ delayed jobs computed from this clock; a
 * test replaces it with a ManualClock, moves it forward and asks the timers to promote what has come due.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export class ManualClock implements Clock {
  constructor(private current = Date.now()) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(instant: number): void {
    this.current = instant;
  }
}
