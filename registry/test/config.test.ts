import { loadRegistryConfig } from '..';

describe('registry configuration', () => {
  it('defaults the document size limit to 100 MiB and reads DOCUMENT_MAX_BYTES', () => {
    expect(loadRegistryConfig({})).toEqual({ documentMaxBytes: 104_857_600 });
    expect(loadRegistryConfig({ DOCUMENT_MAX_BYTES: '1048576' })).toEqual({ documentMaxBytes: 1_048_576 });
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => loadRegistryConfig({ DOCUMENT_MAX_BYTES: '10MB' })).toThrow(/DOCUMENT_MAX_BYTES must be a positive integer, got "10MB"/);
    expect(() => loadRegistryConfig({ DOCUMENT_MAX_BYTES: '0' })).toThrow(/positive integer/);
  });
});
