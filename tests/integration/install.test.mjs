// install.test.mjs - crosstalk installed as an administrator installs it:
// a copy of the built tree is configured again with --prefix=/usr
// --sysconfdir=/etc, made (only the objects that name a path are rebuilt,
// and every program then names the new paths), installed with DESTDIR, and
// the installed systemd units, cron entry, sysusers entry and nginx server
// block are checked for the configured paths, one user for all of them, and
// `systemd-analyze verify`; make uninstall takes it all away again.
//
// The copy keeps the build's objects and time stamps, so the second make is
// the incremental one a user gets after scripts/demo and a new configure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, cleanup, runSync, tmpDir, which } from './harness.mjs';

after(cleanup);

const CI = process.env.CI === 'true' || process.env.CI === '1';
const SOURCE = path.resolve(process.env.CT_BUILDDIR || REPO);
const PROGRAMS = ['crosstalkd', 'crosstalk-fcgi', 'crosstalk-backup'];

let tree; // the copy, reconfigured for /usr and /etc
let dest; // DESTDIR of make install
let makeLog; // what the make after the new configure printed

function run(what, file, args, opts = {}) {
  const t0 = Date.now();
  const r = runSync(file, args, { timeout: 180000, ...opts });
  const ms = Date.now() - t0;
  assert.ok(!r.timedOut, `${what}: still running after ${ms} ms`);
  assert.equal(r.status, 0, `${what} exited with ${r.status ?? r.signal} after ${ms} ms:\n${(r.stdout + r.stderr).slice(-4000)}`);
  return r;
}

const read = (f) => fs.readFileSync(f, 'utf8');

/** The value of every `Key=` line of a unit file (continuation lines joined). */
function unitValues(text, key) {
  const joined = text.replace(/\\\n\s*/g, '');
  return [...joined.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1].trim());
}

/** Every file below dir, as paths relative to it. */
function filesBelow(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** The path of a tool of Debian's systemd package; without it the test is skipped, or fails in CI. */
function systemdTool(name, t) {
  const p = which(name);
  if (!p) {
    assert.ok(!CI, `${name} is missing (Debian package systemd): CI runs this check`);
    t.skip(`${name} is not installed`);
  }
  return p;
}

before(() => {
  assert.ok(fs.existsSync(path.join(SOURCE, 'config.status')) && fs.existsSync(path.join(SOURCE, 'crosstalkd')),
    `${SOURCE} is not a built tree (no config.status or crosstalkd): run make (or scripts/test) first`);
  const top = tmpDir('install');
  tree = path.join(top, 'tree');
  dest = path.join(top, 'dest');
  const skip = new Set(['node_modules', '.git', 'run']);
  fs.cpSync(SOURCE, tree, {
    recursive: true,
    preserveTimestamps: true,
    verbatimSymlinks: true,
    filter: (p) => !skip.has(path.basename(p)) && !/[/]tests[/](e2e|fuzz)[/]out$/.test(p),
  });
  // the build's own configure options (e.g. --enable-sanitizers), then the
  // paths of a system installation
  run('configure with --prefix=/usr --sysconfdir=/etc', 'bash', ['-c',
    'cd "$1" && eval "set -- $(./config.status --config)" && ./configure -q "$@" --prefix=/usr --sysconfdir=/etc',
    'bash', tree]);
  makeLog = run('make after the new configure', 'make', ['-C', tree, '-j2', 'V=0']).stdout;
});

describe('configure paths reach every program', () => {
  test('the make after a new configure rebuilds the objects that name a path', () => {
    const compiled = [...makeLog.matchAll(/^\s*CC\s+(\S+)$/gm)].map((m) => m[1]);
    assert.match(makeLog, /GEN\s+src\/common\/paths\.h/, `paths.h was not rewritten:\n${makeLog}`);
    for (const obj of ['src/common/libcrosstalk_a-config.o', 'src/daemon/crosstalkd-main.o']) {
      assert.ok(compiled.includes(obj), `${obj} was not rebuilt; make compiled: ${compiled.join(' ') || 'nothing'}`);
    }
  });

  test('a second make rebuilds nothing', () => {
    const out = run('a second make', 'make', ['-C', tree, '-j2', 'V=0']).stdout;
    assert.doesNotMatch(out, /^\s*(CC|CCLD|GEN)\s/m, `the second make did work:\n${out}`);
  });

  for (const prog of PROGRAMS) {
    test(`${prog} --help names /etc/crosstalk.conf${prog === 'crosstalkd' ? ' and /usr/share/crosstalk/www' : ''}`, () => {
      const out = run(`${prog} --help`, path.join(tree, prog), ['--help']).stdout;
      assert.match(out, /\(default \/etc\/crosstalk\.conf\)/, `${prog} --help:\n${out}`);
      // the page is crosstalkd's alone: the others do not offer www_root
      if (prog === 'crosstalkd') assert.match(out, /--www-root .*default "\/usr\/share\/crosstalk\/www"/, `${prog} --help:\n${out}`);
      assert.doesNotMatch(out, /\/usr\/local/, `${prog} --help still names /usr/local`);
    });
  }
});

describe('make install DESTDIR=...', () => {
  const unitDir = () => path.join(dest, 'usr/lib/systemd/system');
  before(() => {
    run('make install', 'make', ['-C', tree, 'install', `DESTDIR=${dest}`]);
  });

  test('everything goes under /usr and /etc, named by the configured paths', () => {
    const files = filesBelow(dest);
    const outside = files.filter((f) => !f.startsWith('usr/') && !f.startsWith('etc/'));
    assert.deepEqual(outside, [], 'installed outside /usr and /etc');
    for (const f of [
      'etc/crosstalk.conf.example',
      'usr/share/crosstalk/www/index.html',
      'usr/share/crosstalk/nginx/crosstalk.conf',
      'usr/share/crosstalk/crosstalk-backup.cron',
      'usr/lib/systemd/system/crosstalkd@.service',
      'usr/lib/systemd/system/crosstalk-fcgi.service',
      'usr/lib/sysusers.d/crosstalk.conf',
      ...PROGRAMS.map((p) => `usr/bin/${p}`),
    ]) assert.ok(files.includes(f), `${f} is not installed; installed: ${files.filter((x) => !x.includes('/www/')).join(' ')}`);
    for (const f of files.filter((x) => !x.startsWith('usr/bin/'))) {
      const text = read(path.join(dest, f));
      assert.doesNotMatch(text, /\/usr\/local/, `${f} names /usr/local`);
      if (/\.(service|cron)$|nginx\/crosstalk\.conf$/.test(f)) {
        assert.doesNotMatch(text, /@[A-Za-z_]+@/, `${f} has a placeholder left`);
      }
    }
  });

  test('the installed programs name the installed config and page', () => {
    for (const prog of PROGRAMS) {
      const out = run(`installed ${prog} --help`, path.join(dest, 'usr/bin', prog), ['--help']).stdout;
      assert.match(out, /\(default \/etc\/crosstalk\.conf\)/, `${prog}`);
      if (prog === 'crosstalkd') assert.match(out, /default "\/usr\/share\/crosstalk\/www"/, `${prog}`);
    }
  });

  test('crosstalkd@.service runs one daemon per port on the installed paths', () => {
    const unit = read(path.join(unitDir(), 'crosstalkd@.service'));
    assert.deepEqual(unitValues(unit, 'ExecStart'),
      ['/usr/bin/crosstalkd --config /etc/crosstalk.conf --port=%i --unix-socket=/run/crosstalkd-%i/http.sock']);
    assert.deepEqual(unitValues(unit, 'RuntimeDirectory'), ['crosstalkd-%i']);
    assert.deepEqual(unitValues(unit, 'WantedBy'), ['multi-user.target']);
    // the installed nginx conf proxies to the sockets of crosstalkd@8081 and @8082
    const nginx = read(path.join(dest, 'usr/share/crosstalk/nginx/crosstalk.conf'));
    const servers = nginx.slice(nginx.search(/^upstream crosstalkd \{/m)).split('}')[0].match(/^\s*server \S+;/gm)?.map((l) => l.trim());
    assert.deepEqual(servers, ['server unix:/run/crosstalkd-8081/http.sock;', 'server unix:/run/crosstalkd-8082/http.sock;']);
  });

  test('crosstalk-fcgi.service runs the pool on the socket the installed nginx conf names', () => {
    const unit = read(path.join(unitDir(), 'crosstalk-fcgi.service'));
    const [exec] = unitValues(unit, 'ExecStart');
    const m = exec.match(/^(\S+) -s (\S+) .* -- \/usr\/bin\/crosstalk-fcgi --config \/etc\/crosstalk\.conf$/);
    assert.ok(m, `ExecStart=${exec}`);
    assert.ok(path.isAbsolute(m[1]) && fs.existsSync(m[1]), `spawn-fcgi at ${m[1]} does not exist`);
    const nginx = read(path.join(dest, 'usr/share/crosstalk/nginx/crosstalk.conf'));
    assert.match(nginx, new RegExp(`fastcgi_pass unix:${m[2].replace(/[.]/g, '\\.')};`), `nginx does not pass to ${m[2]}`);
    assert.match(nginx, /^\s*root \/usr\/share\/crosstalk\/www;$/m, 'nginx root is not the installed www/');
  });

  test('the cron entry runs crosstalk-backup with the installed config, as the units\' user', () => {
    const cron = read(path.join(dest, 'usr/share/crosstalk/crosstalk-backup.cron'));
    assert.match(cron, /^PATH=\/usr\/bin:/m);
    const line = cron.split('\n').find((l) => /^\s*[*\d]/.test(l));
    assert.ok(line, `no schedule line in\n${cron}`);
    const [, , , , , user, ...command] = line.trim().split(/\s+/);
    assert.match(command.join(' '), /^crosstalk-backup --config \/etc\/crosstalk\.conf /);
    // one user and group for everything that reads the 640 root:crosstalk config
    const sysusers = read(path.join(dest, 'usr/lib/sysusers.d/crosstalk.conf'));
    const entry = sysusers.split('\n').find((l) => l.startsWith('u '));
    assert.ok(entry, 'no u line in sysusers.d/crosstalk.conf');
    const name = entry.split(/\s+/)[1];
    assert.equal(user, name, 'the cron entry runs as another user than sysusers.d creates');
    for (const u of ['crosstalkd@.service', 'crosstalk-fcgi.service']) {
      const unit = read(path.join(unitDir(), u));
      assert.deepEqual(unitValues(unit, 'User'), [name], `${u} User=`);
      assert.deepEqual(unitValues(unit, 'Group'), [name], `${u} Group=`);
    }
  });

  test('systemd-analyze verify passes the units (and fails a broken one)', (t) => {
    const sa = systemdTool('systemd-analyze', t);
    if (!sa) return;
    // The units name /usr/bin/crosstalkd, which is under DESTDIR here: the
    // copies checked name the DESTDIR programs, nothing else changed.
    const vdir = tmpDir('verify');
    for (const u of ['crosstalkd@.service', 'crosstalk-fcgi.service']) {
      const text = read(path.join(unitDir(), u)).replaceAll('/usr/bin/crosstalk', `${dest}/usr/bin/crosstalk`);
      fs.writeFileSync(path.join(vdir, u), text);
    }
    const verify = (...units) => runSync(sa, ['verify', '--man=no', ...units.map((u) => path.join(vdir, u))], { timeout: 60000 });
    const r = verify('crosstalkd@8081.service', 'crosstalk-fcgi.service');
    const ours = (r.stdout + r.stderr).split('\n').filter((l) => /crosstalk/.test(l));
    assert.equal(r.status, 0, `systemd-analyze verify exited ${r.status}:\n${r.stdout}${r.stderr}`);
    assert.deepEqual(ours, [], 'systemd-analyze verify had something to say about our units');

    // the check can fail here: a unit whose program is missing is refused
    fs.writeFileSync(path.join(vdir, 'crosstalk-broken.service'),
      read(path.join(vdir, 'crosstalk-fcgi.service')).replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/spawn-fcgi'));
    const bad = verify('crosstalk-broken.service');
    assert.notEqual(bad.status, 0, 'systemd-analyze verify passed a unit whose ExecStart does not exist: it checks nothing here');
    assert.match(bad.stdout + bad.stderr, /nonexistent/);
  });

  test('systemd-sysusers accepts the sysusers.d entry', (t) => {
    const su = systemdTool('systemd-sysusers', t);
    if (!su) return;
    const r = runSync(su, ['--dry-run', path.join(dest, 'usr/lib/sysusers.d/crosstalk.conf')]);
    assert.equal(r.status, 0, `systemd-sysusers --dry-run:\n${r.stdout}${r.stderr}`);
  });

  test('make uninstall removes every file make install put there', () => {
    run('make uninstall', 'make', ['-C', tree, 'uninstall', `DESTDIR=${dest}`]);
    assert.deepEqual(filesBelow(dest), [], 'left behind by make uninstall');
  });
});

describe('configure --with-systemdsystemunitdir', () => {
  const reconfigure = (opt) => run(`configure ${opt}`, 'bash', ['-c',
    'opt=$2 && cd "$1" && eval "set -- $(./config.status --config)" && ./configure -q "$@" "$opt"', 'bash', tree, opt]);

  test('=DIR puts the units there; --without leaves them and the sysusers entry out', () => {
    const d1 = path.join(path.dirname(tree), 'dest-unitdir');
    reconfigure('--with-systemdsystemunitdir=/lib/systemd/system');
    run('make install', 'make', ['-C', tree, 'install', `DESTDIR=${d1}`]);
    const units = filesBelow(d1).filter((f) => f.endsWith('.service'));
    assert.deepEqual(units.sort(), ['lib/systemd/system/crosstalk-fcgi.service', 'lib/systemd/system/crosstalkd@.service']);

    const d2 = path.join(path.dirname(tree), 'dest-nounits');
    reconfigure('--without-systemdsystemunitdir');
    run('make install', 'make', ['-C', tree, 'install', `DESTDIR=${d2}`]);
    const files = filesBelow(d2);
    assert.deepEqual(files.filter((f) => f.endsWith('.service') || f.includes('sysusers')), [], 'units installed after --without');
    assert.ok(files.includes('usr/bin/crosstalkd'), 'the programs are still installed');
  });
});
