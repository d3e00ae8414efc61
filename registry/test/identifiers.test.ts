import { checkDivisionCode, checkResidentId, checkUscc, usccCheckCharacter } from '..';

describe('GB 32100 unified social credit code', () => {
  it('accepts codes whose check character is right', () => {
    expect(checkUscc('91350100M000100Y43')).toBeUndefined();
    expect(checkUscc('91110000802100433B')).toBeUndefined();
    expect(usccCheckCharacter('12340100485960578')).toBe('H');
    expect(checkUscc('12340100485960578H')).toBeUndefined();
  });

  it('refuses a mistyped character with the check character it expected', () => {
    expect(checkUscc('91350100M000100Y44')).toMatch(/fails the GB 32100 check: its last character is "4" but the first 17 give "3"/);
  });

  it('refuses wrong length, forbidden letters, unknown authorities and divisions', () => {
    expect(checkUscc('91350100M000100Y4')).toMatch(/18 characters/);
    expect(checkUscc('91350100M00010OY43')).toMatch(/no I, O, S, V, Z/);
    expect(checkUscc('B1350100M000100Y43')).toMatch(/no registration authority/);
    expect(checkUscc('91990100M000100Y43')).toMatch(/administrative division/);
  });
});

describe('GB 11643 resident ID and GB/T 2260 divisions', () => {
  it('checks the ISO 7064 MOD 11-2 check digit', () => {
    expect(checkResidentId('340104198001011234')).toBeUndefined();
    expect(checkResidentId('34010419900202789X')).toBeUndefined();
    expect(checkResidentId('340104198001011235')).toMatch(/should be "4"/);
  });

  it('checks division codes', () => {
    expect(checkDivisionCode('340104')).toBeUndefined();
    expect(checkDivisionCode('990104')).toMatch(/province/);
    expect(checkDivisionCode('3401')).toMatch(/six digits/);
  });
});
