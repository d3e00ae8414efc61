/** RECOGNITION_AUTHORITIES: the health bureau(s) whose recognition grants count. */
import { loadConfig } from '../../config';

it('reads the authorities as Organization references, and refuses anything else', () => {
  expect(loadConfig({}).recognition.authorities).toEqual([]);
  expect(loadConfig({ RECOGNITION_AUTHORITIES: 'Organization/health-bureau, Organization/province-bureau' }).recognition.authorities).toEqual([
    'Organization/health-bureau',
    'Organization/province-bureau',
  ]);
  expect(() => loadConfig({ RECOGNITION_AUTHORITIES: 'health-bureau' })).toThrow(/RECOGNITION_AUTHORITIES/);
});
