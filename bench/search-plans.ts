/**
 * `npm run bench:plans`: the query plans of the search shapes of issue 3 part A (chains, `_has`, composites, UCUM
 * quantities, `:of-type`, `:missing`, `_include=*`) on a generated store of a few tens of thousands of resources,
 * loaded through the repository's write API into a fresh PostgreSQL database that is dropped afterwards. Prints
 * every plan (EXPLAIN ANALYZE) and records each shape's execution time and index use in docs/performance.md.
 */
import { adminQuery } from './platform';
import type { Resource } from '@medplum/fhirtypes';
import { FhirRepository, loadFhirDefinitions, migrate, openDatabase } from '../fhir-server';
import { compileSearch, orderByClause, parseSearch, queryRecord, SqlParams } from '../fhir-server/search';
import { machineDescription, writeSection } from './report';

const ADMIN_URL = process.env.BENCH_POSTGRES_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const [ORGANIZATIONS, PATIENTS, OBSERVATIONS, AUDIT_EVENTS] = [50, 5000, 30000, 3000];
const UCUM = 'http://unitsofmeasure.org';
const LOINC = 'http://loinc.org';

/** The searches whose plans are shown: each a new query shape of part A. */
const SHAPES = [
  'Observation?subject:Patient.family:exact=Fam42',
  `Observation?subject:Patient.family=Fam42&code=${LOINC}|85354-9`,
  'Observation?patient.organization.name=Org 7',
  'Observation?subject:Patient.organization.partof.name=Org 3',
  'Patient?_has:Observation:patient:code=code-7',
  'Patient?_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/dr3',
  `Observation?component-code-value-quantity=${LOINC}|8480-6$gt145`,
  `Observation?code-value-quantity=code-5$0.0005|${UCUM}|mol/L`,
  `Observation?value-quantity=0.0015|${UCUM}|mol/L`,
  'Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|M77',
  'Patient?gender:missing=true',
];

function generated(): Resource[] {
  const resources: Resource[] = [];
  for (let i = 0; i < ORGANIZATIONS; i++) {
    // Organizations 5… are part of one of the first five, for a three-link chain.
    resources.push({ resourceType: 'Organization', id: `org${i}`, name: `Org ${i} hospital`, ...(i >= 5 ? { partOf: { reference: `Organization/org${i % 5}` } } : {}) });
  }
  for (let i = 0; i < PATIENTS; i++) {
    resources.push({
      resourceType: 'Patient',
      id: `p${i}`,
      name: [{ family: `Fam${i}` }],
      ...(i % 50 === 0 ? {} : { gender: i % 2 ? 'male' : 'female' }),
      managingOrganization: { reference: `Organization/org${i % ORGANIZATIONS}` },
      identifier: [{ system: 'urn:mrn', value: `M${i}`, type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] } }],
    });
  }
  for (let i = 0; i < OBSERVATIONS; i++) {
    const panel = i % 10 === 0;
    const quantity = (value: number, code: string) => ({ value, system: UCUM, code, unit: code });
    resources.push({
      resourceType: 'Observation',
      id: `o${i}`,
      status: 'final',
      subject: { reference: `Patient/p${i % PATIENTS}` },
      code: { coding: [{ system: LOINC, code: panel ? '85354-9' : `code-${i % 40}` }] },
      ...(panel
        ? {
            component: [
              { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: quantity(100 + (i % 60), 'mm[Hg]') },
              { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: quantity(60 + (i % 40), 'mm[Hg]') },
            ],
          }
        : { valueQuantity: quantity((i % 100) / 10, 'mmol/L') }),
    });
  }
  for (let i = 0; i < AUDIT_EVENTS; i++) {
    resources.push({
      resourceType: 'AuditEvent',
      id: `a${i}`,
      type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
      recorded: '2025-01-01T00:00:00Z',
      agent: [{ requestor: true, who: { reference: `Practitioner/dr${i % 20}` } }],
      source: { observer: { reference: 'Organization/org1' } },
      entity: [{ what: { reference: `Observation/o${i * 7}` } }],
    });
  }
  return resources;
}

async function main(): Promise<void> {
  loadFhirDefinitions();
  const name = `huimin_plans_${Date.now().toString(36)}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = await openDatabase(url.toString(), undefined);
  try {
    await migrate(db);
    // Practitioners are referred to but not loaded: integrity is not what this measures.
    const repo = new FhirRepository(db, { enforceReferentialIntegrity: false, baseUrl: 'http://127.0.0.1/fhir' });
    const resources = generated();
    for (let i = 0; i < resources.length; i += 1000) {
      await repo.write(async (s) => {
        for (const r of resources.slice(i, i + 1000)) {
          await s.update(r.resourceType, r.id as string, r);
        }
      });
    }
    await db.query('VACUUM ANALYZE');
    const lines: string[] = [];
    for (const shape of SHAPES) {
      const [type, query] = shape.split('?');
      const params = new SqlParams();
      const request = parseSearch(type, queryRecord(new URLSearchParams(query.replace(/\+/g, '%2B').replace(/\$/g, '%24'))));
      const { where, orderBy } = compileSearch(request, params, { alias: 'r' });
      const sql =
        `SELECT r.id, r.content FROM resource r WHERE r.res_type = ${params.add(type)} AND NOT r.deleted ${where.map((w) => `AND ${w}`).join(' ')}` +
        // The server's order: the sort keys, then id (searchPage in repository/search-sql.ts).
        ` ORDER BY ${orderByClause([...orderBy, { expr: 'r.id', descending: false, sqlType: 'text', nullable: false }])} LIMIT 21`;
      const plan = (await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF) ${sql}`, params.values)).map((r) => r['QUERY PLAN']);
      console.log(`\n${shape}\n${plan.join('\n')}`);
      const time = plan.find((l) => l.startsWith('Execution Time'))?.replace('Execution Time: ', '') ?? '?';
      const indexes = [...new Set(plan.flatMap((l) => /using (\w+)|Bitmap Index Scan on (\w+)/.exec(l)?.slice(1).filter(Boolean) ?? []))];
      const scans = plan.some((l) => /Seq Scan/.test(l)) ? ', with a sequential scan' : '';
      lines.push(`${shape}: ${time}; indexes ${indexes.join(', ')}${scans}`);
    }
    const machine = await machineDescription(url.toString());
    writeSection(
      'search-plans',
      [
        '## Search query shapes: measured plans',
        '',
        `Command: \`npm run bench:plans\` (run ${new Date().toISOString()}); ${ORGANIZATIONS} Organizations, ${PATIENTS} Patients, ` +
          `${OBSERVATIONS} Observations (one in ten a blood-pressure panel), ${AUDIT_EVENTS} AuditEvents; first page of 20, EXPLAIN ANALYZE execution time`,
        '',
        `Machine: ${machine}`,
        '',
        '```',
        ...lines,
        '```',
      ].join('\n'),
    );
  } finally {
    await db.close();
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
