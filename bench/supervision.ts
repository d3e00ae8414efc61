/**
 * `npm run bench:supervision`: supervision's two targets, on the built platform started on a fresh database (one
 * process, HUIMIN_WORKERS=1, so that the lag it reports covers every event).
 *
 * 1. Lag: hospitals' clients write prescriptions, encounters and lab results in transaction bundles at a steady
 *    rate (resources/s) while the rules run on the change events; the platform's `$supervision-status` gives the lag
 *    from each write to the end of its evaluation (p50, p99). Target: p99 under 5 s at 1,000 resources/s.
 * 2. A month: the data are dated over one month; then each indicator's `$evaluate-measure` for the city and for one
 *    institution, and the batch re-evaluation of every period rule over the month, are timed. Target: a month over
 *    10 million resources in under 2 minutes.
 *
 *   npm run bench:supervision                                   # --rate 1000 --duration 30 --institutions 20
 *   npm run bench:supervision -- --rate 200 --duration 10       # small scale
 *   npm run bench:supervision -- --duration 0 --facts 10000000  # the month's SQL over 10 million facts
 *   npm run bench:supervision -- --drain 120                    # give up waiting for the queue after 120 s
 *
 * `--facts N` adds N synthetic rows to supervision's fact tables for the month (prescription lines, encounters,
 * orders and results, in the proportions 6:1:3), written in bulk with SQL (loading ten million resources through
 * the API would take hours): it measures the indicators' and the batch's SQL at that scale, not the extraction.
 */
import os from 'node:os';
import type { Bundle, BundleEntry, Parameters, Resource } from '@medplum/fhirtypes';
import pg from 'pg';
import { startPlatform } from './platform';
import { machineDescription, writeBenchSection } from './report';

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

const JSON_TYPE = { 'Content-Type': 'application/fhir+json' };
const DAY = 86_400_000;

async function call<T>(url: string, token: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(url, { ...init, headers: { ...JSON_TYPE, Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
  if (!res.ok) {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${(await res.text()).slice(0, 500)}`);
  }
  return (await res.json()) as T;
}

function part(p: Parameters, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of p.parameter?.find((q) => q.name === name)?.part ?? []) {
    out[x.name] = Number(x.valueDecimal ?? x.valueInteger ?? 0);
  }
  return out;
}

/** A client of each hospital (facility-system), registered by the administrator, and its token. */
async function hospitalToken(authUrl: string, admin: string, org: string): Promise<string> {
  const reg = await fetch(`${authUrl}/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}` },
    body: JSON.stringify({ client_name: `HIS of ${org}`, role: 'facility-system', organization: org, scope: 'system/*.cruds' }),
  });
  const { client_id: id, client_secret: secret } = (await reg.json()) as { client_id: string; client_secret: string };
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${authUrl}/token`, {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    if (res.ok) return ((await res.json()) as { access_token: string }).access_token;
    if (attempt > 20) throw new Error(`token for ${org}: ${res.status}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** One bundle of a hospital's day: an outpatient or inpatient encounter with its prescriptions and a lab result. */
function visit(patient: string, monthStart: number, i: number, size: number): Bundle {
  const day = monthStart + (i % 28) * DAY + 9 * 3600_000;
  const inpatient = i % 5 === 0;
  const enc = `urn:uuid:${(0x10000000 + (i % 0xfffffff)).toString(16)}-0000-4000-8000-000000000001`;
  const entries: BundleEntry[] = [
    {
      fullUrl: enc,
      resource: {
        resourceType: 'Encounter',
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: inpatient ? 'IMP' : 'AMB' },
        subject: { reference: patient },
        period: { start: new Date(day).toISOString(), end: new Date(day + (inpatient ? (3 + (i % 9)) * DAY : 3600_000)).toISOString() },
        reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: ['I10', 'J18.9', 'E11.9', 'I21.0'][i % 4] }] }],
      } as Resource,
      request: { method: 'POST', url: 'Encounter' },
    },
  ];
  for (let k = 1; k < size - 1; k++) {
    entries.push({
      resource: {
        resourceType: 'MedicationRequest',
        status: 'active',
        intent: 'order',
        subject: { reference: patient },
        encounter: { reference: enc },
        authoredOn: new Date(day).toISOString(),
        groupIdentifier: { system: 'urn:bench:rx', value: `rx-${i}` },
        medicationCodeableConcept: { coding: [{ system: 'http://www.whocc.no/atc', code: ['C09AA02', 'J01CA04', 'C10AA05', 'A10BA02', 'J01DD04', 'N02BE01'][(i + k) % 6] }] },
        dosageInstruction: [{ timing: { repeat: { frequency: 3, period: 1, periodUnit: 'd' } }, doseAndRate: [{ doseQuantity: { value: 500, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' } }] }],
        dispenseRequest: { expectedSupplyDuration: { value: [3, 5, 7, 10][(i + k) % 4], unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' } },
      } as Resource,
      request: { method: 'POST', url: 'MedicationRequest' },
    });
  }
  entries.push({
    resource: {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '718-7' }] },
      subject: { reference: patient },
      effectiveDateTime: new Date(day).toISOString(),
      valueQuantity: { value: 130, unit: 'g/L', system: 'http://unitsofmeasure.org', code: 'g/L' },
    } as Resource,
    request: { method: 'POST', url: 'Observation' },
  });
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

/**
 * Synthetic facts in bulk: 60 % prescription lines (10 % with an antimicrobial, days' supply 1–7 so that few
 * findings are raised), 10 % inpatient or outpatient encounters, 30 % orders and results, over the month's days; a
 * patient per 20 rows (3 for encounters), each patient at one institution. Lab codes are local ones that no
 * recognition window covers (repeated tests of the same patient would otherwise raise a finding per order).
 */
async function loadFacts(databaseUrl: string, n: number, orgs: string[], monthStart: number): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const chunk = 1_000_000;
    for (let offset = 0; offset < n; offset += chunk) {
      const size = Math.min(chunk, n - offset);
      const rx = Math.floor(size * 0.6);
      const enc = Math.floor(size * 0.1);
      const ord = size - rx - enc;
      const params = [orgs, new Date(monthStart).toISOString(), offset];
      await client.query(
        `INSERT INTO sv_prescription (id, version, institution, patient, encounter, group_id, authored, status, setting, drug_system, drug_code,
           ingredient, days_supply, long_term, stable_chronic, reason_codes, amount_g, patient_gender, patient_birth)
         SELECT 'f' || ($3 + g), 1, ($1::text[])[1 + (($3 + g) / 20) % cardinality($1::text[])], 'Patient/f' || (($3 + g) / 20), 'f' || (($3 + g) / 6), 'g' || (($3 + g) / 3),
           $2::timestamptz + ((g % 28) || ' days')::interval, 'active', CASE WHEN g % 5 = 0 THEN 'inpatient' ELSE 'outpatient' END,
           'http://www.whocc.no/atc', CASE WHEN g % 10 = 0 THEN 'J01CA04' ELSE 'C09AA02' END, CASE WHEN g % 10 = 0 THEN 'J01CA04' ELSE 'C09AA02' END,
           1 + g % 7, false, false, '{}', 4.5, CASE WHEN g % 2 = 0 THEN 'female' ELSE 'male' END, '1960-01-01'
         FROM generate_series(0, ${rx - 1}) g`,
        params,
      );
      await client.query(
        `INSERT INTO sv_encounter (id, version, institution, patient, class, status, start_at, end_at, principal_dx, planned)
         SELECT 'f' || ($3 + g), 1, ($1::text[])[1 + (($3 + g) / 3) % cardinality($1::text[])], 'Patient/f' || (($3 + g) / 3), CASE WHEN g % 5 = 0 THEN 'inpatient' ELSE 'outpatient' END,
           'finished', $2::timestamptz + ((g % 28) || ' days')::interval, $2::timestamptz + ((g % 28) || ' days')::interval + ((1 + g % 9) || ' days')::interval,
           (ARRAY['I10', 'J189', 'E119', 'I210'])[1 + g % 4], false
         FROM generate_series(0, ${enc - 1}) g`,
        params,
      );
      await client.query(
        `INSERT INTO sv_order (res_type, id, version, kind, institution, patient, code_system, code, at, status)
         SELECT CASE WHEN g % 2 = 0 THEN 'Observation' ELSE 'ServiceRequest' END, 'f' || ($3 + g), 1, CASE WHEN g % 2 = 0 THEN 'result' ELSE 'order' END,
           ($1::text[])[1 + (($3 + g) / 20) % cardinality($1::text[])], 'Patient/f' || (($3 + g) / 20), 'urn:bench:lab', (ARRAY['chol', 'glu', 'crea'])[1 + g % 3],
           $2::timestamptz + ((g % 28) || ' days')::interval, CASE WHEN g % 2 = 0 THEN 'final' ELSE 'active' END
         FROM generate_series(0, ${ord - 1}) g`,
        params,
      );
    }
    await client.query('ANALYZE sv_prescription; ANALYZE sv_encounter; ANALYZE sv_order');
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const rate = option(args, 'rate', 1000);
  const duration = option(args, 'duration', 30);
  const institutions = option(args, 'institutions', 20);
  const bundleSize = 10;
  process.env.HUIMIN_WORKERS = '1';
  process.env.HL7_ENABLED = 'false';
  process.env.SUPERVISION_TICK = 'PT1H';
  const platform = await startPlatform(Number(process.env.BENCH_PORT ?? 18931));
  const base = platform.baseUrl;
  const authUrl = base.replace(/\/fhir$/, '/auth');
  const admin = platform.token;
  try {
    const machine = await machineDescription(platform.databaseUrl);
    const orgs: string[] = [];
    const tokens: string[] = [];
    for (let i = 0; i < institutions; i++) {
      const id = `bench-h${i}`;
      await call(`${base}/Organization/${id}`, admin, {
        method: 'PUT',
        body: JSON.stringify({ resourceType: 'Organization', id, active: true, name: `Hospital ${i}`, type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov' }] }] }),
      });
      orgs.push(`Organization/${id}`);
      tokens.push(await hospitalToken(authUrl, admin, `Organization/${id}`));
    }
    const patients: string[][] = [];
    for (let i = 0; i < institutions; i++) {
      const list: string[] = [];
      for (let k = 0; k < 20; k++) {
        const p = await call<Resource>(`${base}/Patient`, tokens[i], { method: 'POST', body: JSON.stringify({ resourceType: 'Patient', gender: k % 2 ? 'male' : 'female', birthDate: `19${50 + k}-01-01` }) });
        list.push(`Patient/${p.id}`);
      }
      patients.push(list);
    }
    // Wait for the start-up content's events to be evaluated, then measure from a clean slate.
    for (let i = 0; i < 600; i++) {
      const status = await call<Parameters>(`${base}/$supervision-status`, admin);
      if ((part(status, 'backlog').events ?? 0) === 0) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    await call(`${base}/$supervision-status`, admin, { method: 'POST', body: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'resetLag', valueBoolean: true }] }) });

    const now = new Date();
    const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1);
    const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    const bundlesPerSecond = rate / bundleSize;
    const total = Math.round(bundlesPerSecond * duration);
    const loadBefore = os.loadavg()[0];
    const started = Date.now();
    const inFlight = new Set<Promise<void>>();
    let failures = 0;
    for (let i = 0; i < total; i++) {
      const wait = started + (i * 1000) / bundlesPerSecond - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const h = i % institutions;
      const p = call<Bundle>(base, tokens[h], { method: 'POST', body: JSON.stringify(visit(patients[h][i % 20], monthStart, i, bundleSize)) })
        .then(() => undefined)
        .catch(() => {
          failures++;
        });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    await Promise.all(inFlight);
    const writeSeconds = (Date.now() - started) / 1000;
    console.error(`wrote ${total} bundles in ${writeSeconds.toFixed(1)} s (${failures} failed)`);
    const achieved = total > 0 ? (total * bundleSize) / writeSeconds : 0;
    // Until the queue is drained (or --drain seconds have passed: the lag then covers only what was evaluated).
    const drainLimit = option(args, 'drain', 600);
    let status = await call<Parameters>(`${base}/$supervision-status`, admin);
    for (let i = 0; i < drainLimit && (part(status, 'backlog').events ?? 0) > 0; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      status = await call<Parameters>(`${base}/$supervision-status`, admin);
      if (i % 10 === 9) console.error(`still draining after ${i + 1} s: backlog ${JSON.stringify(part(status, 'backlog'))}, lag ${JSON.stringify(part(status, 'lag'))}`);
    }
    const undrained = part(status, 'backlog').events ?? 0;
    const lag = part(status, 'lag');
    const drainSeconds = (Date.now() - started) / 1000;

    const facts = option(args, 'facts', 0);
    let factsLine: string | undefined;
    if (facts > 0) {
      const t = performance.now();
      await loadFacts(platform.databaseUrl, facts, orgs, monthStart);
      factsLine = `loaded ${facts} synthetic fact rows for the month in ${((performance.now() - t) / 1000).toFixed(1)} s`;
    }
    // The month: every indicator for the city and for one institution, then the batch re-evaluation.
    const q = (subject?: string): string =>
      new URLSearchParams({ periodStart: new Date(monthStart).toISOString(), periodEnd: new Date(monthEnd).toISOString(), ...(subject ? { subject } : {}) }).toString();
    const measureLines: string[] = [];
    for (const measure of ['supervision-findings', 'supervision-referrals', 'supervision-antimicrobials', 'supervision-data-feed']) {
      for (const subject of [undefined, orgs[0]]) {
        const t0 = performance.now();
        await call(`${base}/Measure/${measure}/$evaluate-measure?${q(subject)}`, admin);
        measureLines.push(`$evaluate-measure ${measure} ${subject ? `subject=${subject}` : '(city)'}: ${(performance.now() - t0).toFixed(0)} ms`);
      }
    }
    const t0 = performance.now();
    await call(`${base}/$supervision-reevaluate`, admin, {
      method: 'POST',
      body: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'periodStart', valueDateTime: new Date(monthStart).toISOString() }, { name: 'periodEnd', valueDateTime: new Date(monthEnd).toISOString() }] }),
    });
    let last: Record<string, number> = {};
    for (let i = 0; i < 1200; i++) {
      const s = await call<Parameters>(`${base}/$supervision-status`, admin);
      last = part(s, 'lastReevaluation');
      if (last.ms !== undefined && Number.isFinite(last.ms) && s.parameter?.some((x) => x.name === 'lastReevaluation')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const batchWall = performance.now() - t0;
    const lines = [
      ...(factsLine ? [factsLine] : []),
      `wrote ${total * bundleSize} resources (${total} transaction bundles of ${bundleSize}, ${institutions} hospitals) at ${achieved.toFixed(0)} resources/s offered ${rate}/s ` +
        `for ${duration} s; ${failures} bundles failed; queue drained ${drainSeconds.toFixed(1)} s after the start; load average ${loadBefore.toFixed(1)} before, ` +
        `${os.loadavg()[0].toFixed(1)} after, on ${os.cpus().length} CPUs`,
      `lag from write to evaluated: p50 ${lag.p50 ?? '?'} ms, p99 ${lag.p99 ?? '?'} ms, max ${lag.max ?? '?'} ms (n=${lag.count})` +
        (undrained > 0 ? `; ${undrained} events still queued when measured (not drained within ${drainLimit} s)` : ''),
      ...measureLines,
      `batch re-evaluation of every period rule over the month: ${last.ms ?? '?'} ms in the worker (${batchWall.toFixed(0)} ms until seen), ${last.findings ?? '?'} findings raised`,
    ];
    console.log(lines.join('\n'));
    writeBenchSection(
      'supervision',
      '## Supervision: rule lag and a month of indicators (issue 10)',
      `Command: \`npm run bench:supervision -- --rate ${rate} --duration ${duration} --institutions ${institutions}${args.includes('--drain') ? ` --drain ${drainLimit}` : ''}\` (run ${new Date().toISOString()}); ` +
        'targets: lag p99 under 5 s while the store ingests 1,000 resources/s; a month over 10 million resources in under 2 minutes.',
      machine,
      lines,
    );
  } finally {
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
