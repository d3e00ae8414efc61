/**
 * Every public sample message over a real MLLP socket: each is stored (AA) or answered AE/AR with a reason — never
 * a crash, never silence.
 */
import { describeWithFixtures } from '../../test/fixtures';
import { readAck, startHl7Platform, type Hl7TestPlatform } from './harness';
import { sampleMessages, sendingFacility } from './samples';

describeWithFixtures('hl7v2', 'HL7 v2 public samples over MLLP', () => {
  let p: Hl7TestPlatform;
  const samples = sampleMessages();
  const outcomes = new Map<string, { code: string; errors: string[] }>();

  beforeAll(async () => {
    p = await startHl7Platform();
    const facilities = new Set(samples.map((s) => sendingFacility(s.bytes)).filter(Boolean));
    for (const f of facilities) await p.registerFacility(f);
    const client = await p.connect();
    for (const s of samples) {
      const ack = readAck(await client.send(s.bytes));
      outcomes.set(`${s.file}#${s.index}`, { code: ack.code, errors: ack.errors });
    }
  }, 120_000);
  afterAll(async () => p.close());

  it('has the 163 messages the fixtures describe', () => {
    expect(samples).toHaveLength(163);
  });

  it('answers every message AA, or AE/AR with an ERR segment', () => {
    const summary: Record<string, number> = {};
    if (process.env.HL7_SAMPLES_REPORT) {
      for (const [key, o] of outcomes) console.log(`${o.code} ${key} ${o.errors.map((e) => e.split(e[3])[8]).join(' / ')}`);
    }
    for (const [key, o] of outcomes) {
      summary[o.code] = (summary[o.code] ?? 0) + 1;
      expect(['AA', 'AE', 'AR']).toContain(o.code);
      if (o.code !== 'AA') expect({ key, errors: o.errors.length > 0 }).toEqual({ key, errors: true });
    }
    if (process.env.HL7_SAMPLES_REPORT) console.log(summary);
  });
});
