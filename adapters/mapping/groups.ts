/**
 * Splitting a message into its groups by segment order, the way the HL7 message structures nest them: the patient
 * (PID, PV1), then orders or results (ORC/OBR with their OBX and NTE). Segments a mapping does not use (Z-segments,
 * vendor extras) are skipped here, not lost: the raw message is kept whole in the message store.
 */
import type { Hl7Message, Segment } from '../hl7/message';

export interface OrderGroup {
  pid?: Segment;
  pv1?: Segment;
  orc?: Segment;
  obr?: Segment;
  /** NTEs directly after the ORC/OBR. */
  notes: Segment[];
  /**
   * Each OBX with its NTEs, and the SPM it follows in the group (v2.5+ ORU_R01 SPECIMEN group: an OBX after an SPM
   * is about that specimen).
   */
  results: Array<{ obx: Segment; notes: Segment[]; specimen?: Segment }>;
  /** SPM segments of the group, in order (v2.5+). */
  specimens: Segment[];
  /** Any other segments inside the group, in order (RXA, RXR, TXA…). */
  others: Segment[];
}

/** Groups of ORC/OBR with what follows them; a new PID starts a new patient. */
export function orderGroups(message: Hl7Message): OrderGroup[] {
  const groups: OrderGroup[] = [];
  let pid: Segment | undefined;
  let pv1: Segment | undefined;
  let current: OrderGroup | undefined;
  let lastOrc: Segment | undefined;
  const start = (orc: Segment | undefined, obr: Segment | undefined): OrderGroup => {
    current = { pid, pv1, orc, obr, notes: [], results: [], specimens: [], others: [] };
    groups.push(current);
    return current;
  };
  for (const s of message.segments.slice(1)) {
    switch (s.name) {
      case 'PID':
        pid = s;
        pv1 = undefined;
        current = undefined;
        break;
      case 'PV1':
        pv1 = s;
        if (current) current.pv1 = current.pv1 ?? s;
        break;
      case 'ORC':
        lastOrc = s;
        start(s, undefined);
        break;
      case 'OBR':
        // OBX sent between an ORC and its OBR (some senders do) belong to that OBR.
        if (current && !current.obr) current.obr = s;
        else start(current?.orc === lastOrc ? lastOrc : undefined, s);
        break;
      case 'OBX': {
        const group = current ?? start(undefined, undefined);
        group.results.push({ obx: s, notes: [], specimen: group.specimens[group.specimens.length - 1] });
        break;
      }
      case 'SPM':
        if (current) current.specimens.push(s);
        break;
      case 'NTE':
        if (current?.results.length) current.results[current.results.length - 1].notes.push(s);
        else if (current) current.notes.push(s);
        break;
      default:
        current?.others.push(s);
    }
  }
  return groups;
}

export function noteText(nte: Segment): string {
  return nte
    .reps(3)
    .map((r) => r.text())
    .join('\n');
}
