/**
 * MLLP over TLS with client certificates, and facilities tied to a certificate subject or a source address, so that
 * MSH-4 alone cannot impersonate a hospital.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MllpClient } from '..';
import { hl7, readAck, startHl7Platform, type Hl7TestPlatform } from './harness';

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate and two client certificates (CN hosp-tls and intruder). */
function certificates(dir: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Huimin test CA');
  for (const name of ['server', 'hosp-tls', 'intruder']) {
    openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? 'localhost' : name}`);
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2');
  }
}

const message = (facility: string, id: string): string =>
  hl7(`MSH|^~\\&|HIS|${facility}|HUIMIN|CITY|20250301100000+0800||ADT^A28^ADT_A05|${id}|P|2.5`, `PID|1||${id}^^^${facility}^MR||TLS^TEST||19800101|F`);

describe('MLLP over TLS', () => {
  let dir: string;
  let p: Hl7TestPlatform;
  const client = (name?: string): Promise<MllpClient> =>
    new MllpClient('127.0.0.1', p.port, {
      ca: readFileSync(path.join(dir, 'ca.crt')),
      servername: 'localhost',
      ...(name ? { cert: readFileSync(path.join(dir, `${name}.crt`)), key: readFileSync(path.join(dir, `${name}.key`)) } : {}),
    }).connect();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'huimin-tls-'));
    certificates(dir);
    p = await startHl7Platform({ tls: { certFile: path.join(dir, 'server.crt'), keyFile: path.join(dir, 'server.key'), caFile: path.join(dir, 'ca.crt') } });
    await p.registerFacility('HOSP-TLS', { tlsSubject: 'hosp-tls' });
    await p.registerFacility('HOSP-ADDR', { allowedAddress: '10.9.9.9' });
  }, 60_000);
  afterAll(async () => {
    await p.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the facility with its own certificate', async () => {
    const c = await client('hosp-tls');
    expect(readAck(await c.send(message('HOSP-TLS', 'TLS-1'))).code).toBe('AA');
    c.close();
  });

  it('refuses (AR) another certificate using the facility\'s MSH-4, and a facility tied to another address', async () => {
    const c = await client('intruder');
    const ack = readAck(await c.send(message('HOSP-TLS', 'TLS-2')));
    expect(ack.code).toBe('AR');
    expect(ack.errors[0]).toMatch(/own client certificate/);
    expect(readAck(await c.send(message('HOSP-ADDR', 'TLS-3'))).errors[0]).toMatch(/may not send from address 127.0.0.1/);
    c.close();
  });

  it('closes a connection without a client certificate', async () => {
    const attempt = client().then(
      (c) => c.send(message('HOSP-TLS', 'TLS-4')).then(() => 'answered', () => 'closed'),
      () => 'closed',
    );
    expect(await attempt).toBe('closed');
  });
});
