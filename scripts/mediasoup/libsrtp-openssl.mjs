// libsrtp built with OpenSSL's crypto, for the worker built from source.
//
// Debian 12's libsrtp2 is built with NSS (--enable-nss). Its AES-CM cipher creates a PKCS#11
// context for every packet (srtp_aes_icm_nss_set_iv) and its HMAC goes through NSS's slot
// locks: perf on a worker relaying 50 browser calls put NSS and libsrtp at ~18 % of the
// worker's CPU. mediasoup's own build links libsrtp with OpenSSL (its libsrtp3 wrap); we get
// the same from Debian's own source package: the upstream tarball is fetched with apt (a
// private deb-src list and state directory, so the machine's apt setup is untouched; apt
// checks it against the signed archive index), configured --enable-openssl and built as a
// static library. A pkg-config file then makes the `libsrtp3` subproject's
// dependency('libsrtp2') find it before the system's.
//
// Only Node built-ins; used by ensure-mediasoup-worker.mjs.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The Debian release whose source archive is asked (the machine's own). */
function debianCodename() {
	try {
		const text = fs.readFileSync('/etc/os-release', 'utf8');
		const m = /^VERSION_CODENAME=(\S+)$/m.exec(text);
		if (m) return m[1].replace(/"/g, '');
	} catch {
		// not Debian-like: the caller's error says what failed
	}
	return null;
}

/**
 * Fetches libsrtp2's upstream source with apt into `dir` and returns the unpacked tree.
 * Throws with the reason when apt cannot (no archive access, not Debian).
 */
function fetchSource(dir, run) {
	const codename = debianCodename();
	if (!codename) throw new Error('cannot tell the Debian release (/etc/os-release) to fetch libsrtp2 sources for');
	const mirror = process.env.LIBSRTP_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
	const parts = path.join(dir, 'sources.list.d');
	const lists = path.join(dir, 'lists');
	const cache = path.join(dir, 'cache');
	for (const d of [parts, path.join(lists, 'partial'), path.join(cache, 'archives', 'partial')]) fs.mkdirSync(d, { recursive: true });
	fs.writeFileSync(
		path.join(parts, 'libsrtp-src.sources'),
		[
			'Types: deb-src',
			`URIs: ${mirror}`,
			`Suites: ${codename}`,
			'Components: main',
			'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
			'',
		].join('\n'),
	);
	const opts = [
		'-q',
		'-o', 'Dir::Etc::SourceList=/dev/null',
		'-o', `Dir::Etc::SourceParts=${parts}`,
		'-o', `Dir::State::Lists=${lists}`,
		'-o', `Dir::Cache=${cache}`,
		// as root apt drops to the _apt user, which cannot write into our directory
		...(process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : []),
	];
	run('apt-get', [...opts, 'update'], dir);
	run('apt-get', [...opts, 'source', '--download-only', 'libsrtp2'], dir);
	const tarball = fs.readdirSync(dir).find((f) => /^libsrtp2_[\d.]+\.orig\.tar\.gz$/.test(f));
	if (!tarball) throw new Error(`apt fetched no libsrtp2 upstream tarball into ${dir}`);
	const src = path.join(dir, 'src');
	fs.mkdirSync(src, { recursive: true });
	run('tar', ['-xzf', path.join(dir, tarball), '-C', src, '--strip-components=1'], dir);
	return { src, version: tarball.replace(/^libsrtp2_/, '').replace(/\.orig\.tar\.gz$/, '') };
}

/**
 * Builds libsrtp (OpenSSL crypto, static, position-independent) under `buildRoot` and returns
 * the directory holding its libsrtp2.pc (for PKG_CONFIG_PATH). `log(line)` reports progress;
 * every command's output goes to `logFile`.
 */
export function buildLibsrtpWithOpenssl({ buildRoot, logFile, log }) {
	const dir = path.join(buildRoot, 'libsrtp');
	const prefix = path.join(dir, 'install');
	const run = (command, args, cwd, env) => {
		fs.appendFileSync(logFile, `\n$ ${command} ${args.join(' ')}\n`);
		const r = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
		fs.appendFileSync(logFile, `${r.stdout ?? ''}${r.stderr ?? ''}`);
		if (r.error) throw new Error(`cannot run ${command}: ${r.error.message}`);
		if (r.status !== 0) throw new Error(`${command} ${args[args.length - 1]} failed (exit ${r.status}); see ${logFile}`);
	};
	const started = Date.now();
	fs.rmSync(dir, { recursive: true, force: true });
	fs.mkdirSync(dir, { recursive: true });
	const { src, version } = fetchSource(dir, run);
	log(`libsrtp ${version}: source from Debian's archive, building with OpenSSL crypto...`);
	run('./configure', ['--enable-openssl', '--disable-debug-logging', `--prefix=${prefix}`], src, { CFLAGS: '-O2 -fPIC' });
	run('make', ['-j2', 'libsrtp2.a'], src);
	// by hand rather than `make install`, which would also build and install the shared library
	const inc = path.join(prefix, 'include', 'srtp2');
	const lib = path.join(prefix, 'lib');
	fs.mkdirSync(inc, { recursive: true });
	fs.mkdirSync(lib, { recursive: true });
	// the headers libsrtp's own `make install` puts in include/srtp2
	for (const h of ['include/srtp.h', 'crypto/include/cipher.h', 'crypto/include/auth.h', 'crypto/include/crypto_types.h']) {
		fs.copyFileSync(path.join(src, h), path.join(inc, path.basename(h)));
	}
	fs.copyFileSync(path.join(src, 'libsrtp2.a'), path.join(lib, 'libsrtp2.a'));
	const pc = path.join(prefix, 'pkgconfig');
	fs.mkdirSync(pc, { recursive: true });
	fs.writeFileSync(
		path.join(pc, 'libsrtp2.pc'),
		[
			`prefix=${prefix}`,
			'',
			'Name: libsrtp2',
			'Description: libsrtp with OpenSSL crypto, static (built for mediasoup-worker)',
			`Version: ${version}`,
			'Requires.private: libcrypto',
			'Cflags: -I${prefix}/include',
			'Libs: ${prefix}/lib/libsrtp2.a -lcrypto',
			'',
		].join('\n'),
	);
	log(`libsrtp ${version}: built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
	return pc;
}
