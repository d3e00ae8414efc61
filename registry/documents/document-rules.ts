/**
 * Document sharing's rules on writes (IHE MHD on FHIR R4, Document Recipient side), inside each write's transaction:
 *
 * - Binary: inline `data` (a JSON body, an ITI-65 bundle) moves into the content store, so that every Binary is
 *   stored once by hash and read back as a stream; which Binary uses which content is recorded in the same
 *   transaction (and dropped when the Binary is deleted), for the collector of unused content. A CDA document (application/hl7-cda+xml) has its header read and
 *   checked; one uploaded as raw content on its own (POST /Binary, no securityContext) gets a DocumentReference made
 *   from its header, which becomes the Binary's securityContext.
 * - DocumentReference: metadata a CDA attachment's header gives (subject, type, date, author, custodian, document
 *   id, confidentiality) is filled in where the client left it out, and must agree where the client gave it;
 *   `relatesTo` replaces supersedes the replaced document in the same transaction (ITI-65 replacement).
 *
 * In an ITI-65 bundle a DocumentReference may come before or after its Binary: what one of them learnt is kept for
 * the other in per-transaction state, so whichever comes second does the checking, and a DocumentReference that came
 * first is filled from the header when its Binary arrives (its queued write is revised).
 */
import type { Binary, CodeableConcept, DocumentReference, Identifier, Organization, Patient, Reference, Resource } from '@medplum/fhirtypes';
import { unprocessable, type WriteInterceptor, type WriteSession } from '../../fhir-server';
import { contentRefOf, isIssuedRef, withContentRef, type ChunkedContentStore } from '../content-store';
import { CDA_CONTENT_TYPE, CdaFormatError, cdaTimeToFhir, readCdaHeader, type CdaHeader, type CdaId } from './cda';
import { DOCUMENT_TYPE_OID, DOCUMENT_TYPE_SYSTEM, documentTypeDisplay } from './document-types';

const CONFIDENTIALITY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
/** NHC OID of the resident ID card number (居民身份证号): the identifier to resolve a document's patient by first. */
const RESIDENT_ID_OID = '2.16.156.10011.1.3';

/** What a CDA header says, resolved against the registries: ready to become DocumentReference metadata. */
interface DocumentFacts {
  header: CdaHeader;
  size: number;
  patient?: string;
  type: CodeableConcept;
  date?: string;
  author?: Reference<Organization>;
  custodian?: Reference<Organization>;
  masterIdentifier?: Identifier;
  replaces: string[];
}

/** Per transaction: CDA facts of Binaries written so far, and DocumentReferences waiting for their Binary. */
interface TransactionDocuments {
  facts: Map<string, DocumentFacts>;
  claims: Map<string, DocumentReference>;
}

const perTransaction = new WeakMap<WriteSession, TransactionDocuments>();

function stateOf(session: WriteSession): TransactionDocuments {
  let state = perTransaction.get(session);
  if (!state) {
    state = { facts: new Map(), claims: new Map() };
    perTransaction.set(session, state);
  }
  return state;
}

const isCda = (contentType: string | undefined): boolean => (contentType ?? '').split(';')[0].trim().toLowerCase() === CDA_CONTENT_TYPE;

const problem = (diagnostics: string, expression?: string) =>
  unprocessable([{ severity: 'error', code: 'business-rule', diagnostics, ...(expression ? { expression: [expression] } : {}) }]);

const identifierOf = (id: CdaId): Identifier =>
  id.extension ? { system: `urn:oid:${id.root}`, value: id.extension } : { system: 'urn:ietf:rfc:3986', value: `urn:oid:${id.root}` };

/**
 * The Patient a document is about, by its ID card number first, then its other identifiers. Several hospitals'
 * records (and the master patient index's golden record) may carry one ID card number: the publishing hospital's
 * own record of the patient comes first (each hospital's patient is kept as that hospital sent it), then the golden
 * record (golden: `seealso` links to its sources, no `refer` link of its own), then the one golden record all the
 * matches refer to. Several unrelated records mean the identifier does not decide: the next identifier is tried.
 */
async function resolvePatient(session: WriteSession, ids: CdaId[], publisher: string | undefined): Promise<string | undefined> {
  const ordered = [...ids.filter((i) => i.root === RESIDENT_ID_OID), ...ids.filter((i) => i.root !== RESIDENT_ID_OID)];
  for (const id of ordered) {
    const found = await session.find('Patient', `identifier=${encodeURIComponent(`urn:oid:${id.root}|${id.extension}`)}`, 20);
    if (found.length === 1) {
      return found[0];
    }
    // One at a time: a transaction's connection runs one statement at a time.
    const patients: Patient[] = [];
    for (const candidate of found) {
      const patient = await session.read<Patient>('Patient', candidate);
      if (patient) patients.push(patient);
    }
    const own = publisher ? patients.filter((p) => p.managingOrganization?.reference === publisher) : [];
    if (own.length === 1) {
      return own[0].id;
    }
    const golden = patients.filter((p) => p.link?.some((l) => l.type === 'seealso') && !p.link.some((l) => l.type === 'refer' || l.type === 'replaced-by'));
    if (golden.length === 1) {
      return golden[0].id;
    }
    const referred = new Set(patients.map((p) => p.link?.find((l) => l.type === 'refer')?.other?.reference));
    const [only] = [...referred];
    if (referred.size === 1 && only?.startsWith('Patient/')) {
      return only.slice('Patient/'.length);
    }
  }
  return undefined;
}

/** A registered Organization named by a CDA id (any system with that value as fallback), or a logical reference. */
async function organizationReference(session: WriteSession, org: { ids: CdaId[]; name?: string } | undefined): Promise<Reference<Organization> | undefined> {
  if (!org) {
    return undefined;
  }
  for (const id of org.ids.filter((i) => i.extension)) {
    for (const query of [`identifier=${encodeURIComponent(`urn:oid:${id.root}|${id.extension}`)}`, `identifier=${encodeURIComponent(id.extension as string)}`]) {
      const found = await session.find('Organization', query);
      if (found.length === 1) {
        return { reference: `Organization/${found[0]}`, ...(org.name ? { display: org.name } : {}) };
      }
    }
  }
  const first = org.ids[0];
  return { ...(first ? { identifier: identifierOf(first) } : {}), ...(org.name ? { display: org.name } : {}) };
}

/** The header checked against WS/T 500 and resolved against the registries. */
async function factsOf(session: WriteSession, header: CdaHeader, size: number, where: string): Promise<DocumentFacts> {
  if (header.realmCode !== 'CN') {
    throw problem(`${where}: ClinicalDocument/realmCode is "${header.realmCode ?? '(missing)'}"; Chinese shared documents (WS/T 500) have realmCode CN`);
  }
  const code = header.code?.code;
  const display = code ? documentTypeDisplay(code) : undefined;
  if (!code || !display) {
    throw problem(`${where}: ClinicalDocument/code "${code ?? '(missing)'}" is not a WS/T 500 shared document type (C0001–C0053, code system ${DOCUMENT_TYPE_OID})`);
  }
  if (header.code?.codeSystem && header.code.codeSystem !== DOCUMENT_TYPE_OID) {
    throw problem(`${where}: ClinicalDocument/code has codeSystem ${header.code.codeSystem}; WS/T 500 document types are in ${DOCUMENT_TYPE_OID}`);
  }
  if (header.patientIds.length === 0) {
    throw problem(`${where}: the document names no patient identifier (recordTarget/patientRole/id or patient/id with an extension)`);
  }
  const author = await organizationReference(session, header.authorOrganization);
  const custodian = await organizationReference(session, header.custodian);
  const patient = await resolvePatient(session, header.patientIds, author?.reference ?? custodian?.reference);
  if (!patient) {
    const ids = header.patientIds.map((i) => `urn:oid:${i.root}|${i.extension}`).join(', ');
    throw problem(`${where}: no registered Patient is decided by the document's patient identifiers (${ids}): none has them, or several unrelated ones do; register the patient (or link the records) first`);
  }
  const replaces: string[] = [];
  for (const related of header.relatedDocuments.filter((r) => r.typeCode === 'RPLC')) {
    for (const id of related.ids) {
      const found = await session.find('DocumentReference', `identifier=${encodeURIComponent(`${identifierOf(id).system}|${identifierOf(id).value}`)}`);
      if (found.length === 0) {
        throw problem(`${where}: the document replaces (relatedDocument RPLC) document ${id.root}/${id.extension ?? ''}, which is not registered here`);
      }
      replaces.push(...found);
    }
  }
  const date = cdaTimeToFhir(header.effectiveTime);
  return {
    header,
    size,
    patient,
    type: { coding: [{ system: DOCUMENT_TYPE_SYSTEM, code, display }], text: header.title ?? display },
    // DocumentReference.date is an instant: only a time to the second qualifies.
    date: date && date.length > 10 ? date : undefined,
    author,
    custodian,
    masterIdentifier: header.id ? identifierOf(header.id) : undefined,
    replaces,
  };
}

/** A DocumentReference for a CDA that came without one (raw upload): everything from its header. */
function documentReferenceFrom(facts: DocumentFacts, binaryId: string): DocumentReference {
  const { header } = facts;
  return {
    resourceType: 'DocumentReference',
    ...(facts.masterIdentifier ? { masterIdentifier: facts.masterIdentifier } : {}),
    status: 'current',
    type: facts.type,
    subject: { reference: `Patient/${facts.patient}` },
    ...(facts.date ? { date: facts.date } : {}),
    ...(facts.author ? { author: [facts.author] } : {}),
    ...(facts.custodian ? { custodian: facts.custodian } : {}),
    ...(facts.replaces.length ? { relatesTo: facts.replaces.map((id) => ({ code: 'replaces' as const, target: { reference: `DocumentReference/${id}` } })) } : {}),
    ...(header.confidentialityCode ? { securityLabel: [{ coding: [{ system: CONFIDENTIALITY_SYSTEM, code: header.confidentialityCode }] }] } : {}),
    content: [{ attachment: { contentType: CDA_CONTENT_TYPE, url: `Binary/${binaryId}`, size: facts.size, ...(header.title ? { title: header.title } : {}) } }],
  };
}

/** The Binary id an attachment url names (`Binary/x`, or an absolute URL ending so), if any. */
function binaryIdOf(url: string | undefined): string | undefined {
  return url ? /(?:^|\/)Binary\/([A-Za-z0-9\-.]{1,64})$/.exec(url)?.[1] : undefined;
}

/**
 * The client's DocumentReference completed from the CDA header's facts: what it left out is filled in, what it
 * gave must agree (the patient and the document type; a mismatch is the classic misfiled document).
 */
function completeFrom(doc: DocumentReference, facts: DocumentFacts, where: string): DocumentReference {
  const subject = doc.subject?.reference;
  if (subject && subject !== `Patient/${facts.patient}`) {
    throw problem(`${where}: DocumentReference.subject is ${subject}, but the CDA document's patient identifiers name Patient/${facts.patient}`, 'DocumentReference.subject');
  }
  const typeCode = facts.type.coding?.[0]?.code;
  const given = doc.type?.coding?.find((c) => c.system === DOCUMENT_TYPE_SYSTEM)?.code;
  if (given && given !== typeCode) {
    throw problem(`${where}: DocumentReference.type is ${given}, but the CDA document is a ${typeCode}`, 'DocumentReference.type');
  }
  const completed: DocumentReference = { ...doc };
  completed.subject ??= { reference: `Patient/${facts.patient}` };
  if (!given) {
    completed.type = { ...doc.type, coding: [...(doc.type?.coding ?? []), ...(facts.type.coding ?? [])], text: doc.type?.text ?? facts.type.text };
  }
  if (!completed.date && facts.date) completed.date = facts.date;
  if (!completed.author?.length && facts.author) completed.author = [facts.author];
  if (!completed.custodian && facts.custodian) completed.custodian = facts.custodian;
  if (!completed.masterIdentifier && facts.masterIdentifier) completed.masterIdentifier = facts.masterIdentifier;
  if (!completed.securityLabel?.length && facts.header.confidentialityCode) {
    completed.securityLabel = [{ coding: [{ system: CONFIDENTIALITY_SYSTEM, code: facts.header.confidentialityCode }] }];
  }
  return completed;
}

export function binaryContentRule(store: ChunkedContentStore): WriteInterceptor {
  return {
    resourceTypes: ['Binary'],
    async beforeWrite(session, write) {
      const input = write.resource as Binary | undefined;
      if (!input) {
        if (write.interaction === 'delete') {
          // Its content may now be used by no Binary: the collector removes it after its grace period.
          await store.release(session.tx, write.id);
        }
        return undefined;
      }
      const where = `Binary/${write.id}`;
      let binary: Binary;
      if (input.data !== undefined) {
        binary = withContentRef(input, await store.storeBytes(session.tx, Buffer.from(input.data, 'base64')));
        await store.use(session.tx, write.id, (contentRefOf(binary) as { hash: string }).hash);
      } else {
        const ref = contentRefOf(input);
        if (!ref) {
          await store.release(session.tx, write.id);
          return undefined;
        }
        const previousRef = write.previous ? contentRefOf(write.previous as Binary) : undefined;
        if (!isIssuedRef(input) && previousRef?.hash !== ref.hash) {
          throw problem(`${where}: a Binary refers to stored content only as uploaded (raw content, or base64 data); the reference to sha256:${ref.hash} was not produced by an upload`, 'Binary.meta.extension');
        }
        const size = await store.use(session.tx, write.id, ref.hash);
        if (size === undefined) {
          throw problem(`${where} refers to stored content sha256:${ref.hash}, which this server does not hold`, 'Binary.meta.extension');
        }
        binary = withContentRef(input, { hash: ref.hash, size });
      }
      const ref = contentRefOf(binary) as { hash: string; size: number };
      const previous = write.previous as Binary | undefined;
      // A document is read when it is filed; a change of the Binary's metadata alone does not file it again.
      if (!isCda(binary.contentType) || (previous && isCda(previous.contentType) && contentRefOf(previous)?.hash === ref.hash)) {
        return binary;
      }
      let header: CdaHeader;
      try {
        header = await readCdaHeader(store.chunks(ref.hash, session.tx), { wholeDocument: true });
      } catch (err) {
        if (err instanceof CdaFormatError) {
          throw problem(`${where}: ${err.message}`);
        }
        throw err;
      }
      const facts = await factsOf(session, header, ref.size, where);
      const state = stateOf(session);
      state.facts.set(write.id, facts);
      const claim = state.claims.get(write.id);
      if (claim) {
        // The DocumentReference came first in this transaction: it must agree with the document, and is filled from
        // it as when the Binary comes first (its write is still queued: the transaction flushes at its end).
        const completed = completeFrom(claim, facts, `DocumentReference/${claim.id} (for ${where})`);
        if (!session.revise(completed)) {
          throw new Error(`DocumentReference/${claim.id} was written before its Binary/${write.id} but is no longer queued in the transaction`);
        }
        state.claims.delete(write.id);
        return binary;
      }
      // A CDA uploaded on its own as raw content: it gets its DocumentReference here.
      if (write.interaction === 'create' && input.data === undefined && !binary.securityContext) {
        const doc = await session.create(documentReferenceFrom(facts, write.id));
        binary.securityContext = { reference: `DocumentReference/${doc.id}` };
      }
      return binary;
    },
  };
}

export function documentReferenceRule(store: ChunkedContentStore): WriteInterceptor {
  return {
    resourceTypes: ['DocumentReference'],
    async beforeWrite(session, write) {
      const input = write.resource as DocumentReference | undefined;
      if (!input || (write.interaction !== 'create' && write.interaction !== 'update' && write.interaction !== 'patch')) {
        return undefined;
      }
      const where = `DocumentReference/${write.id}`;
      let doc: DocumentReference = { ...input, id: write.id };
      const previous = write.previous as DocumentReference | undefined;
      // A status change (superseded, entered-in-error) is not a new filing: the document is not read again.
      const attachmentsChanged = !previous || !sameAttachments(previous, doc);
      const state = stateOf(session);
      for (const content of attachmentsChanged ? (doc.content ?? []) : []) {
        const binaryId = binaryIdOf(content.attachment?.url);
        if (!binaryId) {
          continue;
        }
        let facts = state.facts.get(binaryId);
        if (!facts) {
          const stored = await session.read<Binary>('Binary', binaryId);
          if (!stored) {
            // Its Binary comes later in this transaction: the Binary's rule checks the two against each other.
            state.claims.set(binaryId, doc);
            continue;
          }
          const ref = contentRefOf(stored);
          if (!isCda(stored.contentType) || !ref) {
            continue;
          }
          facts = await factsOf(session, await readCdaHeader(store.chunks(ref.hash, session.tx)), ref.size, `Binary/${binaryId}`);
        }
        doc = completeFrom(doc, facts, where);
      }
      await supersedeReplaced(session, doc, previous, where);
      return doc;
    },
  };
}

function sameAttachments(a: DocumentReference, b: DocumentReference): boolean {
  return JSON.stringify(a.content?.map((c) => c.attachment?.url)) === JSON.stringify(b.content?.map((c) => c.attachment?.url));
}

/**
 * `relatesTo` replaces (newly added): the replaced DocumentReference must be current and about the same patient;
 * it becomes superseded in this transaction, so that a search for `status=current` never sees both or neither.
 */
async function supersedeReplaced(session: WriteSession, doc: DocumentReference, previous: DocumentReference | undefined, where: string): Promise<void> {
  const before = new Set((previous?.relatesTo ?? []).filter((r) => r.code === 'replaces').map((r) => r.target?.reference));
  for (const relation of doc.relatesTo ?? []) {
    const target = relation.target?.reference;
    if (relation.code !== 'replaces' || !target || before.has(target)) {
      continue;
    }
    const match = /^DocumentReference\/([A-Za-z0-9\-.]{1,64})$/.exec(target);
    if (!match) {
      throw problem(`${where}: relatesTo.target "${target}" must be a DocumentReference of this server`, 'DocumentReference.relatesTo.target');
    }
    const old = await session.read<DocumentReference>('DocumentReference', match[1]);
    if (!old) {
      throw problem(`${where}: the replaced ${target} does not exist`, 'DocumentReference.relatesTo.target');
    }
    if (old.status !== 'current') {
      throw problem(`${where}: ${target} is ${old.status}, not current; only a current document can be replaced`, 'DocumentReference.relatesTo.target');
    }
    if (doc.subject?.reference && old.subject?.reference && doc.subject.reference !== old.subject.reference) {
      throw problem(`${where}: ${target} is about ${old.subject.reference}, not ${doc.subject.reference}; a replacement is about the same patient`, 'DocumentReference.relatesTo.target');
    }
    await session.update('DocumentReference', match[1], { ...old, status: 'superseded' } as Resource);
  }
}
