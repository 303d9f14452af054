/*
 * sip-webrtc-gateway: libsrtp3-style API on top of Debian's libsrtp2.
 *
 * mediasoup's worker (3.19.x) is written against libsrtp 3, which it normally builds from a
 * meson subproject downloaded from GitHub. Here the worker is built against Debian's
 * libsrtp2-dev instead (see scripts/ensure-mediasoup-worker.mjs). The worker includes
 * <srtp.h>; this header sits on the include path of our local `libsrtp3` subproject, so it is
 * found instead of any system header of that name. It pulls in libsrtp2's real header and adds
 * the few libsrtp3 forms the worker uses, as inline C++ overloads:
 *
 *   srtp_protect(ctx, in, inLen, out, &outLen, mkiIndex)        (and srtp_protect_rtcp)
 *   srtp_unprotect(ctx, in, inLen, out, &outLen)                (and srtp_unprotect_rtcp)
 *   srtp_stream_remove(ctx, ssrc)
 *   srtp_err_status_buffer_small, srtp_err_status_cryptex_err
 *
 * In libsrtp3, *outLen is the capacity of `out` on input and the produced length on output;
 * `in` and `out` may be the same buffer. libsrtp2 works in place on one buffer with an `int`
 * length and assumes room for the trailer after the packet, so the wrappers copy `in` to `out`
 * when they differ, check that `out` has room for the largest trailer, and refuse a non-zero
 * MKI index (the worker always passes 0; MKI is not used).
 */

#ifndef SIP_WEBRTC_GATEWAY_SRTP3_COMPAT_H
#define SIP_WEBRTC_GATEWAY_SRTP3_COMPAT_H

#include <srtp2/srtp.h>

#ifdef __cplusplus

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

/* Error codes that libsrtp3 added after libsrtp2's last one (pkt_idx_adv = 27). They are never
 * returned by libsrtp2 itself; the wrappers below return buffer_small. */
inline constexpr srtp_err_status_t srtp_err_status_buffer_small = static_cast<srtp_err_status_t>(28);
inline constexpr srtp_err_status_t srtp_err_status_cryptex_err  = static_cast<srtp_err_status_t>(29);

namespace sip_webrtc_gateway_srtp_compat
{
	/* Extra octets that srtp_protect_rtcp() appends besides the tag/MKI: the E flag + SRTCP
	 * index word. */
	constexpr size_t SrtcpIndexLen = 4;

	using InPlaceFn = srtp_err_status_t (*)(srtp_t, void*, int*);

	/* Copies `in` to `out` (unless they are the same buffer), runs the libsrtp2 in-place
	 * function on `out`, and reports the result length in *outLen. `room` is how many octets
	 * beyond inLen the operation may write. */
	inline srtp_err_status_t run(
	  InPlaceFn fn, srtp_t ctx, const uint8_t* in, size_t inLen, uint8_t* out, size_t* outLen, size_t room)
	{
		if (in == nullptr || out == nullptr || outLen == nullptr)
			return srtp_err_status_bad_param;

		if (inLen > static_cast<size_t>(INT_MAX) - room)
			return srtp_err_status_bad_param;

		if (*outLen < inLen + room)
			return srtp_err_status_buffer_small;

		if (out != in)
			std::memmove(out, in, inLen);

		int len = static_cast<int>(inLen);
		const srtp_err_status_t err = fn(ctx, out, &len);

		if (err != srtp_err_status_ok)
			return err;

		if (len < 0)
			return srtp_err_status_fail;

		*outLen = static_cast<size_t>(len);

		return srtp_err_status_ok;
	}
} // namespace sip_webrtc_gateway_srtp_compat

inline srtp_err_status_t srtp_protect(
  srtp_t ctx, const uint8_t* rtp, size_t rtpLen, uint8_t* srtp, size_t* srtpLen, size_t mkiIndex)
{
	if (mkiIndex != 0)
		return srtp_err_status_bad_param;

	return sip_webrtc_gateway_srtp_compat::run(
	  &::srtp_protect, ctx, rtp, rtpLen, srtp, srtpLen, SRTP_MAX_TRAILER_LEN);
}

inline srtp_err_status_t srtp_unprotect(
  srtp_t ctx, const uint8_t* srtp, size_t srtpLen, uint8_t* rtp, size_t* rtpLen)
{
	return sip_webrtc_gateway_srtp_compat::run(&::srtp_unprotect, ctx, srtp, srtpLen, rtp, rtpLen, 0);
}

inline srtp_err_status_t srtp_protect_rtcp(
  srtp_t ctx, const uint8_t* rtcp, size_t rtcpLen, uint8_t* srtcp, size_t* srtcpLen, size_t mkiIndex)
{
	if (mkiIndex != 0)
		return srtp_err_status_bad_param;

	return sip_webrtc_gateway_srtp_compat::run(
	  &::srtp_protect_rtcp,
	  ctx,
	  rtcp,
	  rtcpLen,
	  srtcp,
	  srtcpLen,
	  SRTP_MAX_TRAILER_LEN + sip_webrtc_gateway_srtp_compat::SrtcpIndexLen);
}

inline srtp_err_status_t srtp_unprotect_rtcp(
  srtp_t ctx, const uint8_t* srtcp, size_t srtcpLen, uint8_t* rtcp, size_t* rtcpLen)
{
	return sip_webrtc_gateway_srtp_compat::run(
	  &::srtp_unprotect_rtcp, ctx, srtcp, srtcpLen, rtcp, rtcpLen, 0);
}

/* libsrtp3 renamed srtp_remove_stream(); the SSRC is in network byte order in both. */
inline srtp_err_status_t srtp_stream_remove(srtp_t ctx, uint32_t ssrc)
{
	return srtp_remove_stream(ctx, ssrc);
}

#endif /* __cplusplus */

#endif /* SIP_WEBRTC_GATEWAY_SRTP3_COMPAT_H */
