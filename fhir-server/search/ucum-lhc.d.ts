/** The part of @lhncbc/ucum-lhc (which ships no types) that search/ucum.ts uses. */
declare module '@lhncbc/ucum-lhc' {
  export interface BaseUnitsResult {
    status: 'succeeded' | 'invalid' | 'failed' | 'error';
    msg: string[];
    magnitude?: number;
    unitToExp?: Record<string, number>;
  }
  export class UcumLhcUtils {
    static getInstance(): UcumLhcUtils;
    convertToBaseUnits(fromUnit: string, fromVal: number): BaseUnitsResult;
  }
}
