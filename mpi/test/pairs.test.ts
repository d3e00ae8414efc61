/**
 * The proof table: pairs of residents' records with the decision the index must reach, and the national
 * identifier rules (GB 11643 check character, 15-digit upgrade, birth date and sex from the number).
 */
import type { Patient } from '@medplum/fhirtypes';
import {
  compareRecords,
  decisionOf,
  demographicsOf,
  normaliseNationalId,
  parseResidentId,
  parseHealthCard,
  residentIdCheckCharacter,
  RESIDENT_ID_SYSTEM,
  HEALTH_CARD_SYSTEM,
  nationalIdKindOf,
  registerNationalIdAliases,
} from '..';

/** A valid 18-character number from its first 17 digits. */
const rid = (first17: string): string => first17 + residentIdCheckCharacter(first17);

function patient(p: { family?: string; given?: string; text?: string; birthDate?: string; gender?: Patient['gender']; phone?: string; address?: string; ids?: Array<[string, string]> }): Patient {
  return {
    resourceType: 'Patient',
    identifier: (p.ids ?? []).map(([system, value]) => ({ system, value })),
    name: p.text ? [{ text: p.text }] : [{ family: p.family, given: p.given ? [p.given] : undefined }],
    ...(p.birthDate ? { birthDate: p.birthDate } : {}),
    ...(p.gender ? { gender: p.gender } : {}),
    ...(p.phone ? { telecom: [{ system: 'phone', value: p.phone }] } : {}),
    ...(p.address ? { address: [{ text: p.address }] } : {}),
  };
}

const ZHANG = rid('34010419800101123');
const ZHANG_15 = '340104800101123';
const HOME = '安徽省合肥市包河区芜湖路100号';

const PAIRS: Array<{ case: string; a: Patient; b: Patient; expected: 'link' | 'review' | 'no-link' }> = [
  {
    case: 'the same resident ID number, other demographics missing',
    a: patient({ family: '张', given: '伟', ids: [[RESIDENT_ID_SYSTEM, ZHANG]] }),
    b: patient({ text: 'ZHANG Wei', ids: [[RESIDENT_ID_SYSTEM, ZHANG]] }),
    expected: 'link',
  },
  {
    case: 'a 15-digit and an 18-digit ID number of the same person',
    a: patient({ family: '张', given: '伟', ids: [[RESIDENT_ID_SYSTEM, (normaliseNationalId('resident-id', ZHANG_15) as { identifier: { value: string } }).identifier.value]] }),
    b: patient({ family: '张', given: '伟', ids: [[RESIDENT_ID_SYSTEM, ZHANG]] }),
    expected: 'link',
  },
  {
    case: 'the HL7 China OID and the NHC OID for the same number',
    a: patient({ family: '张', given: '伟', ids: [['urn:oid:2.16.840.1.113883.2.23.1.9.1', ZHANG]] }),
    b: patient({ family: '张', given: '伟', ids: [[RESIDENT_ID_SYSTEM, ZHANG]] }),
    expected: 'link',
  },
  {
    case: 'twins with the same address and phone, different ID numbers',
    a: patient({ family: '李', given: '一鸣', birthDate: '2015-06-01', gender: 'male', phone: '13900000001', address: HOME, ids: [[RESIDENT_ID_SYSTEM, rid('34010420150601003')]] }),
    b: patient({ family: '李', given: '一凡', birthDate: '2015-06-01', gender: 'male', phone: '13900000001', address: HOME, ids: [[RESIDENT_ID_SYSTEM, rid('34010420150601005')]] }),
    expected: 'no-link',
  },
  {
    case: 'twins with the same address and phone, no ID numbers',
    a: patient({ family: '李', given: '一鸣', birthDate: '2015-06-01', gender: 'male', phone: '13900000001', address: HOME }),
    b: patient({ family: '李', given: '一凡', birthDate: '2015-06-01', gender: 'male', phone: '13900000001', address: HOME }),
    expected: 'no-link',
  },
  {
    case: 'a homophone typing error (伟/玮) with the same birth date, sex and phone',
    a: patient({ family: '王', given: '伟', birthDate: '1975-03-08', gender: 'male', phone: '+86 138 0000 1111' }),
    b: patient({ family: '王', given: '玮', birthDate: '1975-03-08', gender: 'male', phone: '13800001111' }),
    expected: 'link',
  },
  {
    case: 'a mistyped birth date digit, same name, sex, phone and address',
    a: patient({ family: '陈', given: '静', birthDate: '1988-11-23', gender: 'female', phone: '13611112222', address: HOME }),
    b: patient({ family: '陈', given: '静', birthDate: '1988-11-28', gender: 'female', phone: '13611112222', address: HOME }),
    expected: 'link',
  },
  {
    case: 'swapped family and given name, same birth date, sex and address',
    a: patient({ family: '刘', given: '洋', birthDate: '1990-02-14', gender: 'female', address: HOME }),
    b: patient({ family: '洋', given: '刘', birthDate: '1990-02-14', gender: 'female', address: HOME }),
    expected: 'link',
  },
  {
    case: 'a Chinese name and its pinyin in swapped (Western) order, same birth date, sex and phone',
    a: patient({ family: '刘', given: '洋', birthDate: '1990-02-14', gender: 'female', phone: '13512345678' }),
    b: patient({ text: 'Yang Liu', birthDate: '1990-02-14', gender: 'female', phone: '13512345678' }),
    expected: 'link',
  },
  {
    case: 'the same name, birth date and sex, nothing else known',
    a: patient({ family: '张', given: '伟', birthDate: '1980-01-01', gender: 'male' }),
    b: patient({ family: '张', given: '伟', birthDate: '1980-01-01', gender: 'male' }),
    expected: 'review',
  },
  {
    case: 'the same name and birth date but different people (other phone and address)',
    a: patient({ family: '张', given: '伟', birthDate: '1980-01-01', gender: 'male', phone: '13800000001', address: HOME }),
    b: patient({ family: '张', given: '伟', birthDate: '1980-01-01', gender: 'male', phone: '13700000002', address: '安徽省芜湖市镜湖区中山路8号' }),
    expected: 'no-link',
  },
  {
    case: 'same name and birth date, different sex',
    a: patient({ family: '周', given: '敏', birthDate: '1970-07-07', gender: 'male', phone: '13800000003' }),
    b: patient({ family: '周', given: '敏', birthDate: '1970-07-07', gender: 'female', phone: '13800000003' }),
    expected: 'no-link',
  },
  {
    case: 'birth date and sex read from the ID number of one record only',
    a: patient({ family: '赵', given: '磊', phone: '13300000009', ids: [[RESIDENT_ID_SYSTEM, rid('34010219791212001')]] }),
    b: patient({ family: '赵', given: '磊', birthDate: '1979-12-12', gender: 'male', phone: '13300000009' }),
    expected: 'link',
  },
];

describe('pairs of residents: the decision the index reaches', () => {
  it.each(PAIRS)('$case → $expected', ({ a, b, expected }) => {
    const result = compareRecords(demographicsOf(a), demographicsOf(b));
    expect({ decision: decisionOf(result), evidence: result.evidence.map((e) => e.outcome) }).toEqual({ decision: expected, evidence: expect.any(Array) });
    // Symmetric: the order in which the records arrive changes nothing.
    expect(decisionOf(compareRecords(demographicsOf(b), demographicsOf(a)))).toBe(expected);
  });
});

describe('national identifiers', () => {
  it('checks the GB 11643 check character and explains a wrong one', () => {
    expect(parseResidentId('11010519491231002X')).toMatchObject({ ok: true, id: { birthDate: '1949-12-31', gender: 'female', addressCode: '110105' } });
    const wrong = parseResidentId('110105194912310021');
    expect(wrong).toEqual({ ok: false, error: expect.stringContaining('invalid check character') });
    expect(!wrong.ok && wrong.error).toContain('gives X, not 1');
    expect(parseResidentId('12345')).toMatchObject({ ok: false });
    expect(parseResidentId(rid('34010419801301123'))).toMatchObject({ ok: false, error: expect.stringContaining('not a date') });
  });

  it('upgrades a 15-digit first-generation number to 18 characters', () => {
    const parsed = parseResidentId(ZHANG_15);
    expect(parsed).toMatchObject({ ok: true, id: { value: ZHANG, legacy: ZHANG_15, birthDate: '1980-01-01', gender: 'male' } });
    const n = normaliseNationalId('resident-id', ZHANG_15);
    expect(n).toMatchObject({ identifier: { system: RESIDENT_ID_SYSTEM, value: ZHANG, use: 'official' }, legacy: { value: ZHANG_15, use: 'old' } });
  });

  it('only warns about an address code in no known province', () => {
    const parsed = parseResidentId(rid('99010419800101123'));
    expect(parsed).toMatchObject({ ok: true, id: { warnings: [expect.stringContaining('address code 990104')] } });
  });

  it('accepts the 64 hexadecimal characters of an electronic health card', () => {
    expect(parseHealthCard('ab'.repeat(32))).toEqual({ ok: true, id: 'AB'.repeat(32) });
    expect(parseHealthCard('zz!')).toMatchObject({ ok: false });
    expect(normaliseNationalId('health-card', 'ab'.repeat(32))).toMatchObject({ identifier: { system: HEALTH_CARD_SYSTEM } });
  });

  it('normalises aliases: NHC OIDs, HL7 China OIDs, names and configured ones', () => {
    expect(nationalIdKindOf('urn:oid:2.16.156.10011.1.3')).toBe('resident-id');
    expect(nationalIdKindOf('2.16.840.1.113883.2.23.1.9.2')).toBe('social-security');
    expect(nationalIdKindOf('urn:oid:1.2.3.4.5')).toBeUndefined();
    registerNationalIdAliases('1.2.3.4.5=health-card');
    expect(nationalIdKindOf('urn:oid:1.2.3.4.5')).toBe('health-card');
    expect(() => registerNationalIdAliases('1.2.3=passport')).toThrow(/resident-id, <oid>=health-card/);
  });
});
