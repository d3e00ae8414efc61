/**
 * The rules shipped with the platform, with their parameters as published. They are written into `sv_rule` as
 * version 1 on first start (SUPERVISION_RULES_FILE may override parameters before that); afterwards supervisors
 * change them at runtime through `$supervision-rule-update`, and every change is a new version.
 *
 * A rule's `kind` names the SQL evaluator that applies it (rules/kinds.ts): kinds are code, rules are data, so a
 * supervisor may also add a second rule of an existing kind with other parameters (another age restriction list).
 */

export type RuleCategory = 'policy' | 'management' | 'medical';
export type RuleSeverity = 'high' | 'moderate' | 'low';

export type RuleKind =
  | 'prescription-days-supply'
  | 'prescription-drug-count'
  | 'long-term-prescription'
  | 'prescription-validity'
  | 'duplicate-drug'
  | 'duplicate-test'
  | 'drug-restriction'
  | 'procedure-restriction'
  | 'readmission'
  | 'length-of-stay'
  | 'antimicrobial-indicators'
  | 'referral-deadline'
  | 'silent-feed'
  | 'audit-reading-without-care'
  | 'audit-break-glass'
  | 'audit-read-volume';

export const RULE_KINDS: readonly RuleKind[] = [
  'prescription-days-supply',
  'prescription-drug-count',
  'long-term-prescription',
  'prescription-validity',
  'duplicate-drug',
  'duplicate-test',
  'drug-restriction',
  'procedure-restriction',
  'readmission',
  'length-of-stay',
  'antimicrobial-indicators',
  'referral-deadline',
  'silent-feed',
  'audit-reading-without-care',
  'audit-break-glass',
  'audit-read-volume',
];

export type RuleParams = Record<string, unknown>;

export interface RuleDefinition {
  id: string;
  kind: RuleKind;
  category: RuleCategory;
  title: string;
  severity: RuleSeverity;
  params: RuleParams;
  legalBasis: string;
}

/** A version of a rule as stored. */
export interface Rule extends RuleDefinition {
  version: number;
  status: 'active' | 'retired';
  effectiveStart?: string;
  effectiveEnd?: string;
  changedBy: string;
  changedAt: string;
}

const PRESCRIPTION_RULES = '《处方管理办法》(卫生部令第53号)';
const LONG_TERM_RULES = '《长期处方管理规范（试行）》(国卫办医发〔2021〕17号)';
const ANTIMICROBIAL_RULES = '《抗菌药物临床应用管理办法》(卫生部令第84号)';

/** WHO ATC prefixes of the drug classes the rules name; ingredients are ATC level-5 codes. */
export const ANTIMICROBIAL_ATC = ['J01', 'J02', 'J04'];

export const SHIPPED_RULES: readonly RuleDefinition[] = [
  {
    id: 'RX-DAYS-SUPPLY',
    kind: 'prescription-days-supply',
    category: 'policy',
    title: "Prescription beyond 7 days' supply (outpatient) or 3 days (emergency) without a stated reason",
    severity: 'moderate',
    params: { outpatientMaxDays: 7, emergencyMaxDays: 3 },
    legalBasis: `${PRESCRIPTION_RULES} 第十八条：处方一般不得超过7日用量；急诊处方一般不得超过3日用量；对于某些慢性病、老年病或特殊情况，处方用量可适当延长，但医师应当注明理由。`,
  },
  {
    id: 'RX-DRUG-COUNT',
    kind: 'prescription-drug-count',
    category: 'policy',
    title: 'More than 5 drugs on one prescription',
    severity: 'low',
    params: { maxDrugs: 5 },
    legalBasis: `${PRESCRIPTION_RULES} 第六条：开具西药、中成药处方，每一种药品应当另起一行，每张处方不得超过5种药品。`,
  },
  {
    id: 'RX-LONG-TERM',
    kind: 'long-term-prescription',
    category: 'policy',
    title: 'Long-term prescription over 4 weeks (12 for stable chronic patients) or of an excluded drug class',
    severity: 'moderate',
    params: {
      maxWeeks: 4,
      stableChronicMaxWeeks: 12,
      excludedClasses: { narcotic: ['N02A', 'N01AH'], psychotropic: ['N05BA', 'N05CD', 'N05CF', 'N06BA'], antimicrobial: ANTIMICROBIAL_ATC },
      tuberculosisAtc: ['J04A'],
      tuberculosisDiagnoses: ['A15', 'A16', 'A17', 'A18', 'A19'],
    },
    legalBasis: `${LONG_TERM_RULES} 第十六条：长期处方的处方量一般在4周内；根据慢性病特点，病情稳定的患者适当延长，最长不超过12周。第十三条：医疗用毒性药品、放射性药品、易制毒药品、麻醉药品、第一类和第二类精神药品、抗微生物药物（治疗结核等慢性细菌真菌感染性疾病的药物除外）……不得用于长期处方。`,
  },
  {
    id: 'RX-VALIDITY',
    kind: 'prescription-validity',
    category: 'policy',
    title: 'Prescription valid beyond 3 days',
    severity: 'low',
    params: { maxValidityDays: 3 },
    legalBasis: `${PRESCRIPTION_RULES} 第十八条：处方开具当日有效。特殊情况下需延长有效期的，由开具处方的医师注明有效期限，但有效期最长不得超过3天。`,
  },
  {
    id: 'RX-DUPLICATE-DRUG',
    kind: 'duplicate-drug',
    category: 'medical',
    title: 'Same ingredient prescribed while a prescription of it is active at another institution',
    severity: 'moderate',
    params: { statuses: ['active', 'completed'] },
    legalBasis: '《医疗机构处方审核规范》(国卫办医发〔2018〕14号) 第十五条：重复给药。',
  },
  {
    id: 'TEST-DUPLICATE',
    kind: 'duplicate-test',
    category: 'management',
    title: "Test repeated within the item's recognition window without a recorded reason",
    severity: 'moderate',
    // Windows by code when the recognition module gives none (see ValidityWindowSource); `defaultDays` for the rest (0: no window).
    params: {
      windows: [
        { system: 'http://loinc.org', code: '718-7', days: 7 },
        { system: 'http://loinc.org', code: '2345-7', days: 7 },
        { system: 'http://loinc.org', code: '4548-4', days: 90 },
      ],
      defaultDays: 0,
    },
    legalBasis: '《医疗机构检查检验结果互认管理办法》(国卫医发〔2022〕6号) 第二十一条：对符合互认条件的项目，医疗机构不得重复检查检验（因病情变化等确需复查的应当说明理由）。',
  },
  {
    id: 'DRUG-SEX-AGE',
    kind: 'drug-restriction',
    category: 'medical',
    title: 'Drug restricted by sex or age prescribed outside its restriction',
    severity: 'high',
    params: {
      restrictions: [
        { atc: 'G03AA', sex: 'female', label: 'hormonal contraceptives' },
        { atc: 'G04CB', sex: 'male', label: 'testosterone-5-alpha reductase inhibitors' },
        { atc: 'J01MA', minAge: 18, label: 'fluoroquinolones' },
        { atc: 'J01AA', minAge: 8, label: 'tetracyclines' },
      ],
    },
    legalBasis: '药品说明书【禁忌】【儿童用药】；《医疗机构处方审核规范》第十五条：特殊人群（儿童、妊娠期妇女等）用药禁忌、性别禁忌。',
  },
  {
    id: 'PROC-SEX-AGE',
    kind: 'procedure-restriction',
    category: 'medical',
    title: 'Procedure restricted by sex or age ordered outside its restriction',
    severity: 'high',
    params: {
      restrictions: [
        { system: 'http://snomed.info/sct', code: '236886002', sex: 'female', label: 'hysterectomy' },
        { system: 'http://snomed.info/sct', code: '90470006', sex: 'male', label: 'prostatectomy' },
        { system: 'http://snomed.info/sct', code: '71651007', sex: 'female', minAge: 35, label: 'mammography screening' },
      ],
    },
    legalBasis: '《医疗保障基金使用监督管理条例》第十五条：不得违反诊疗规范过度诊疗、过度检查；医保限定性别、年龄的诊疗项目。',
  },
  {
    id: 'READMISSION-31',
    kind: 'readmission',
    category: 'medical',
    title: 'Unplanned readmission within 31 days for the same principal diagnosis',
    severity: 'moderate',
    params: { days: 31, diagnosisChars: 4, excludePlanned: true, excludedDiagnoses: ['Z51'] },
    legalBasis: '《三级医院评审标准（2022年版）》第二部分 医疗质量安全指标：住院患者出院后31天内非预期再住院率（同一医院、同一患者、同一疾病，主要诊断ICD-10前4位相同，排除放化疗Z51）。',
  },
  {
    id: 'SPLIT-ADMISSION-15',
    kind: 'readmission',
    category: 'management',
    title: 'Split admission: re-admission within 15 days for the same disease',
    severity: 'moderate',
    params: { days: 15, diagnosisChars: 4, excludePlanned: false, excludedDiagnoses: ['Z51'] },
    legalBasis: '《医疗保障基金使用监督管理条例》第十五条；国家医保局“分解住院”认定：患者出院后15日内以同一疾病再次入院。',
  },
  {
    id: 'LOS-30',
    kind: 'length-of-stay',
    category: 'management',
    title: 'Length of stay over 30 days',
    severity: 'low',
    params: { maxDays: 30 },
    legalBasis: '《三级医院评审标准（2022年版）》：住院天数超过30天的患者管理与评价。',
  },
  {
    id: 'ANTIMICROBIAL-INDICATORS',
    kind: 'antimicrobial-indicators',
    category: 'management',
    title: 'Antimicrobial use indicators of an institution above the bureau thresholds',
    severity: 'moderate',
    params: {
      outpatientRateMax: 0.2,
      inpatientRateMax: 0.6,
      dddPer100BedDaysMax: 40,
      antimicrobialAtc: ANTIMICROBIAL_ATC,
      // WHO DDD in grams of the ingredients most used (ATC/DDD Index); extend at runtime.
      ddd: { J01CA04: 1.5, J01CR02: 1.5, J01DC02: 1.5, J01DD04: 2, J01FA10: 0.3, J01MA12: 0.5, J01MA14: 0.4, J01XD01: 1.5, J02AC01: 0.2 },
    },
    legalBasis: `${ANTIMICROBIAL_RULES}；《关于持续做好抗菌药物临床应用管理工作的通知》：综合医院门诊患者抗菌药物处方比例不超过20%，住院患者抗菌药物使用率不超过60%，抗菌药物使用强度控制在每百人天40DDDs以下。`,
  },
  {
    id: 'REFERRAL-DEADLINE',
    kind: 'referral-deadline',
    category: 'management',
    title: "Referral not answered by the receiver's deadline",
    severity: 'moderate',
    params: { graceMinutes: 0 },
    legalBasis: '《医疗联合体管理办法（试行）》(国卫医发〔2020〕13号) 第二十九条：畅通双向转诊通道，按时限接收转诊患者。',
  },
  {
    id: 'FEED-SILENT',
    kind: 'silent-feed',
    category: 'management',
    title: "An institution's data feed has gone silent",
    severity: 'high',
    params: { silentHours: 24 },
    legalBasis: '《全国医院信息化建设标准与规范》；区域全民健康信息平台接入要求：医疗机构数据实时（至迟每日）上传，接入率100%。',
  },
  {
    id: 'AUDIT-NO-CARE',
    kind: 'audit-reading-without-care',
    category: 'policy',
    title: 'A clinician read the records of many patients without a care relationship',
    severity: 'high',
    params: { maxPatientsPerDay: 20 },
    legalBasis: '《医疗机构病历管理规定》第十七条；《个人信息保护法》第二十八条：敏感个人信息仅在特定目的和充分必要时处理。',
  },
  {
    id: 'AUDIT-BREAK-GLASS',
    kind: 'audit-break-glass',
    category: 'policy',
    title: 'Break-the-glass access to a patient record',
    severity: 'moderate',
    params: {},
    legalBasis: '《个人信息保护法》第二十八条、第五十一条；紧急访问（break-the-glass）须逐例事后审查。',
  },
  {
    id: 'AUDIT-READ-VOLUME',
    kind: 'audit-read-volume',
    category: 'policy',
    title: 'A client read far more than its usual volume',
    severity: 'moderate',
    params: { factor: 5, minReads: 1000, baselineDays: 7 },
    legalBasis: '《数据安全法》第二十七条；《网络安全法》第二十一条：监测、记录网络运行状态、网络安全事件。',
  },
];
