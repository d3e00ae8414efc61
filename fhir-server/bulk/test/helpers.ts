/** Bulk export as a client does it: kick-off, poll until done, download the manifest's files. */
import request from 'supertest';
import type { TestServer } from '../../../test/server';

export interface Manifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: boolean;
  output: Array<{ type: string; url: string; count: number }>;
  error: Array<{ type: string; url: string; count: number }>;
  deleted?: Array<{ type: string; url: string; count: number }>;
}

/** The path and query of an absolute URL of the test server (supertest takes paths). */
export const pathOf = (url: string): string => {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
};

export class BulkClient {
  constructor(
    private readonly server: TestServer,
    readonly token: string,
  ) {}

  kickOff(path: string, headers: Record<string, string> = { Prefer: 'respond-async' }) {
    let req = request(this.server.rawApp).get(path).set('Authorization', `Bearer ${this.token}`).set('Accept', 'application/fhir+json');
    for (const [name, value] of Object.entries(headers)) {
      req = req.set(name, value);
    }
    return req;
  }

  kickOffPost(path: string, body: object) {
    return request(this.server.rawApp)
      .post(path)
      .set('Authorization', `Bearer ${this.token}`)
      .set('Accept', 'application/fhir+json')
      .set('Prefer', 'respond-async')
      .set('Content-Type', 'application/fhir+json')
      .send(body);
  }

  get(url: string) {
    return request(this.server.rawApp).get(pathOf(url)).set('Authorization', `Bearer ${this.token}`);
  }

  delete(url: string) {
    return request(this.server.rawApp).delete(pathOf(url)).set('Authorization', `Bearer ${this.token}`);
  }

  /** Waits for this process's worker, then polls once: the export is done by then. */
  async manifest(pollUrl: string): Promise<Manifest> {
    await this.server.bulkExport.idle();
    const res = await this.get(pollUrl);
    if (res.status !== 200) {
      throw new Error(`poll answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    return JSON.parse(res.text) as Manifest;
  }

  /** Kick-off, run, manifest. */
  async export(path: string): Promise<Manifest> {
    const res = await this.kickOff(path);
    if (res.status !== 202) {
      throw new Error(`kick-off answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    return this.manifest(res.headers['content-location']);
  }

  /** The resources of a file, parsed line by line. */
  async lines(url: string): Promise<Array<{ resourceType: string; id: string; [k: string]: unknown }>> {
    const res = await this.get(url).buffer(true).parse((r, cb) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (chunk: string) => (text += chunk));
      r.on('end', () => cb(null, text));
    });
    if (res.status !== 200) {
      throw new Error(`file answered ${res.status}`);
    }
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+ndjson/);
    const text = res.body as string;
    expect(text.endsWith('\n')).toBe(true);
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
  }

  /** Every exported resource as `Type/id`, sorted, from all output files. */
  async exported(manifest: Manifest): Promise<string[]> {
    const all: string[] = [];
    for (const out of manifest.output) {
      const lines = await this.lines(out.url);
      expect(lines).toHaveLength(out.count);
      lines.forEach((r) => expect(r.resourceType).toBe(out.type));
      all.push(...lines.map((r) => `${r.resourceType}/${r.id}`));
    }
    return all.sort();
  }
}
