/** The ORU^R01 both HL7 benchmarks send (bench/hl7.ts end to end, bench/hl7-cost.ts in process): one OBR, six numeric OBX. */
const TESTS = [
  ['GLU', 'Glucose', '5.6', 'mmol/L', '3.9-6.1'],
  ['K', 'Potassium', '4.1', 'mmol/L', '3.5-5.3'],
  ['NA', 'Sodium', '140', 'mmol/L', '137-147'],
  ['CREA', 'Creatinine', '78', 'umol/L', '57-111'],
  ['ALT', 'ALT', '22', 'U/L', '9-50'],
  ['HGB', 'Haemoglobin', '138', 'g/L', '130-175'],
];

/** `controlId` is MSH-10 and names the order numbers (PL-/FL-), so that each message is a new report. */
export function oruMessage(controlId: string, n: number, facility: string, patient: number): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|LIS|${facility}|HUIMIN|CITY|20250301100000+0800||ORU^R01^ORU_R01|${controlId}|P|2.5.1|||||CHN|UNICODE UTF-8`,
      `PID|1||P${patient}^^^${facility}^MR||张^伟${patient}||19800101|M`,
      `OBR|1|PL-${n}|FL-${n}|CHEM^生化^L|||20250301080000`,
      ...TESTS.map(([code, name, value, unit, range], i) => `OBX|${i + 1}|NM|${code}^${name}^L||${value}|${unit}|${range}|N|||F`),
    ].join('\r') + '\r',
    'utf8',
  );
}
