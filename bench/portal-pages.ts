/**
 * Page-load times of the portal with the seeded data (portal/test/platform.ts: the platform as `npm start` runs
 * it, Synthea, an HL7 sample, two hospitals' records of one resident, a referral): for each page, the time from
 * navigation to its content on screen in headless Chromium, cold (new browser context: nothing cached) and warm
 * (assets cached, as on every later visit). Prints a Markdown table for docs/performance.md.
 *
 *   npm run bench:portal            (RUNS=10 for more repetitions; CHROMIUM_PATH if not /usr/bin/chromium)
 */
import { chromium, type Page } from 'playwright-core';
import { PASSWORD, startPlatform, USERS } from '../portal/test/platform';

const RUNS = Number(process.env.RUNS ?? 5);

interface PageCase {
  name: string;
  user: string;
  path: string;
  ready: (page: Page) => Promise<void>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const platform = await startPlatform();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  try {
    const { resident, taskId } = platform.seeded;
    const cases: PageCase[] = [
      { name: 'doctor: search (name)', user: USERS.clinician.username, path: `/app/doctor?q=${encodeURIComponent('张伟')}`, ready: (p) => p.getByRole('link', { name: '张伟' }).waitFor() },
      { name: 'doctor: record timeline', user: USERS.clinician.username, path: `/app/doctor/patient/${resident.id}`, ready: (p) => p.getByText(/来自 \d 家医疗机构/).waitFor() },
      { name: 'referral desk: worklist', user: USERS.coordinator.username, path: '/app/referrals', ready: (p) => p.getByRole('table', { name: '转诊工作台' }).waitFor() },
      { name: 'referral desk: detail', user: USERS.coordinator.username, path: `/app/referrals/${taskId}`, ready: (p) => p.getByText('随附资料').waitFor() },
      { name: 'supervisor: indicators', user: USERS.supervisor.username, path: '/app/supervisor', ready: (p) => p.locator('.recharts-bar-rectangle').first().waitFor() },
      { name: 'admin: users', user: USERS.admin.username, path: '/app/admin/users', ready: (p) => p.getByRole('table', { name: '用户管理' }).waitFor() },
    ];
    const rows: string[] = [];
    for (const c of cases) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
      const page = await context.newPage();
      // Signing in once per user: the session is in the tab's sessionStorage, as for a person using the pages.
      await page.goto(`${platform.baseUrl}/app/`);
      await page.getByRole('button', { name: '登录' }).click();
      await page.getByLabel('用户名').fill(c.user);
      await page.getByLabel('密码').fill(PASSWORD);
      await page.getByRole('button', { name: '登录' }).click();
      await page.waitForURL(/\/app\/(doctor|referrals|supervisor|admin)/);
      const times: number[] = [];
      for (let i = 0; i <= RUNS; i++) {
        const started = performance.now();
        await page.goto(`${platform.baseUrl}${c.path}`);
        await c.ready(page);
        times.push(performance.now() - started);
      }
      const [first, ...warm] = times;
      rows.push(`| ${c.name} | ${Math.round(first)} | ${Math.round(median(warm))} | ${Math.round(Math.max(...warm))} |`);
      await context.close();
    }
    console.log(['| page | first load (ms) | median of later loads (ms) | slowest later load (ms) |', '| --- | ---: | ---: | ---: |', ...rows].join('\n'));
  } finally {
    await browser.close();
    await platform.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
