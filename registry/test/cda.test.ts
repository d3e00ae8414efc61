/** The CDA header reader and HTML view on their own: encodings, chunk boundaries, hostile XML. */
import iconv from 'iconv-lite';
import { readCdaHeader, renderCdaHtml, cdaTimeToFhir, CdaFormatError } from '..';
import { cdaSample } from './harness';

/** The bytes in pieces of `size`, as the content store hands them out (but much smaller, to cut characters apart). */
async function* pieces(bytes: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) {
    yield bytes.subarray(i, i + size);
  }
}

describe('CDA header', () => {
  it('reads the header of the WS/T 500 sample, whatever the chunk boundaries', async () => {
    for (const size of [7, 64, 1 << 20]) {
      const header = await readCdaHeader(pieces(Buffer.from(cdaSample()), size));
      expect(header).toMatchObject({
        realmCode: 'CN',
        id: { root: '2.16.156.10011.1.1', extension: 'HM-DOC-0001' },
        code: { code: 'C0001', codeSystem: '2.16.156.10011.2.4' },
        title: '病历概要',
        effectiveTime: '20250314093000',
        confidentialityCode: 'N',
        patientIds: [
          { root: '2.16.156.10011.1.2', extension: 'HR340104000001' },
          { root: '2.16.156.10011.1.3', extension: '340104198001011234' },
        ],
        patientName: '测试患者',
        authorName: '王医生',
        authorOrganization: { ids: [{ root: '2.16.156.10011.1.5', extension: 'HM-HOSP-A' }], name: '惠民市第一人民医院（虚构）' },
        custodian: { name: '惠民市第一人民医院（虚构）' },
        relatedDocuments: [],
      });
    }
  });

  it('decodes a document in the encoding its declaration names (GB18030)', async () => {
    const xml = cdaSample().replace('encoding="UTF-8"', 'encoding="GB18030"');
    const header = await readCdaHeader(pieces(iconv.encode(xml, 'gb18030'), 5));
    expect(header.title).toBe('病历概要');
    expect(header.patientName).toBe('测试患者');
  });

  it('refuses documents with a DOCTYPE (no external or internal entities are ever expanded)', async () => {
    const hostile = cdaSample().replace('<ClinicalDocument', '<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<ClinicalDocument').replace('<title>病历概要</title>', '<title>&xxe;</title>');
    await expect(readCdaHeader(pieces(Buffer.from(hostile), 1 << 20))).rejects.toThrow(/DOCTYPE declaration/);
    await expect(readCdaHeader(pieces(Buffer.from(hostile), 1 << 20))).rejects.toThrow(CdaFormatError);
  });

  it('converts CDA times to FHIR, in China\'s time zone unless one is given', () => {
    expect(cdaTimeToFhir('20250314093000')).toBe('2025-03-14T09:30:00+08:00');
    expect(cdaTimeToFhir('202503140930+0000')).toBe('2025-03-14T09:30:00+00:00');
    expect(cdaTimeToFhir('20250314')).toBe('2025-03-14');
    expect(cdaTimeToFhir('2025-03-14')).toBeUndefined();
  });
});

describe('CDA HTML view', () => {
  it('streams the page piece by piece and escapes text', async () => {
    const parts: string[] = [];
    for await (const part of renderCdaHtml(pieces(Buffer.from(cdaSample({ '高血压病史': '&lt;script&gt;alert(1)&lt;/script&gt;<script>alert(2)</script>高血压病史' })), 256))) {
      parts.push(part);
    }
    expect(parts.length).toBeGreaterThan(3);
    const html = parts.join('');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;alert(2)高血压病史');
    expect(html).not.toContain('<script>');
    expect(html).toContain('<tr><th>文档类型 Type</th><td>C0001 病历概要</td></tr>');
    expect(html.trim().endsWith('</body></html>')).toBe(true);
  });
});
