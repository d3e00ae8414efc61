/**
 * End to end, in headless Chromium (Debian's chromium driven by playwright-core), against the platform as
 * `npm start` runs it, seeded with Synthea, an HL7 v2 sample and two hospitals' records of one resident
 * (platform.ts). Each role signs in through the platform's own sign-in form (SMART App Launch, PKCE) and walks its
 * pages. With SCREENSHOTS_DIR set, each page is saved there (docs/screenshots for the README).
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PASSWORD, startPlatform, USERS, waitFor, type Platform } from './platform';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOTS_DIR ? path.resolve(process.env.SCREENSHOTS_DIR) : undefined;

describe('the portal in a browser', () => {
  let platform: Platform;
  let browser: Browser;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
    }
    platform = await startPlatform();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.close();
  }, 60_000);

  async function shot(page: Page, name: string): Promise<void> {
    if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  }

  /** A fresh browser (no session), signed in as `username` through the platform's sign-in form. */
  async function signIn(username: string, viewport = { width: 1280, height: 860 }, formShot?: string): Promise<Page> {
    const context = await browser.newContext({ viewport, locale: 'zh-CN' });
    const page = await context.newPage();
    await page.goto(`${platform.baseUrl}/app/`);
    await page.getByRole('button', { name: '登录' }).click();
    await page.waitForURL(/\/auth\/authorize/);
    if (formShot) await shot(page, formShot);
    await page.getByLabel('用户名').fill(username);
    await page.getByLabel('密码').fill(PASSWORD);
    await page.getByRole('button', { name: '登录' }).click();
    await page.waitForURL(/\/app\/(doctor|referrals|supervisor|admin)/);
    return page;
  }

  it('a clinician finds a resident seen at two hospitals, sees both hospitals’ results and answers a recognition advisory', async () => {
    const page = await signIn(USERS.clinician.username, undefined, 'sign-in-form');
    await page.getByRole('heading', { name: '查找居民' }).waitFor();
    // By pinyin, then by name: the same resident.
    await page.getByLabel(/姓名、拼音/).fill('Zhang');
    await page.getByRole('button', { name: '搜索' }).click();
    await page.getByRole('link', { name: '张伟' }).waitFor();
    await page.getByLabel(/姓名、拼音/).fill('340104198001011234');
    await page.getByRole('button', { name: '搜索' }).click();
    await page.getByRole('link', { name: '张伟' }).waitFor();
    await shot(page, 'doctor-search');
    await page.getByRole('link', { name: '张伟' }).click();
    await page.getByText(/来自 \d 家医疗机构/).waitFor();
    await page.getByText(/市第一人民医院 · \d+/).waitFor();
    await page.getByText(/市中心医院 · \d+/).waitFor();
    await page.getByText('根据居民的授权设置，本档案有部分内容未向本机构显示。').waitFor();
    expect(await page.getByText('心理评估').count()).toBe(0);
    await shot(page, 'doctor-timeline');

    await page.getByRole('tab', { name: '检验检查结果' }).click();
    const results = page.getByRole('table', { name: '检验检查结果' });
    await results.getByRole('cell', { name: '市第一人民医院' }).first().waitFor();
    await results.getByRole('cell', { name: '市中心医院' }).first().waitFor();
    await results.getByText('合肥HR').waitFor();
    await shot(page, 'doctor-results');

    await page.getByRole('tab', { name: '趋势图' }).click();
    await page.locator('.recharts-line').first().waitFor();
    await shot(page, 'doctor-trends');

    // Hospital 1 ordered HbA1c again; hospital 2's result of 20 days ago carries the provincial mark: use it.
    await page.getByRole('tab', { name: /互认提示/ }).click();
    const advisory = page.getByText('Duplicate test: a recognisable result exists');
    await advisory.waitFor();
    await page.getByText(/本省HR, recognisable 60 days/).waitFor();
    await shot(page, 'doctor-advisory');
    await page.getByRole('button', { name: '采用既往结果' }).click();
    await page.getByRole('status').getByText('已完成').waitFor();
    await waitFor(async () => (await platform.fhir<{ status: string }>(`ServiceRequest/${platform.seeded.orderId}`)).status === 'revoked', 15_000, 'the order to be revoked');
    await page.context().close();
  }, 90_000);

  it('a clinician breaks the glass, with a reason, for a resident of another hospital', async () => {
    const page = await signIn(USERS.clinician.username, { width: 1024, height: 768 });
    await page.getByLabel(/姓名、拼音/).fill('陈静');
    await page.getByRole('button', { name: '搜索' }).click();
    await page.getByText('未找到匹配的居民').waitFor();
    await page.getByLabel('紧急访问理由').fill('患者昏迷送急诊，需了解既往病史与过敏史');
    await page.getByRole('button', { name: '紧急查找（破窗）' }).click();
    await page.getByRole('link', { name: '陈静' }).click();
    await page.getByText('紧急访问中 · 已记录').waitFor();
    await page.getByText('来自 1 家医疗机构').waitFor();
    await shot(page, 'doctor-break-the-glass-tablet');
    await page.context().close();
  }, 90_000);

  it('a referral coordinator accepts a referral and books it into a slot of the receiving department', async () => {
    const page = await signIn(USERS.coordinator.username);
    const worklist = page.getByRole('table', { name: '转诊工作台' });
    await worklist.getByRole('link', { name: '张伟' }).waitFor();
    await shot(page, 'referral-worklist');
    await worklist.getByRole('link', { name: '张伟' }).click();
    await page.getByText('胸闷待查，需心内科进一步诊治').waitFor();
    await page.getByRole('button', { name: '接收', exact: true }).click();
    const dialog = page.getByRole('dialog');
    const firstSlot = dialog.getByRole('button', { name: /^\d\d:\d\d/ }).first();
    await firstSlot.waitFor();
    await firstSlot.click();
    await shot(page, 'referral-booking-calendar');
    await dialog.getByRole('button', { name: '接收并预约' }).click();
    await page.getByText('已接收转诊').waitFor();
    // The referral engine books the chosen slot; the Task then names the Appointment.
    await waitFor(
      async () => ((await platform.fhir<{ output?: { valueReference?: { reference?: string } }[] }>(`Task/${platform.seeded.taskId}`)).output ?? []).some((o) => o.valueReference?.reference?.startsWith('Appointment/')),
      30_000,
      'the appointment',
    );
    await page.reload();
    await page.getByText(/\d{4}-\d\d-\d\d \d\d:\d\d · booked/).waitFor();
    await shot(page, 'referral-detail');
    await page.context().close();
  }, 90_000);

  it('a supervisor sees the indicators and the facility board, reviews a finding and sees who looked at the resident’s record', async () => {
    const page = await signIn(USERS.supervisor.username);
    await page.getByRole('tab', { name: '指标' }).waitFor();
    // A bar of value 0 is drawn as an empty (hidden) group: wait for one that shows.
    await page.locator('.recharts-bar-rectangle').filter({ visible: true }).first().waitFor();
    await shot(page, 'supervisor-indicators');
    await page.getByRole('tab', { name: '机构接入' }).click();
    await page.getByRole('cell', { name: 'IA Public Health Lab' }).waitFor();
    await shot(page, 'supervisor-facilities');
    // The clinician broke the glass earlier in this file; audit review (on a 2 s tick here) turns that into a finding.
    await waitFor(
      async () => ((await platform.fhir<{ total?: number }>('DetectedIssue?code=AUDIT-BREAK-GLASS&_total=accurate')).total ?? 0) > 0,
      30_000,
      'the break-the-glass finding',
    );
    // The dashboard's tabs load when the page opens, possibly before the finding existed: open it afresh.
    await page.reload();
    await page.getByRole('tab', { name: '疑点' }).click();
    const finding = page.getByRole('table', { name: '疑点' }).getByRole('row').filter({ hasText: /Break-the-glass access to a patient record/ }).first();
    await finding.waitFor();
    await shot(page, 'supervisor-findings');
    // First review: the bureau dismisses it, the emergency being documented.
    await finding.getByRole('button', { name: '复核' }).click();
    const review = page.getByRole('dialog');
    await review.getByRole('textbox', { name: '结论' }).click();
    await page.getByRole('option', { name: 'dismiss', exact: true }).click();
    await review.getByLabel('备注').fill('急诊抢救，理由充分');
    await review.getByRole('button', { name: '确认' }).click();
    await page.getByText('已完成').first().waitFor();
    await waitFor(
      async () => ((await platform.fhir<{ entry?: { resource: { status: string } }[] }>('DetectedIssue?code=AUDIT-BREAK-GLASS')).entry ?? []).some((e) => e.resource.status === 'entered-in-error'),
      15_000,
      'the dismissed finding',
    );
    await page.getByRole('tab', { name: '访问记录' }).click();
    await page.getByLabel('居民（姓名或证件号）').fill('张伟');
    await page.getByRole('button', { name: '搜索' }).click();
    await page.getByRole('textbox', { name: '选择居民' }).click();
    await page.getByRole('option', { name: /张伟/ }).click();
    const log = page.getByRole('table', { name: '访问记录' });
    await log.getByText(USERS.clinician.name).first().waitFor();
    await shot(page, 'supervisor-audit');
    await page.context().close();
  }, 90_000);

  it('an administrator manages users, in English too', async () => {
    const page = await signIn(USERS.admin.username);
    const table = page.getByRole('table', { name: '用户管理' });
    await table.getByRole('cell', { name: USERS.clinician.username, exact: true }).waitFor();
    await page.getByRole('button', { name: '新建用户' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('用户名').fill('sup.qian');
    await dialog.getByLabel('姓名').fill('钱监管');
    await dialog.getByRole('textbox', { name: '角色' }).click();
    await page.getByRole('option', { name: '监管人员' }).click();
    await dialog.getByLabel('所属机构').fill(`Organization/${platform.seeded.hospital2.id}`);
    await dialog.getByLabel('密码').fill('another long password');
    await dialog.getByRole('button', { name: '保存' }).click();
    await table.getByRole('cell', { name: 'sup.qian', exact: true }).waitFor();
    await page.getByText('English').click();
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    await shot(page, 'admin-users-english');
    await page.context().close();
  }, 90_000);
});
