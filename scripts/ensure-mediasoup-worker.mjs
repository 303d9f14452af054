#!/usr/bin/env node
// Makes sure mediasoup's native worker binary (mediasoup-worker) is available.
//
// The project installs npm packages with ignore-scripts=true (.npmrc), so mediasoup's own
// postinstall (prebuilt download from GitHub, else a local build that needs pip and meson
// subprojects fetched from the internet) never runs. This script does that job, in order:
//
//   1. MEDIASOUP_WORKER_BIN is set to an executable, or
//      node_modules/mediasoup/worker/out/Release/mediasoup-worker exists, runs, and its stamp
//      file (mediasoup-worker.stamp beside it) says it is mediasoup's prebuilt download or our
//      build with the current patch set: nothing to do. A worker without a stamp, or built with
//      another patch set, is replaced by the steps below.
//   2. A cached binary exists in ${XDG_CACHE_HOME:-~/.cache}/sip-webrtc-gateway/
//      mediasoup-worker-<version>-p<patch set>-<arch>: copy it into node_modules.
//   3. mediasoup's own prebuilt download (its postinstall, with a timeout and with its
//      pip-based local-build fallback disabled). Works wherever GitHub is reachable. The
//      prebuilt worker lacks the gateway's patches; the gateway finds that out at start-up
//      (server/media/worker-features.ts) and takes its slower path.
//   4. Build the worker from the npm tarball's sources against Debian's libraries, using the
//      local meson subprojects in scripts/mediasoup/ and the gateway's patch set
//      (scripts/mediasoup/worker-patches.mjs; see scripts/mediasoup/README.md).
//
// Options:
//   --force-build             skip steps 1-3 and build (the result still goes to the cache)
//   --no-download             skip step 3 (also: MEDIASOUP_SKIP_WORKER_PREBUILT_DOWNLOAD=1)
//   --download-timeout=SECS   time limit for step 3 (default 60)
//   --keep-build              keep the build directory after a successful build
//   --output=FILE             build (as --force-build) and write the binary to FILE only:
//                             node_modules and the cache are left alone (to try a build)
//
// Environment: MEDIASOUP_WORKER_BUILD_DIR overrides the build directory
// (default: <cache dir>/build-<version>-<arch>).
//
// Only Node built-ins are used. Exit code 0 when a working worker is in place, 1 otherwise.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLibsrtpWithOpenssl } from './mediasoup/libsrtp-openssl.mjs';
import { applyWorkerPatches, PATCH_SET_VERSION } from './mediasoup/worker-patches.mjs';

const TAG = '[mediasoup-worker]';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MEDIASOUP_DIR = path.join(ROOT, 'node_modules', 'mediasoup');
const WORKER_REL = path.join('worker', 'out', 'Release', 'mediasoup-worker');
const WORKER_BIN = path.join(MEDIASOUP_DIR, WORKER_REL);
// Says where the installed binary came from: `prebuilt <version>` or `patched <version> <set>`.
const WORKER_STAMP = `${WORKER_BIN}.stamp`;
const ASSETS_DIR = path.join(ROOT, 'scripts', 'mediasoup');

// The worker exits with this code when started without MEDIASOUP_VERSION in its environment
// (worker/src/main.cpp). Getting it proves the binary loads and runs on this host.
const WORKER_NO_VERSION_EXIT_CODE = 41;

// Debian packages needed for step 4, each with how to tell whether it is present.
const BUILD_REQUIREMENTS = [
	{ pkg: 'meson', commands: ['meson'] },
	{ pkg: 'ninja-build', commands: ['ninja'] },
	{ pkg: 'pkg-config', commands: ['pkg-config'] },
	{ pkg: 'g++', commands: ['cc', 'c++'] },
	{ pkg: 'libssl-dev', modules: ['openssl >= 3.0', 'libssl >= 3.0', 'libcrypto >= 3.0'] },
	{ pkg: 'libuv1-dev', modules: ['libuv'] },
	// libsrtp itself is built from Debian's source package, with OpenSSL (libsrtp-openssl.mjs)
	{ pkg: 'make', commands: ['make', 'tar'] },
	{ pkg: 'debian-archive-keyring', files: ['/usr/share/keyrings/debian-archive-keyring.gpg'] },
	{ pkg: 'libusrsctp-dev', modules: ['usrsctp'] },
	{
		pkg: 'libabsl-dev',
		modules: [
			'absl_flat_hash_map',
			'absl_flat_hash_set',
			'absl_btree',
			'absl_inlined_vector',
			'absl_strings',
			'absl_optional',
			'absl_variant',
			'absl_memory',
		],
	},
	{ pkg: 'libflatbuffers-dev', modules: ['flatbuffers'] },
	{ pkg: 'flatbuffers-compiler', commands: ['flatc'] },
];

// The in-place fix of a mediasoup bug in worker/src/RTC/DtlsTransport.cpp: the BIO callback
// compares operationType with BIO_CB_RETURN instead of testing the bit, so it answers 1 to every
// BIO_ctrl (including BIO_CTRL_GET_KTLS_SEND). With Debian's KTLS-enabled libssl, OpenSSL then
// thinks kernel TLS is on and the worker crashes at the first DTLS ServerHello.
const DTLS_FILE = path.join('src', 'RTC', 'DtlsTransport.cpp');
const DTLS_BUGGY = '(operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1;';
const DTLS_FIXED = '((operationType & BIO_CB_RETURN) != 0) ? static_cast<long>(ret) : 1;';

// worker/meson.build asks for meson >= 1.1.0; Debian 12's meson 1.0.1 configures it fine.
const MESON_VERSION_WANTED = "meson_version: '>= 1.1.0'";
const MESON_VERSION_RELAXED = "meson_version: '>= 1.0.0'";

// Our local subprojects (scripts/mediasoup/subprojects/<name>) replace these .wrap files.
const LOCAL_SUBPROJECTS = [
	'abseil-cpp',
	'catch2',
	'flatbuffers',
	'libsrtp3',
	'liburing',
	'libuv',
	'openssl',
	'usrsctp',
];

class StepError extends Error {}

function log(message) {
	console.log(`${TAG} ${message}`);
}

function rel(p) {
	const r = path.relative(ROOT, p);

	return r && !r.startsWith('..') && !path.isAbsolute(r) ? r : p;
}

function seconds(ms) {
	return `${(ms / 1000).toFixed(1)} s`;
}

function parseArgs(argv) {
	const opts = { forceBuild: false, noDownload: false, keepBuild: false, downloadTimeoutS: 60, output: null };

	for (const arg of argv) {
		if (arg === '--force-build') opts.forceBuild = true;
		else if (arg === '--no-download') opts.noDownload = true;
		else if (arg === '--keep-build') opts.keepBuild = true;
		else if (arg.startsWith('--output=')) {
			opts.output = path.resolve(arg.slice('--output='.length));
			opts.forceBuild = true;
		}
		else if (arg.startsWith('--download-timeout=')) {
			const value = Number(arg.slice('--download-timeout='.length));

			if (!Number.isFinite(value) || value <= 0) throw new StepError(`bad value in ${arg}`);
			opts.downloadTimeoutS = value;
		} else if (arg === '-h' || arg === '--help') {
			opts.help = true;
		} else {
			throw new StepError(`unknown argument: ${arg} (try --help)`);
		}
	}

	return opts;
}

function isExecutableFile(file) {
	try {
		if (!fs.statSync(file).isFile()) return false;
		fs.accessSync(file, fs.constants.X_OK);

		return true;
	} catch {
		return false;
	}
}

// Runs the worker with an empty environment: a working binary exits with code 41 at once.
function workerRuns(file) {
	if (!isExecutableFile(file)) return false;

	const res = spawnSync(file, [], { env: {}, stdio: 'ignore', timeout: 10_000 });

	return res.status === WORKER_NO_VERSION_EXIT_CODE;
}

// Copies a file next to its destination and renames it into place, so that a concurrent
// reader never sees a half-written binary.
function installFile(src, dest) {
	fs.mkdirSync(path.dirname(dest), { recursive: true });

	const tmp = `${dest}.tmp-${process.pid}`;

	try {
		fs.copyFileSync(src, tmp);
		fs.chmodSync(tmp, 0o755);
		fs.renameSync(tmp, dest);
	} finally {
		fs.rmSync(tmp, { force: true });
	}
}

function findOnPath(command) {
	for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
		if (dir && isExecutableFile(path.join(dir, command))) return path.join(dir, command);
	}

	return null;
}

function readMediasoupVersion() {
	const pkgFile = path.join(MEDIASOUP_DIR, 'package.json');
	let pkg;

	try {
		pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
	} catch (error) {
		throw new StepError(
			`cannot read ${rel(pkgFile)} (${error.code ?? error.message}); run \`npm ci\` first`
		);
	}

	if (typeof pkg.version !== 'string') throw new StepError(`no version in ${rel(pkgFile)}`);

	return pkg.version;
}

function cacheRoot() {
	const xdg = process.env.XDG_CACHE_HOME;
	const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');

	return path.join(base, 'sip-webrtc-gateway');
}

function readStamp() {
	try {
		return fs.readFileSync(WORKER_STAMP, 'utf8').trim();
	} catch {
		return null;
	}
}

function writeStamp(text) {
	fs.writeFileSync(WORKER_STAMP, `${text}\n`);
}

function patchedStamp(version) {
	return `patched ${version} ${PATCH_SET_VERSION}`;
}

// ---------------------------------------------------------------------------------------------
// Step 1: already there?

function checkExisting() {
	const envBin = process.env.MEDIASOUP_WORKER_BIN;

	if (envBin) {
		if (isExecutableFile(envBin)) {
			log(`using MEDIASOUP_WORKER_BIN=${envBin}`);

			return true;
		}

		// mediasoup uses MEDIASOUP_WORKER_BIN whenever it is set, so nothing we could put in
		// node_modules would help.
		throw new StepError(
			`MEDIASOUP_WORKER_BIN=${envBin} is not an executable file; fix or unset it`
		);
	}

	if (workerRuns(WORKER_BIN)) {
		const version = readMediasoupVersion();
		const stamp = readStamp();

		if (stamp === patchedStamp(version) || stamp === `prebuilt ${version}`) {
			log(`ok: ${rel(WORKER_BIN)} (${stamp.startsWith('prebuilt') ? 'prebuilt, without the gateway\'s patches' : `patch set ${PATCH_SET_VERSION}`})`);

			return true;
		}

		log(
			`${rel(WORKER_BIN)} runs but is ${stamp ? `"${stamp}"` : 'not stamped'}; ` +
				`looking for a worker of patch set ${PATCH_SET_VERSION} (cache, else download, else build)`
		);
	}

	return false;
}

// ---------------------------------------------------------------------------------------------
// Step 2: cached binary.

function tryCache(cacheFile, version) {
	if (!fs.existsSync(cacheFile)) return false;

	if (!workerRuns(cacheFile)) {
		log(`cached binary ${cacheFile} does not run on this host; ignoring it`);

		return false;
	}

	installFile(cacheFile, WORKER_BIN);

	if (!workerRuns(WORKER_BIN)) {
		log(`copied ${cacheFile} but ${rel(WORKER_BIN)} does not run; ignoring the cache`);

		return false;
	}

	writeStamp(patchedStamp(version));
	log(`copied cached worker ${cacheFile} -> ${rel(WORKER_BIN)}`);

	return true;
}

// ---------------------------------------------------------------------------------------------
// Step 3: mediasoup's own prebuilt download.
//
// `node npm-scripts.mjs postinstall` (run from node_modules/mediasoup) downloads
// mediasoup-worker-<version>-<platform>-<arch>-kernel<N>.tgz from GitHub releases, extracts it
// to worker/out/Release and checks that it runs. If that fails it falls back to buildWorker(),
// which runs `"$PYTHON" -m pip install invoke` and then a meson build with downloads. We point
// PYTHON at a command that does not exist, so that fallback fails immediately instead of
// waiting on PyPI; the whole child is also killed after the timeout (node-fetch has none, and a
// network that drops packets would make it wait for the TCP connect timeout).

const DISABLED_PYTHON = '/nonexistent/python-disabled-by-ensure-mediasoup-worker';

function tryPrebuiltDownload(timeoutS) {
	const script = path.join(MEDIASOUP_DIR, 'npm-scripts.mjs');

	if (!fs.existsSync(script)) {
		log(`prebuilt download: ${rel(script)} not found, skipping`);

		return Promise.resolve(false);
	}

	const env = { ...process.env, PYTHON: DISABLED_PYTHON };

	// These would make mediasoup's postinstall skip the download or go straight to its build.
	delete env.MEDIASOUP_WORKER_BIN;
	delete env.MEDIASOUP_LOCAL_DEV;
	delete env.MEDIASOUP_SKIP_WORKER_PREBUILT_DOWNLOAD;
	delete env.npm_package_resolved;

	log(`trying mediasoup's prebuilt download (time limit ${timeoutS} s)...`);

	const started = Date.now();

	return new Promise((resolve) => {
		let output = '';
		let timedOut = false;
		const child = spawn(process.execPath, [script, 'postinstall'], {
			cwd: MEDIASOUP_DIR,
			env,
			stdio: ['ignore', 'pipe', 'pipe'],
			// Own process group, so that a timeout also ends anything it started.
			detached: true,
		});
		const collect = (chunk) => {
			output += chunk.toString();
		};

		child.stdout.on('data', collect);
		child.stderr.on('data', collect);

		const timer = setTimeout(() => {
			timedOut = true;
			try {
				process.kill(-child.pid, 'SIGKILL');
			} catch {
				child.kill('SIGKILL');
			}
		}, timeoutS * 1000);

		const finish = (code, signal) => {
			clearTimeout(timer);

			const elapsed = seconds(Date.now() - started);

			if (workerRuns(WORKER_BIN)) {
				log(`prebuilt worker downloaded in ${elapsed}`);
				resolve(true);

				return;
			}

			const why = timedOut
				? `timed out after ${timeoutS} s`
				: `exit ${code ?? signal}, no working binary`;
			// eslint-disable-next-line no-control-regex
			const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
			const reason = plain
				.split('\n')
				.filter((line) => /failed to download|no available|fails to run|\[ERROR\]/.test(line))
				.map((line) => line.replace(/^npm-scripts\.mjs\s*/, '').trim())
				.find((line) => line && !line.includes(DISABLED_PYTHON) && !line.includes('executeCmd'));

			log(`prebuilt download failed (${why}, ${elapsed})${reason ? `: ${reason}` : ''}`);
			resolve(false);
		};

		child.on('error', (error) => {
			output += String(error);
			finish(null, null);
		});
		child.on('close', finish);
	});
}

// ---------------------------------------------------------------------------------------------
// Step 4: build from the npm tarball's worker sources against Debian's libraries.

function checkBuildRequirements() {
	const missing = [];
	const havePkgConfig = findOnPath('pkg-config') !== null;

	for (const req of BUILD_REQUIREMENTS) {
		let ok = true;

		for (const command of req.commands ?? []) {
			if (!findOnPath(command)) ok = false;
		}

		for (const file of req.files ?? []) {
			if (!fs.existsSync(file)) ok = false;
		}

		if (ok && req.modules) {
			ok =
				havePkgConfig &&
				spawnSync('pkg-config', ['--exists', ...req.modules], { stdio: 'ignore' }).status === 0;
		}

		if (!ok) missing.push(req.pkg);
	}

	if (missing.length > 0) {
		const sudo = typeof process.getuid === 'function' && process.getuid() !== 0 ? 'sudo ' : '';

		log(`missing build requirements: ${missing.join(' ')}`);
		log('install them with:');
		console.log(`  ${sudo}apt-get install -y ${missing.join(' ')}`);
		log(`(full list: ${BUILD_REQUIREMENTS.map((r) => r.pkg).join(' ')})`);
		throw new StepError('cannot build the worker without these packages');
	}

	const mesonVersion = spawnSync('meson', ['--version'], { encoding: 'utf8' }).stdout?.trim();
	const [major, minor] = (mesonVersion ?? '').split('.').map(Number);

	if (!(major > 1 || (major === 1 && minor >= 0))) {
		throw new StepError(`meson >= 1.0 is needed, found ${mesonVersion || 'unknown version'}`);
	}

	log(`build requirements present (meson ${mesonVersion})`);
}

// Applied to the staged copy of the worker (node_modules is never edited).
function patchDtlsTransport(stageDir) {
	const file = path.join(stageDir, DTLS_FILE);
	const text = fs.readFileSync(file, 'utf8');

	if (text.includes(DTLS_FIXED)) {
		log(`${DTLS_FILE}: BIO_CB_RETURN fix already applied`);

		return;
	}

	const count = text.split(DTLS_BUGGY).length - 1;

	if (count !== 1) {
		throw new StepError(
			`${rel(file)}: expected exactly one \`${DTLS_BUGGY}\`, found ${count} ` +
				'(this recipe is tied to mediasoup 3.19.3)'
		);
	}

	fs.writeFileSync(file, text.replace(DTLS_BUGGY, DTLS_FIXED));
	log(`${DTLS_FILE}: applied the BIO_CB_RETURN bit-test fix (in the staged copy)`);
}

// Copies node_modules/mediasoup/worker to <buildRoot>/worker without mediasoup's .wrap files,
// adds our local subprojects and relaxes meson_version. The package in node_modules is left
// untouched: the DtlsTransport.cpp fix and the gateway's patches go to this copy.
function stageWorkerSources(stageDir) {
	const srcWorker = path.join(MEDIASOUP_DIR, 'worker');
	const skip = new Set(
		['out', 'prebuild', 'pip_invoke', 'subprojects'].map((d) => path.join(srcWorker, d))
	);

	fs.cpSync(srcWorker, stageDir, {
		recursive: true,
		preserveTimestamps: true,
		filter: (src) => !skip.has(src),
	});

	const subprojectsDir = path.join(stageDir, 'subprojects');

	fs.mkdirSync(subprojectsDir, { recursive: true });

	for (const name of LOCAL_SUBPROJECTS) {
		const from = path.join(ASSETS_DIR, 'subprojects', name);
		const to = path.join(subprojectsDir, name);

		if (!fs.existsSync(path.join(from, 'meson.build'))) {
			throw new StepError(`missing ${rel(path.join(from, 'meson.build'))}`);
		}
		fs.cpSync(from, to, { recursive: true });
		fs.copyFileSync(path.join(ASSETS_DIR, 'stub.c'), path.join(to, 'stub.c'));
	}

	const mesonFile = path.join(stageDir, 'meson.build');
	const mesonText = fs.readFileSync(mesonFile, 'utf8');

	if (!mesonText.includes(MESON_VERSION_WANTED)) {
		throw new StepError(
			`worker/meson.build no longer says ${MESON_VERSION_WANTED} ` +
				'(this recipe is tied to mediasoup 3.19.3)'
		);
	}
	fs.writeFileSync(mesonFile, mesonText.replace(MESON_VERSION_WANTED, MESON_VERSION_RELAXED));

	log(
		`staged worker sources in ${stageDir} (local subprojects: ${LOCAL_SUBPROJECTS.join(', ')})`
	);
}

// Runs a command with its output going to the build log. Prints a progress line every 10 % of
// ninja's "[n/N]" steps. On failure prints the end of the log.
function runLogged(label, command, args, logFile, env = process.env) {
	return new Promise((resolve, reject) => {
		const started = Date.now();
		const logStream = fs.createWriteStream(logFile, { flags: 'a' });

		logStream.write(`\n$ ${command} ${args.join(' ')}\n`);
		log(`${label}...`);

		const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
		let lastDecile = 0;
		let pending = '';
		let tail = [];

		const onData = (chunk) => {
			logStream.write(chunk);
			pending += chunk.toString();

			const lines = pending.split('\n');

			pending = lines.pop() ?? '';
			tail = tail.concat(lines).slice(-60);

			for (const line of lines) {
				const m = /^\[(\d+)\/(\d+)\]/.exec(line);

				if (!m) continue;

				const decile = Math.floor((Number(m[1]) / Number(m[2])) * 10);

				if (decile > lastDecile && Number(m[2]) >= 20) {
					lastDecile = decile;
					log(`  ${label}: ${m[1]}/${m[2]} (${decile * 10} %, ${seconds(Date.now() - started)})`);
				}
			}
		};

		child.stdout.on('data', onData);
		child.stderr.on('data', onData);
		child.on('error', (error) => {
			logStream.end();
			reject(new StepError(`${label}: cannot run ${command}: ${error.message}`));
		});
		child.on('close', (code, signal) => {
			logStream.end();

			if (code === 0) {
				log(`${label}: done in ${seconds(Date.now() - started)}`);
				resolve();

				return;
			}

			if (pending) tail.push(pending);
			console.error(`${TAG} ${label} failed (${code ?? signal}); last lines of ${logFile}:`);
			for (const line of tail.slice(-40)) console.error(`  | ${line}`);
			reject(new StepError(`${label} failed; full log: ${logFile}`));
		});
	});
}

async function buildWorker({ version, cacheFile, buildRoot, keepBuild, output }) {
	const started = Date.now();

	log(`building mediasoup-worker ${version} from source (this takes a few minutes)...`);
	checkBuildRequirements();

	fs.rmSync(buildRoot, { recursive: true, force: true });
	fs.mkdirSync(buildRoot, { recursive: true });

	const stageDir = path.join(buildRoot, 'worker');
	const buildDir = path.join(buildRoot, 'build');
	const logFile = path.join(buildRoot, 'build.log');

	stageWorkerSources(stageDir);
	patchDtlsTransport(stageDir);

	let patches;

	try {
		patches = applyWorkerPatches(stageDir, fs, path);
	} catch (error) {
		throw new StepError(error.message);
	}
	log(`applied the gateway's worker patch set ${PATCH_SET_VERSION}: ${patches.join(', ')}`);
	log(`build log: ${logFile}`);

	let pkgConfigDir;

	try {
		pkgConfigDir = buildLibsrtpWithOpenssl({ buildRoot, logFile, log });
	} catch (error) {
		throw new StepError(`libsrtp: ${error.message}`);
	}

	// our libsrtp2.pc first: the libsrtp3 subproject's dependency('libsrtp2') links it statically
	const mesonEnv = {
		...process.env,
		PKG_CONFIG_PATH: [pkgConfigDir, process.env.PKG_CONFIG_PATH].filter(Boolean).join(':'),
	};

	await runLogged(
		'meson setup',
		'meson',
		[
			'setup',
			'--wrap-mode=nodownload',
			'--buildtype',
			'release',
			'-Db_ndebug=true',
			'-Dms_disable_liburing=true',
			buildDir,
			stageDir,
		],
		logFile,
		mesonEnv
	);
	// The generated flatbuffers headers must exist before the worker's sources compile.
	await runLogged(
		'generate flatbuffers headers',
		'meson',
		['compile', '-C', buildDir, 'flatbuffers-generator'],
		logFile,
		mesonEnv
	);
	await runLogged('compile mediasoup-worker', 'meson', ['compile', '-C', buildDir, 'mediasoup-worker'], logFile, mesonEnv);

	const built = path.join(buildDir, 'mediasoup-worker');

	if (!workerRuns(built)) {
		throw new StepError(`${built} was built but does not run (expected exit code 41); see ${logFile}`);
	}

	if (output) {
		installFile(built, output);
		log(`wrote ${output} (node_modules and the cache left alone)`);
	} else {
		installFile(built, cacheFile);
		installFile(built, WORKER_BIN);

		if (!workerRuns(WORKER_BIN)) throw new StepError(`${rel(WORKER_BIN)} does not run after install`);

		writeStamp(patchedStamp(version));
		log(`installed ${rel(WORKER_BIN)} and cached it as ${cacheFile}`);
	}

	if (keepBuild) {
		log(`build directory kept: ${buildRoot}`);
	} else {
		fs.rmSync(buildRoot, { recursive: true, force: true });
	}

	log(`build finished in ${seconds(Date.now() - started)}`);
}

// ---------------------------------------------------------------------------------------------
// A lock so that two concurrent runs (e.g. `npm test` and `npm start`) do not build into the
// same directory at once. The second one waits and then re-checks.

function processAlive(pid) {
	try {
		process.kill(pid, 0);

		return true;
	} catch (error) {
		return error.code === 'EPERM';
	}
}

async function acquireLock(lockFile) {
	fs.mkdirSync(path.dirname(lockFile), { recursive: true });

	let announced = false;

	for (;;) {
		try {
			fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });

			return { waited: announced };
		} catch (error) {
			if (error.code !== 'EEXIST') throw error;
		}

		const holder = Number(fs.readFileSync(lockFile, 'utf8').trim());

		if (!Number.isInteger(holder) || holder <= 0 || !processAlive(holder)) {
			fs.rmSync(lockFile, { force: true });
			continue;
		}

		if (!announced) {
			log(`another run (pid ${holder}) is installing the worker; waiting for it...`);
			announced = true;
		}
		await new Promise((r) => setTimeout(r, 2000));
	}
}

// ---------------------------------------------------------------------------------------------

async function main() {
	const opts = parseArgs(process.argv.slice(2));

	if (opts.help) {
		// Print the comment block at the top of this file.
		const lines = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1);
		const end = lines.findIndex((l) => !l.startsWith('//'));

		console.log(lines.slice(0, end).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));

		return;
	}

	if (!opts.forceBuild && checkExisting()) return;

	const version = readMediasoupVersion();
	const cacheDir = cacheRoot();
	// The patch set is in the name: a worker cached before it (or with another) is not reused.
	const cacheFile = path.join(cacheDir, `mediasoup-worker-${version}-p${PATCH_SET_VERSION}-${process.arch}`);
	const buildRoot =
		process.env.MEDIASOUP_WORKER_BUILD_DIR ||
		path.join(cacheDir, `build-${version}-${process.arch}`);
	const lockFile = path.join(cacheDir, `mediasoup-worker-${version}-${process.arch}.lock`);

	log(
		opts.forceBuild
			? `mediasoup ${version}: --force-build given, building without looking for an existing worker`
			: `mediasoup ${version}: no usable worker at ${rel(WORKER_BIN)}`
	);

	const lock = await acquireLock(lockFile);
	const release = () => fs.rmSync(lockFile, { force: true });
	const onSignal = (signal) => {
		release();
		process.kill(process.pid, signal);
	};

	process.once('SIGINT', onSignal);
	process.once('SIGTERM', onSignal);

	try {
		if (!opts.forceBuild) {
			// Another run may have finished the job while we waited for the lock.
			if (lock.waited && workerRuns(WORKER_BIN)) {
				log(`ok: ${rel(WORKER_BIN)} (installed by the other run)`);

				return;
			}

			if (tryCache(cacheFile, version)) return;

			const skipDownload = opts.noDownload || Boolean(process.env.MEDIASOUP_SKIP_WORKER_PREBUILT_DOWNLOAD);

			if (skipDownload) {
				log('prebuilt download skipped');
			} else if (await tryPrebuiltDownload(opts.downloadTimeoutS)) {
				// not cached: the cache holds our patched builds only (a download is cheap)
				writeStamp(`prebuilt ${version}`);

				return;
			}
		}

		await buildWorker({ version, cacheFile, buildRoot, keepBuild: opts.keepBuild, output: opts.output });
	} finally {
		release();
	}
}

main().catch((error) => {
	if (error instanceof StepError) {
		console.error(`${TAG} FAILED: ${error.message}`);
	} else {
		console.error(`${TAG} FAILED with an unexpected error:`);
		console.error(error);
	}
	process.exitCode = 1;
});
