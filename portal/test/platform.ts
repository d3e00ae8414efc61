/**
 * The whole platform as `npm start` runs it (dist/main.js, built by `npm run build`), on a fresh PostgreSQL database
 * and Redis prefix, seeded over its public API the way hospitals feed it: Synthea bundles, an HL7 v2 ORU^R01 sample
 * over MLLP, two hospitals' records of one resident, a referral with bookable slots, and a user per role.
 * Used by the end-to-end tests (e2e.test.ts) and the page-load benchmark (bench/portal-pages.ts).
 */
import { spawn, execSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Bundle, Encounter, HealthcareService, Observation, Organization, Patient, Practitioner, Resource, Schedule, ServiceRequest } from '@medplum/fhirtypes';
import pg from 'pg';
import { deleteKeysWithPrefix } from '../../test/redis-keys';

/** The project's root (where package.json is), whether this runs from source or compiled into dist/. */
function projectRoot(dir: string): string {
  return existsSync(path.join(dir, 'package.json')) ? dir : projectRoot(path.dirname(dir));
}
const ROOT = projectRoot(__dirname);
const FIXTURES = process.env.HUIMIN_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures');
/** A few small Synthea patients (with the organisations and practitioners they point to). */
const SYNTHEA = ['0-hospitalInformation1625911868739.json', '0-practitionerInformation1625911868739.json', '8a4c9c04-1524-9f1c-d65b-9b17e4520fef.json'];
const HL7_SAMPLE = 'hl7v2/fhir-converter/ORU-R01-01.hl7';

export const PASSWORD = 'portal-e2e-password';
export const USERS = {
  admin: { username: 'admin', name: '系统管理员' },
  clinician: { username: 'dr.li', name: '李医生' },
  coordinator: { username: 'coord.wang', name: '王协调员' },
  supervisor: { username: 'sup.zhao', name: '赵监管' },
} as const;

export interface Seeded {
  /** The resident seen at two hospitals. */
  resident: Patient;
  /** A resident seen only at the other hospital (the clinician reaches them by break-the-glass). */
  stranger: Patient;
  hospital1: Organization;
  hospital2: Organization;
  clinic: Organization;
  taskId: string;
  /** Hospital 1's HbA1c order, which the recognition check answers with an advisory (hospital 2's recent result). */
  orderId: string;
}

export interface Platform {
  baseUrl: string;
  seeded: Seeded;
  /** An admin client's token, for checks behind the pages' backs. */
  adminToken(): Promise<string>;
  fhir<T>(pathAndQuery: string, init?: { method?: string; body?: unknown; token?: string }): Promise<T>;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export async function waitFor<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Builds the platform and the pages when they are missing (CI builds once before the tests). */
export function ensureBuilt(): void {
  if (!existsSync(path.join(ROOT, 'dist', 'main.js')) || !existsSync(path.join(ROOT, 'dist', 'portal-web', 'index.html'))) {
    execSync('npm run build', { cwd: ROOT, stdio: 'inherit' });
  }
}

/** Sends one HL7 v2 message over MLLP and returns the ACK. */
function sendMllp(port: number, message: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('connect', () => socket.write(Buffer.concat([Buffer.from([0x0b]), message, Buffer.from([0x1c, 0x0d])])));
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).includes(0x1c)) {
        socket.end();
        resolve(Buffer.concat(chunks).toString('utf8'));
      }
    });
    socket.on('error', reject);
    socket.setTimeout(15_000, () => reject(new Error('no MLLP ACK')));
  });
}

export async function startPlatform(): Promise<Platform> {
  ensureBuilt();
  const adminUrl = process.env.TEST_POSTGRES_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `huimin_portal_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const databaseUrl = new URL(adminUrl);
  databaseUrl.pathname = `/${dbName}`;
  const [port, hl7Port] = [await freePort(), await freePort()];
  const baseUrl = `http://127.0.0.1:${port}`;
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redisPrefix = `huimin-portal-${randomBytes(4).toString('hex')}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'huimin-portal-'));
  const clientSecret = randomBytes(24).toString('base64url');
  const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'dist', 'main.js')], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      PORT: String(port),
      HL7_PORT: String(hl7Port),
      DATABASE_URL: databaseUrl.toString(),
      HUIMIN_WORKERS: '1',
      DATA_DIR: dataDir,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redisPrefix,
      LOG_LEVEL: 'warn',
      HUIMIN_ADMIN_CLIENT_ID: 'e2e-admin',
      HUIMIN_ADMIN_CLIENT_SECRET: clientSecret,
      HUIMIN_ADMIN_USER: USERS.admin.username,
      HUIMIN_ADMIN_PASSWORD: PASSWORD,
      RATE_LIMIT_TOKEN_ENDPOINT: '100',
      RATE_LIMIT_PER_CLIENT: '0',
      // Audit review and the other periodic rules run every 2 s instead of every minute, so that the tests see their findings.
      SUPERVISION_TICK: 'PT2S',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    const drop = new pg.Client({ connectionString: adminUrl });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await drop.end();
    await deleteKeysWithPrefix(redisUrl, redisPrefix);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await fetch(`${baseUrl}/readyz`)).ok, 240_000, 'the platform to answer /readyz (its first start loads the terminology content)');
    let token: { value: string; until: number } | undefined;
    const adminToken = async (): Promise<string> => {
      if (!token || token.until < Date.now()) {
        const res = await fetch(`${baseUrl}/auth/token`, {
          method: 'POST',
          headers: { Authorization: `Basic ${Buffer.from(`e2e-admin:${clientSecret}`).toString('base64')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: 'grant_type=client_credentials',
        });
        const body = (await res.json()) as { access_token: string; expires_in: number };
        token = { value: body.access_token, until: Date.now() + (body.expires_in - 30) * 1000 };
      }
      return token.value;
    };
    const fhir = async <T>(pathAndQuery: string, init: { method?: string; body?: unknown; token?: string } = {}): Promise<T> => {
      const url = pathAndQuery.startsWith('/') ? `${baseUrl}${pathAndQuery}` : `${baseUrl}/fhir/${pathAndQuery}`;
      const res = await fetch(url, {
        method: init.method ?? (init.body ? 'POST' : 'GET'),
        headers: { Authorization: `Bearer ${init.token ?? (await adminToken())}`, 'Content-Type': pathAndQuery.startsWith('/auth') ? 'application/json' : 'application/fhir+json' },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${init.method ?? (init.body ? 'POST' : 'GET')} ${pathAndQuery}: ${res.status} ${text.slice(0, 3000)}`);
      return (text ? JSON.parse(text) : undefined) as T;
    };
    const seeded = await seed(fhir, hl7Port, baseUrl);
    return { baseUrl, seeded, adminToken, fhir, close: stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

type Fhir = Platform['fhir'];

async function seed(fhir: Fhir, hl7Port: number, baseUrl: string): Promise<Seeded> {
  const create = <T extends Resource>(resource: T, token?: string): Promise<T> => fhir<T>(resource.resourceType, { body: resource, token });

  // Synthea: the shared organisations and practitioners first, then a patient (SOURCE.md, "How to load").
  for (const file of SYNTHEA) {
    await fhir<Bundle>('', { body: JSON.parse(readFileSync(path.join(FIXTURES, 'synthea-r4', file), 'utf8')) as Bundle });
  }

  // The city: a community clinic, two hospitals (each feeding the platform as a facility system), a health bureau.
  const clinic = await create<Organization>({ resourceType: 'Organization', name: '东城社区卫生服务中心', active: true });
  const hospital1 = await create<Organization>({ resourceType: 'Organization', name: '市第一人民医院', active: true });
  const hospital2 = await create<Organization>({ resourceType: 'Organization', name: '市中心医院', active: true });
  const bureau = await create<Organization>({ resourceType: 'Organization', name: '市卫生健康委员会', active: true });
  // The HL7 sample's sending facility (MSH-4), registered so that its messages are taken in.
  await create<Organization>({
    resourceType: 'Organization',
    name: 'IA Public Health Lab',
    active: true,
    meta: { tag: [{ system: 'http://huimin.health/fhir/CodeSystem/platform-role', code: 'hl7-facility' }] },
    identifier: [{ system: 'urn:huimin:facility', value: 'IA Public Health Lab' }],
  });
  const practitioner = await create<Practitioner>({ resourceType: 'Practitioner', name: [{ family: '李', given: ['明'] }] });

  const facilityToken = async (org: Organization): Promise<string> => {
    const registered = await fhir<{ client_id: string; client_secret: string }>('/auth/register', { body: { client_name: `${org.name} HIS`, role: 'facility-system', organization: `Organization/${org.id}`, scope: 'system/*.cruds' } });
    const res = await fetch(`${baseUrl}/auth/token`, {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from(`${registered.client_id}:${registered.client_secret}`).toString('base64')}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    return ((await res.json()) as { access_token: string }).access_token;
  };
  const h1 = await facilityToken(hospital1);
  const h2 = await facilityToken(hospital2);

  // One resident, seen at both hospitals: each hospital writes its own encounter and results.
  const resident = await create<Patient>(
    {
      resourceType: 'Patient',
      identifier: [
        { system: 'urn:oid:2.16.156.10011.1.3', value: '340104198001011234', type: { text: '身份证' } },
        { system: 'urn:huimin:health-card', value: 'HC2024000123', type: { text: '健康卡' } },
      ],
      name: [{ family: '张', given: ['伟'] }, { family: 'Zhang', given: ['Wei'], use: 'usual' }],
      gender: 'male',
      birthDate: '1980-01-01',
    },
    h1,
  );
  const stranger = await create<Patient>({ resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '340104197505055666' }], name: [{ family: '陈', given: ['静'] }, { family: 'Chen', given: ['Jing'] }], gender: 'female', birthDate: '1975-05-05' }, h2);
  const subject = { reference: `Patient/${resident.id}` };
  const day = (offset: number): string => new Date(Date.now() - offset * 86_400_000).toISOString();
  // Hospital 2's laboratory holds the provincial HR mark for HbA1c, granted by the bureau (here, its administrator).
  await create<HealthcareService>({
    resourceType: 'HealthcareService',
    meta: { tag: [{ system: 'http://huimin.health/fhir/CodeSystem/platform-role', code: 'recognition-grant' }] },
    active: true,
    providedBy: { reference: `Organization/${hospital2.id}` },
    name: 'HbA1c 互认资质',
    type: [{ coding: [{ system: 'http://loinc.org', code: '4548-4' }] }],
    extension: [
      {
        url: 'http://huimin.health/fhir/StructureDefinition/recognition-grant',
        extension: [
          { url: 'scope', valueCoding: { system: 'http://huimin.health/fhir/CodeSystem/recognition-scope', code: 'provincial' } },
          { url: 'period', valuePeriod: { start: day(365).slice(0, 10), end: new Date(Date.now() + 365 * 86_400_000).toISOString().slice(0, 10) } },
        ],
      },
    ],
  });
  const glucose = (value: number, when: string, token: string, encounter: Encounter): Promise<Observation> =>
    create<Observation>(
      {
        resourceType: 'Observation',
        status: 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
        code: { coding: [{ system: 'http://loinc.org', code: '2345-7', display: '血糖 Glucose' }] },
        subject,
        encounter: { reference: `Encounter/${encounter.id}` },
        effectiveDateTime: when,
        valueQuantity: { value, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
        referenceRange: [{ low: { value: 3.9, unit: 'mmol/L' }, high: { value: 6.1, unit: 'mmol/L' } }],
        interpretation: value > 6.1 ? [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: 'H' }] }] : undefined,
      },
      token,
    );
  const hba1c = (value: number, when: string, token: string, encounter: Encounter, mark?: string): Promise<Observation> =>
    create<Observation>(
      {
        resourceType: 'Observation',
        status: 'final',
        ...(mark ? { meta: { tag: [{ system: 'http://huimin.health/fhir/CodeSystem/recognition-mark', code: mark, display: mark }] } } : {}),
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
        code: { coding: [{ system: 'http://loinc.org', code: '4548-4', display: '糖化血红蛋白 HbA1c' }] },
        subject,
        encounter: { reference: `Encounter/${encounter.id}` },
        effectiveDateTime: when,
        valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
        referenceRange: [{ low: { value: 4, unit: '%' }, high: { value: 6, unit: '%' } }],
      },
      token,
    );
  const encounter = (org: Organization, when: string, token: string, type: string): Promise<Encounter> =>
    create<Encounter>({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: '门诊' }, type: [{ text: type }], subject, serviceProvider: { reference: `Organization/${org.id}` }, period: { start: when, end: when } }, token);
  const e1 = await encounter(hospital1, day(120), h1, '内分泌科门诊');
  const e1b = await encounter(hospital1, day(60), h1, '内分泌科复诊');
  const e2 = await encounter(hospital2, day(20), h2, '心内科门诊');
  await glucose(7.8, day(120), h1, e1);
  await hba1c(7.4, day(120), h1, e1);
  await glucose(7.1, day(60), h1, e1b);
  await hba1c(6.9, day(60), h1, e1b, '合肥HR');
  await glucose(6.4, day(20), h2, e2);
  await hba1c(6.5, day(20), h2, e2, '本省HR');
  await create({ resourceType: 'Condition', subject, encounter: { reference: `Encounter/${e1.id}` }, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'E11.9', display: '2型糖尿病' }] }, recordedDate: day(120) }, h1);
  await create({ resourceType: 'AllergyIntolerance', patient: subject, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] }, code: { text: '青霉素' }, criticality: 'high', recordedDate: day(60) }, h1);
  await create({ resourceType: 'MedicationRequest', status: 'active', intent: 'order', subject, encounter: { reference: `Encounter/${e1b.id}` }, medicationCodeableConcept: { text: '二甲双胍 0.5g' }, authoredOn: day(60), dosageInstruction: [{ text: '每日两次，每次 0.5g' }] }, h1);
  await create({ resourceType: 'Immunization', status: 'completed', patient: subject, vaccineCode: { text: '流感疫苗' }, occurrenceDateTime: day(90) }, h2);
  await create(
    { resourceType: 'DocumentReference', status: 'current', subject, date: day(20), description: '心内科门诊病历', type: { coding: [{ system: 'http://loinc.org', code: '11506-3', display: 'Progress note' }] }, context: { encounter: [{ reference: `Encounter/${e2.id}` }] }, content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('主诉：活动后胸闷一周。\n诊断：稳定型心绞痛？建议上级医院进一步检查。').toString('base64') } }] },
    h2,
  );
  await encounter(hospital2, day(5), h2, '妇科门诊').then(() => undefined);
  // The resident keeps psychiatric records from everyone else: hospital 2's one such note stays hidden from hospital 1,
  // whose pages say that part of the record is withheld (not what).
  const PSY = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' };
  await create({ resourceType: 'Observation', status: 'final', meta: { security: [PSY] }, code: { text: '心理评估' }, subject, effectiveDateTime: day(30), valueString: '—' }, h2);
  await create(
    {
      resourceType: 'Consent',
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: subject,
      policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
      provision: { type: 'permit', provision: [{ type: 'deny', securityLabel: [PSY] }] },
    },
    h1,
  );
  await create<Encounter>({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: `Patient/${stranger.id}` }, serviceProvider: { reference: `Organization/${hospital2.id}` }, period: { start: day(3) } }, h2);

  // HL7 v2: the sample ORU^R01 from its (registered) public-health lab, byte for byte.
  const ack = await sendMllp(hl7Port, readFileSync(path.join(FIXTURES, HL7_SAMPLE)));
  if (!/MSA\|A[AE]/.test(ack)) throw new Error(`HL7 sample not taken: ${ack}`);

  // The receiving department: cardiology at hospital 1 with a week of slots (the platform holds a share back for referrals).
  const cardiology = await create<HealthcareService>({ resourceType: 'HealthcareService', active: true, providedBy: { reference: `Organization/${hospital1.id}` }, name: '心内科' });
  const schedule = await create<Schedule>({ resourceType: 'Schedule', active: true, actor: [{ reference: `HealthcareService/${cardiology.id}` }] });
  const tomorrow = new Date();
  tomorrow.setDate(tomorrow.getDate() + 1);
  tomorrow.setHours(9, 0, 0, 0);
  for (let d = 0; d < 5; d++) {
    for (let h = 0; h < 4; h++) {
      const start = new Date(tomorrow.getTime() + d * 86_400_000 + h * 3_600_000);
      await create({ resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.id}` }, status: 'free', start: start.toISOString(), end: new Date(start.getTime() + 1_800_000).toISOString() });
    }
  }

  // An upward referral from the clinic to hospital 1, as the clinic's system submits it.
  const clinicToken = await facilityToken(clinic);
  const srUrl = `urn:uuid:${randomUUID()}`;
  const submitted = await fhir<Bundle>('', {
    token: clinicToken,
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: srUrl,
          request: { method: 'POST', url: 'ServiceRequest' },
          resource: {
            resourceType: 'ServiceRequest',
            status: 'active',
            intent: 'order',
            priority: 'urgent',
            category: [{ coding: [{ system: 'http://snomed.info/sct', code: '3457005', display: 'Patient referral' }] }, { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }] }],
            extension: [{ url: 'http://huimin.health/fhir/StructureDefinition/referral-direction', valueCode: 'up' }],
            subject,
            requester: { reference: `Organization/${clinic.id}` },
            performer: [{ reference: `Organization/${hospital1.id}` }],
            reasonCode: [{ coding: [{ system: 'http://huimin.health/fhir/CodeSystem/referral-reason', code: 'difficult-diagnosis' }], text: '胸闷待查，需心内科进一步诊治' }],
            note: [{ text: '活动后胸闷一周，血糖控制欠佳。' }],
            authoredOn: new Date().toISOString(),
          },
        },
        { request: { method: 'POST', url: 'Task' }, resource: { resourceType: 'Task', status: 'requested', intent: 'order', priority: 'urgent', focus: { reference: srUrl }, for: subject, requester: { reference: `Organization/${clinic.id}` }, owner: { reference: `Organization/${hospital1.id}` }, authoredOn: new Date().toISOString() } },
      ],
    },
  });
  const taskId = /Task\/([^/]+)/.exec(submitted.entry?.[1]?.response?.location ?? '')?.[1] as string;
  // The workflow routes it (received, with a deadline) before a coordinator sees it.
  await waitFor(async () => (await fhir<{ status: string }>(`Task/${taskId}`)).status === 'received', 30_000, 'the referral to be routed');

  // People: a clinician of hospital 1, its referral coordinator, a supervisor of the bureau.
  const user = (username: string, display: string, role: string, organization: string, extra: Record<string, string> = {}): Promise<unknown> =>
    fhir('/auth/users', { body: { username, display_name: display, role, organization, password: PASSWORD, ...extra } });
  await user(USERS.clinician.username, USERS.clinician.name, 'clinician', `Organization/${hospital1.id}`, { practitioner: `Practitioner/${practitioner.id}` });
  await user(USERS.coordinator.username, USERS.coordinator.name, 'referral-coordinator', `Organization/${hospital1.id}`);
  await user(USERS.supervisor.username, USERS.supervisor.name, 'supervisor', `Organization/${bureau.id}`);
  // Hospital 1 orders HbA1c again: the recognition check finds hospital 2's result of 20 days ago (window 60 days).
  const order = await create<ServiceRequest>(
    {
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      category: [{ coding: [{ system: 'http://snomed.info/sct', code: '108252007', display: 'Laboratory procedure' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4', display: '糖化血红蛋白 HbA1c' }] },
      subject,
      requester: { reference: `Organization/${hospital1.id}` },
      authoredOn: new Date().toISOString(),
    },
    h1,
  );
  await waitFor(
    async () => ((await fhir<{ total?: number }>(`DetectedIssue?code=duplicate-test&patient=Patient/${resident.id}&_total=accurate`)).total ?? 0) > 0,
    30_000,
    'the recognition advisory for the HbA1c order',
  );
  return { resident, stranger, hospital1, hospital2, clinic, taskId, orderId: order.id as string };
}
