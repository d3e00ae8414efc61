/**
 * Sending to a facility's own HL7 system: the facility registers an `Endpoint` (connectionType `hl7v2-mllp`,
 * address `mllp://host:port`, managingOrganization = the facility, status active). A send succeeds when the
 * facility answers MSA-1 AA (or CA); anything else is an error the queue retries.
 *
 * Sent with this module's MllpClient rather than node-hl7-client's Connection: that one keeps its own reconnect
 * loop and in-memory queue (which would retry behind BullMQ's back and lose messages on a restart) and decodes
 * answers with Node's encodings only; here one job is one connection, one message and one ACK, and BullMQ owns
 * retries and the dead-letter list.
 */
import { parseSearchRequest } from '@medplum/core';
import type { Endpoint } from '@medplum/fhirtypes';
import type { FhirRepository } from '../../fhir-server';
import { MllpClient } from '../mllp/server';

export class SendError extends Error {}

export async function facilityEndpoint(repo: FhirRepository, organizationId: string): Promise<{ host: string; port: number }> {
  const page = await repo.search(parseSearchRequest('Endpoint', { organization: `Organization/${organizationId}`, 'connection-type': 'hl7v2-mllp', status: 'active' }), { count: 1, offset: 0 });
  if (page.rows.length === 0) {
    throw new SendError(`Organization/${organizationId} has no active Endpoint with connectionType hl7v2-mllp`);
  }
  const endpoint = JSON.parse(page.rows[0].content) as Endpoint;
  const url = /^mllp:\/\/([^:/]+):(\d+)\/?$/.exec(endpoint.address ?? '');
  if (!url) {
    throw new SendError(`Endpoint/${endpoint.id} address "${endpoint.address}" is not mllp://host:port`);
  }
  return { host: url[1], port: Number(url[2]) };
}

/** Sends one message and returns the answer's text; throws SendError unless the facility accepted it. */
export async function sendMessage(target: { host: string; port: number }, message: string, timeoutMs = 30_000): Promise<string> {
  const client = new MllpClient(target.host, target.port);
  let timer: NodeJS.Timeout | undefined;
  try {
    await client.connect();
    const answer = await Promise.race([
      client.send(Buffer.from(message, 'utf8')),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SendError(`no answer from ${target.host}:${target.port} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    const text = answer.toString('utf8');
    const msa = text.split(/\r|\n/).find((l) => l.startsWith('MSA'));
    const code = msa?.split(msa[3] ?? '|')[1];
    if (code !== 'AA' && code !== 'CA' && !text.includes('|RSP^')) {
      throw new SendError(`${target.host}:${target.port} answered ${code ?? 'without an MSA'}: ${msa ?? text.slice(0, 200)}`);
    }
    return text;
  } finally {
    if (timer) clearTimeout(timer);
    client.close();
  }
}
