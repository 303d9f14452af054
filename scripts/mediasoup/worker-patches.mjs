// The gateway's patch set to mediasoup 3.19.3's worker (issue 12), applied by
// scripts/ensure-mediasoup-worker.mjs to the staged copy of the worker sources it builds (never
// to node_modules). Each edit is an exact text replacement: the build stops with a clear
// message when the text it looks for is not found exactly once (another mediasoup version).
// What each patch does and why: scripts/mediasoup/README.md, "The gateway's worker patches".
//
// The Node side finds out at start-up which of these the running worker has
// (server/media/worker-features.ts): the prebuilt, unpatched worker keeps working.

/**
 * Bump when the patch set, or anything else the build puts into the binary, changes: cached and
 * installed workers of another set are rebuilt. 4: the patches of 3, and libsrtp built with
 * OpenSSL (libsrtp-openssl.mjs) instead of Debian's NSS-backed libsrtp2.
 */
export const PATCH_SET_VERSION = 4;

const T = (n) => '\t'.repeat(n);

/** @type {{ name: string, why: string, file: string, edits: { find: string, replace: string }[] }[]} */
export const WORKER_PATCHES = [
	{
		name: 'catch-all-producer',
		why:
			'A desk phone does not announce its SSRC: a producer with no ssrc, rid or mid (one ' +
			'encoding) takes the first SSRC no other producer of its transport claims, so the ' +
			"phone's first packet is relayed without learning the SSRC first. First SSRC wins, " +
			'once: a later unknown SSRC is reported ("no suitable Producer") as before, and the ' +
			'gateway adopts it with a producer of its own.',
		file: 'src/RTC/Producer.cpp',
		edits: [
			{
				find: `${T(3)}if (\n${T(4)}this->rtpParameters.mid.empty() &&\n${T(4)}encodings->size() == 1 &&\n`,
				replace:
					`${T(3)}// sip-webrtc-gateway: no ssrc, rid or mid is allowed: the transport's catch-all (RtpListener).\n` +
					`${T(3)}if (\n${T(4)}false &&\n${T(4)}this->rtpParameters.mid.empty() &&\n${T(4)}encodings->size() == 1 &&\n`,
			},
		],
	},
	{
		name: 'catch-all-producer',
		why: 'see above (the listener side)',
		file: 'include/RTC/RtpListener.hpp',
		edits: [
			{
				find: `${T(2)}std::unordered_map<std::string, RTC::Producer*> ridTable;\n`,
				replace:
					`${T(2)}std::unordered_map<std::string, RTC::Producer*> ridTable;\n` +
					`${T(2)}// sip-webrtc-gateway: the producer with no ssrc, rid or mid, until it claims its first SSRC.\n` +
					`${T(2)}RTC::Producer* catchAllProducer{ nullptr };\n`,
			},
		],
	},
	{
		name: 'catch-all-producer',
		why: 'see above (the listener side)',
		file: 'src/RTC/RtpListener.cpp',
		edits: [
			{
				find: `${T(2)}// Add entries into the ssrcTable.\n`,
				replace:
					`${T(2)}// sip-webrtc-gateway: a single encoding with no ssrc, rid or mid is the catch-all.\n` +
					`${T(2)}if (\n` +
					`${T(3)}rtpParameters.encodings.size() == 1u && rtpParameters.encodings[0].ssrc == 0u &&\n` +
					`${T(3)}rtpParameters.encodings[0].rtx.ssrc == 0u && rtpParameters.encodings[0].rid.empty() &&\n` +
					`${T(3)}rtpParameters.mid.empty())\n` +
					`${T(2)}{\n` +
					`${T(3)}if (this->catchAllProducer)\n` +
					`${T(3)}{\n` +
					`${T(4)}MS_THROW_ERROR("a Producer without ssrc, rid and mid already exists in RTP listener");\n` +
					`${T(3)}}\n` +
					`${T(3)}this->catchAllProducer = producer;\n\n` +
					`${T(3)}return;\n` +
					`${T(2)}}\n\n` +
					`${T(2)}// Add entries into the ssrcTable.\n`,
			},
			{
				find: `${T(2)}// Remove from the listener tables all entries pointing to the Producer.\n`,
				replace:
					`${T(2)}// Remove from the listener tables all entries pointing to the Producer.\n\n` +
					`${T(2)}// sip-webrtc-gateway: and the catch-all.\n` +
					`${T(2)}if (this->catchAllProducer == producer)\n` +
					`${T(2)}{\n` +
					`${T(3)}this->catchAllProducer = nullptr;\n` +
					`${T(2)}}\n`,
			},
			{
				find: `${T(2)}return nullptr;\n${T(1)}}\n\n${T(1)}RTC::Producer* RtpListener::GetProducer(uint32_t ssrc) const\n`,
				replace:
					`${T(2)}// sip-webrtc-gateway: the catch-all takes the first SSRC nobody claims (once).\n` +
					`${T(2)}if (this->catchAllProducer)\n` +
					`${T(2)}{\n` +
					`${T(3)}auto* producer = this->catchAllProducer;\n\n` +
					`${T(3)}this->catchAllProducer              = nullptr;\n` +
					`${T(3)}this->ssrcTable[packet->GetSsrc()] = producer;\n\n` +
					`${T(3)}return producer;\n` +
					`${T(2)}}\n\n` +
					`${T(2)}return nullptr;\n${T(1)}}\n\n${T(1)}RTC::Producer* RtpListener::GetProducer(uint32_t ssrc) const\n`,
			},
		],
	},
	{
		name: 'early-rtp-replay',
		why:
			'A PlainTransport (not comedia) drops RTP that comes before connect(): a phone sends ' +
			"as it answers, before its SDP reaches us. Keep the newest 16 packets (each up to the " +
			'MTU, with their source, and room for the extensions the producer writes in place) and, ' +
			'at connect(), replay those younger than 500 ms that came ' +
			'from the tuple connected to, through the normal receive path. Packets from anyone ' +
			'else are never replayed; a sprayer can only fill the small buffer.',
		file: 'include/RTC/PlainTransport.hpp',
		edits: [
			{
				find: `#include <absl/container/flat_hash_map.h>\n`,
				replace:
					`#include <absl/container/flat_hash_map.h>\n` +
					`// sip-webrtc-gateway: early RTP replay.\n` +
					`#include "DepLibUV.hpp"\n#include "RTC/Consts.hpp"\n#include <deque>\n#include <vector>\n`,
			},
			{
				find: `${T(2)}bool connectCalled{ false }; // Whether connect() was succesfully called.\n`,
				replace:
					`${T(2)}bool connectCalled{ false }; // Whether connect() was succesfully called.\n` +
					`${T(2)}// sip-webrtc-gateway: RTP received before connect(), replayed by it.\n` +
					`${T(2)}struct EarlyRtpPacket\n` +
					`${T(2)}{\n` +
					`${T(3)}uint64_t receivedAtMs{ 0u };\n` +
					`${T(3)}struct sockaddr_storage remoteAddr\n${T(3)}{\n${T(3)}};\n` +
					`${T(3)}// room after the packet: the producer writes its header extensions in place\n` +
					`${T(3)}std::vector<uint8_t> data;\n` +
					`${T(3)}size_t len{ 0u };\n` +
					`${T(2)}};\n` +
					`${T(2)}std::deque<EarlyRtpPacket> earlyRtpPackets;\n`,
			},
		],
	},
	{
		name: 'early-rtp-replay',
		why: 'see above',
		file: 'src/RTC/PlainTransport.cpp',
		edits: [
			{
				find: `${T(4)}MS_DEBUG_TAG(rtp, "ignoring RTP packet while not connected");\n`,
				replace:
					`${T(4)}MS_DEBUG_TAG(rtp, "ignoring RTP packet while not connected");\n\n` +
					`${T(4)}// sip-webrtc-gateway: kept (the newest 16) for connect() to replay.\n` +
					`${T(4)}if (!this->connectCalled && len <= RTC::Consts::MtuSize)\n` +
					`${T(4)}{\n` +
					`${T(5)}if (this->earlyRtpPackets.size() >= 16u)\n` +
					`${T(5)}{\n` +
					`${T(6)}this->earlyRtpPackets.pop_front();\n` +
					`${T(5)}}\n\n` +
					`${T(5)}auto& item = this->earlyRtpPackets.emplace_back();\n` +
					`${T(5)}const auto* addr = tuple->GetRemoteAddress();\n\n` +
					`${T(5)}item.receivedAtMs = DepLibUV::GetTimeMs();\n` +
					`${T(5)}std::memcpy(\n` +
					`${T(6)}&item.remoteAddr,\n` +
					`${T(6)}addr,\n` +
					`${T(6)}addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));\n` +
					`${T(5)}item.data.resize(len + 256u);\n` +
					`${T(5)}std::memcpy(item.data.data(), data, len);\n` +
					`${T(5)}item.len = len;\n` +
					`${T(4)}}\n`,
			},
			{
				find:
					`${T(4)}// Assume we are connected (there is no much more we can do to know it)\n` +
					`${T(4)}// and tell the parent class.\n` +
					`${T(4)}RTC::Transport::Connected();\n`,
				replace:
					`${T(4)}// Assume we are connected (there is no much more we can do to know it)\n` +
					`${T(4)}// and tell the parent class.\n` +
					`${T(4)}RTC::Transport::Connected();\n\n` +
					`${T(4)}// sip-webrtc-gateway: replay what the connected tuple sent before connect().\n` +
					`${T(4)}{\n` +
					`${T(5)}auto early = std::move(this->earlyRtpPackets);\n` +
					`${T(5)}const auto nowMs = DepLibUV::GetTimeMs();\n\n` +
					`${T(5)}this->earlyRtpPackets.clear();\n\n` +
					`${T(5)}for (auto& item : early)\n` +
					`${T(5)}{\n` +
					`${T(6)}if (!this->tuple || nowMs - item.receivedAtMs > 500u)\n` +
					`${T(6)}{\n` +
					`${T(7)}continue;\n` +
					`${T(6)}}\n\n` +
					`${T(6)}RTC::TransportTuple source(\n` +
					`${T(7)}this->udpSocket, reinterpret_cast<const struct sockaddr*>(&item.remoteAddr));\n\n` +
					`${T(6)}if (this->tuple->Compare(&source))\n` +
					`${T(6)}{\n` +
					`${T(7)}OnRtpDataReceived(&source, item.data.data(), item.len);\n` +
					`${T(6)}}\n` +
					`${T(5)}}\n` +
					`${T(4)}}\n`,
			},
		],
	},
	{
		name: 'strip-extensions',
		why:
			"mediasoup's producer adds an 8-byte MID extension slot to every packet; a desk phone " +
			'negotiated no header extension. A consumer with no header extensions is sent a copy ' +
			'without the extension block (X bit cleared); the shared packet is not touched.',
		file: 'src/RTC/PlainTransport.cpp',
		edits: [
			{
				find:
					`${T(1)}void PlainTransport::SendRtpPacket(\n` +
					`${T(1)}  RTC::Consumer* /*consumer*/, RTC::RtpPacket* packet, RTC::Transport::onSendCallback* cb)\n`,
				replace:
					`${T(1)}void PlainTransport::SendRtpPacket(\n` +
					`${T(1)}  RTC::Consumer* consumer, RTC::RtpPacket* packet, RTC::Transport::onSendCallback* cb)\n`,
			},
			{
				find:
					`${T(2)}auto len            = packet->GetSize();\n\n` +
					`${T(2)}if (HasSrtp() && !this->srtpSendSession->EncryptRtp(&data, &len))\n`,
				replace:
					`${T(2)}auto len            = packet->GetSize();\n\n` +
					`${T(2)}// sip-webrtc-gateway (strip-extensions): a Consumer that negotiated no header extension\n` +
					`${T(2)}// (a desk phone's RTP/AVP leg) gets the packet without the extension block (MID).\n` +
					`${T(2)}thread_local static uint8_t strippedBuffer[RTC::Consts::MtuSize + 100];\n\n` +
					`${T(2)}if (consumer && packet->HasHeaderExtension() && consumer->GetRtpParameters().headerExtensions.empty())\n` +
					`${T(2)}{\n` +
					`${T(3)}const size_t headerLen = 12u + 4u * (data[0] & 0x0Fu);\n` +
					`${T(3)}const size_t extLen    = 4u + packet->GetHeaderExtensionLength();\n\n` +
					`${T(3)}if (headerLen + extLen <= len && len - extLen <= sizeof(strippedBuffer))\n` +
					`${T(3)}{\n` +
					`${T(4)}std::memcpy(strippedBuffer, data, headerLen);\n` +
					`${T(4)}std::memcpy(strippedBuffer + headerLen, data + headerLen + extLen, len - headerLen - extLen);\n` +
					`${T(4)}strippedBuffer[0] &= 0xEFu; // the X bit\n` +
					`${T(4)}data = strippedBuffer;\n` +
					`${T(4)}len -= extLen;\n` +
					`${T(3)}}\n` +
					`${T(2)}}\n\n` +
					`${T(2)}if (HasSrtp() && !this->srtpSendSession->EncryptRtp(&data, &len))\n`,
			},
		],
	},
	{
		name: 'udp-no-empty-read',
		why:
			"libuv reads a readable UDP socket until recvmmsg() says EAGAIN: for a phone leg's 50 " +
			'packets/s that is one datagram, then one more recvmmsg() that finds nothing, every ' +
			'time (1.7 recvmmsg() per relayed packet, measured). When a recvmmsg() returned fewer ' +
			'datagrams than it had room for, the socket is drained: the next read of that wake-up ' +
			'is skipped (an empty buffer from the alloc callback: libuv then stops, no syscall). ' +
			"epoll is level-triggered in libuv, so what arrives later wakes the loop as before. " +
			'Room for 8 datagrams per recvmmsg() (was 1): a busy socket reads up to 8 per call.',
		file: 'include/handles/UdpSocketHandle.hpp',
		edits: [
			{
				find: `${T(1)}bool closed{ false };\n`,
				replace:
					`${T(1)}bool closed{ false };\n` +
					`${T(1)}// sip-webrtc-gateway (udp-no-empty-read): datagrams the current recvmmsg() gave, and\n` +
					`${T(1)}// whether libuv's next read of this wake-up is skipped (the socket is drained).\n` +
					`${T(1)}size_t readChunks{ 0u };\n` +
					`${T(1)}bool skipNextRead{ false };\n`,
			},
		],
	},
	{
		name: 'udp-no-empty-read',
		why: 'see above',
		file: 'src/handles/UdpSocketHandle.cpp',
		edits: [
			{
				find: `static constexpr size_t ReadBufferSize{ 65536 };\n`,
				replace:
					`// sip-webrtc-gateway (udp-no-empty-read): libuv's recvmmsg() takes one datagram per 64 KiB.\n` +
					`static constexpr size_t ReadChunkSize{ 65536 };\n` +
					`static constexpr size_t ReadBufferSize{ ReadChunkSize * 8 };\n`,
			},
			{
				find:
					`${T(1)}// Tell UV to write into the static buffer.\n` +
					`${T(1)}buf->base = reinterpret_cast<char*>(ReadBuffer);\n`,
				replace:
					`${T(1)}// sip-webrtc-gateway (udp-no-empty-read): the last read drained the socket: no buffer,\n` +
					`${T(1)}// so libuv stops reading (UV_ENOBUFS to OnUvRecv) instead of a recvmmsg() that gets EAGAIN.\n` +
					`${T(1)}if (this->skipNextRead)\n` +
					`${T(1)}{\n` +
					`${T(2)}this->skipNextRead = false;\n` +
					`${T(2)}buf->base          = nullptr;\n` +
					`${T(2)}buf->len           = 0;\n\n` +
					`${T(2)}return;\n` +
					`${T(1)}}\n\n` +
					`${T(1)}this->readChunks = 0u;\n\n` +
					`${T(1)}// Tell UV to write into the static buffer.\n` +
					`${T(1)}buf->base = reinterpret_cast<char*>(ReadBuffer);\n`,
			},
			{
				find:
					`${T(1)}// NOTE: Ignore if there is nothing to read or if it was an empty datagram.\n` +
					`${T(1)}if (nread == 0)\n`,
				replace:
					`${T(1)}// sip-webrtc-gateway (udp-no-empty-read): recvmmsg() is over (libuv frees the buffer);\n` +
					`${T(1)}// with room left over the socket is drained, the next read would only get EAGAIN.\n` +
					`${T(1)}if ((flags & UV_UDP_MMSG_FREE) != 0u)\n` +
					`${T(1)}{\n` +
					`${T(2)}this->skipNextRead = this->readChunks < ReadBufferSize / ReadChunkSize;\n\n` +
					`${T(2)}return;\n` +
					`${T(1)}}\n` +
					`${T(1)}else if ((flags & UV_UDP_MMSG_CHUNK) != 0u)\n` +
					`${T(1)}{\n` +
					`${T(2)}++this->readChunks;\n` +
					`${T(1)}}\n` +
					`${T(1)}else if (nread > 0)\n` +
					`${T(1)}{\n` +
					`${T(2)}// A plain recvmsg() (no recvmmsg()): one datagram per wake-up.\n` +
					`${T(2)}this->skipNextRead = true;\n` +
					`${T(1)}}\n\n` +
					`${T(1)}// NOTE: Ignore if there is nothing to read or if it was an empty datagram.\n` +
					`${T(1)}if (nread == 0)\n`,
			},
		],
	},
	{
		name: 'early-rtp-to-first-consumer',
		why:
			'A producer made before its far leg consumes it (produce, connect, then the far ' +
			"leg's consume; a browser's DTLS after the answer) loses what arrives in between. The " +
			'router keeps the newest 25 packets of a producer while none of its consumers can send ' +
			'(yet) and hands those younger than 1 s to the first consumer that can (created on a ' +
			'connected transport, or when its transport connects). Then it keeps nothing more for ' +
			'that producer.',
		file: 'include/RTC/Transport.hpp',
		edits: [
			{
				find: `${T(3)}virtual void OnTransportConsumerClosed(RTC::Transport* transport, RTC::Consumer* consumer) = 0;\n`,
				replace:
					`${T(3)}virtual void OnTransportConsumerClosed(RTC::Transport* transport, RTC::Consumer* consumer) = 0;\n` +
					`${T(3)}// sip-webrtc-gateway: the Consumer exists and its transport is connected.\n` +
					`${T(3)}virtual void OnTransportConsumerReady(RTC::Transport* /*transport*/, RTC::Consumer* /*consumer*/)\n` +
					`${T(3)}{\n${T(3)}}\n`,
			},
		],
	},
	{
		name: 'early-rtp-to-first-consumer',
		why: 'see above',
		file: 'src/RTC/Transport.cpp',
		edits: [
			{
				find:
					`${T(4)}if (IsConnected())\n${T(4)}{\n${T(5)}consumer->TransportConnected();\n${T(4)}}\n\n` +
					`${T(4)}break;\n${T(3)}}\n\n${T(3)}case Channel::ChannelRequest::Method::TRANSPORT_PRODUCE_DATA:\n`,
				replace:
					`${T(4)}if (IsConnected())\n${T(4)}{\n${T(5)}consumer->TransportConnected();\n\n` +
					`${T(5)}// sip-webrtc-gateway: early RTP of its producer.\n` +
					`${T(5)}this->listener->OnTransportConsumerReady(this, consumer);\n${T(4)}}\n\n` +
					`${T(4)}break;\n${T(3)}}\n\n${T(3)}case Channel::ChannelRequest::Method::TRANSPORT_PRODUCE_DATA:\n`,
			},
			{
				find: `${T(3)}auto* consumer = kv.second;\n\n${T(3)}consumer->TransportConnected();\n${T(2)}}\n`,
				replace:
					`${T(3)}auto* consumer = kv.second;\n\n${T(3)}consumer->TransportConnected();\n\n` +
					`${T(3)}// sip-webrtc-gateway: early RTP of its producer.\n` +
					`${T(3)}this->listener->OnTransportConsumerReady(this, consumer);\n${T(2)}}\n`,
			},
		],
	},
	{
		name: 'early-rtp-to-first-consumer',
		why: 'see above',
		file: 'include/RTC/Router.hpp',
		edits: [
			{
				find: `#include <absl/container/flat_hash_set.h>\n`,
				replace: `#include <absl/container/flat_hash_set.h>\n#include <deque>\n#include <utility>\n`,
			},
			{
				find: `${T(2)}void OnTransportConsumerClosed(RTC::Transport* transport, RTC::Consumer* consumer) override;\n`,
				replace:
					`${T(2)}void OnTransportConsumerClosed(RTC::Transport* transport, RTC::Consumer* consumer) override;\n` +
					`${T(2)}void OnTransportConsumerReady(RTC::Transport* transport, RTC::Consumer* consumer) override;\n`,
			},
			{
				find: `${T(2)}absl::flat_hash_map<RTC::Producer*, absl::flat_hash_set<RTC::RtpObserver*>> mapProducerRtpObservers;\n`,
				replace:
					`${T(2)}absl::flat_hash_map<RTC::Producer*, absl::flat_hash_set<RTC::RtpObserver*>> mapProducerRtpObservers;\n` +
					`${T(2)}// sip-webrtc-gateway: RTP of producers that never had a consumer (when it came, a clone).\n` +
					`${T(2)}struct EarlyRtp\n${T(2)}{\n` +
					`${T(3)}bool consumed{ false };\n` +
					`${T(3)}std::deque<std::pair<uint64_t, RTC::RtpPacket*>> packets;\n` +
					`${T(2)}};\n` +
					`${T(2)}absl::flat_hash_map<RTC::Producer*, EarlyRtp> mapProducerEarlyRtp;\n`,
			},
		],
	},
	{
		name: 'early-rtp-to-first-consumer',
		why: 'see above',
		file: 'src/RTC/Router.cpp',
		edits: [
			{
				find: `#include "DepLibUring.hpp"\n`,
				replace: `#include "DepLibUring.hpp"\n#include "DepLibUV.hpp"\n#include "RTC/Consts.hpp"\n`,
			},
			{
				find: `${T(2)}// Clear other maps.\n${T(2)}this->mapProducerConsumers.clear();\n`,
				replace:
					`${T(2)}// sip-webrtc-gateway: early RTP nobody consumed.\n` +
					`${T(2)}for (auto& kv : this->mapProducerEarlyRtp)\n${T(2)}{\n` +
					`${T(3)}for (auto& item : kv.second.packets)\n${T(3)}{\n${T(4)}delete item.second;\n${T(3)}}\n` +
					`${T(2)}}\n${T(2)}this->mapProducerEarlyRtp.clear();\n\n` +
					`${T(2)}// Clear other maps.\n${T(2)}this->mapProducerConsumers.clear();\n`,
			},
			{
				find:
					`${T(1)}inline void Router::OnTransportProducerClosed(RTC::Transport* /*transport*/, RTC::Producer* producer)\n` +
					`${T(1)}{\n${T(2)}MS_TRACE();\n`,
				replace:
					`${T(1)}inline void Router::OnTransportProducerClosed(RTC::Transport* /*transport*/, RTC::Producer* producer)\n` +
					`${T(1)}{\n${T(2)}MS_TRACE();\n\n` +
					`${T(2)}// sip-webrtc-gateway: its early RTP goes with it.\n` +
					`${T(2)}{\n` +
					`${T(3)}auto it = this->mapProducerEarlyRtp.find(producer);\n\n` +
					`${T(3)}if (it != this->mapProducerEarlyRtp.end())\n${T(3)}{\n` +
					`${T(4)}for (auto& item : it->second.packets)\n${T(4)}{\n${T(5)}delete item.second;\n${T(4)}}\n` +
					`${T(4)}this->mapProducerEarlyRtp.erase(it);\n` +
					`${T(3)}}\n${T(2)}}\n`,
			},
			{
				find: `${T(2)}auto& consumers = this->mapProducerConsumers.at(producer);\n\n${T(2)}if (!consumers.empty())\n`,
				replace:
					`${T(2)}auto& consumers = this->mapProducerConsumers.at(producer);\n\n` +
					`${T(2)}// sip-webrtc-gateway: kept (the newest 25) while no consumer can send (none yet, or\n` +
					`${T(2)}// its transport not connected: a browser's DTLS after the answer).\n` +
					`${T(2)}bool anyActiveConsumer{ false };\n\n` +
					`${T(2)}for (auto* consumer : consumers)\n${T(2)}{\n` +
					`${T(3)}if (consumer->IsActive())\n${T(3)}{\n${T(4)}anyActiveConsumer = true;\n\n${T(4)}break;\n${T(3)}}\n${T(2)}}\n\n` +
					`${T(2)}if (!anyActiveConsumer && packet->GetSize() <= RTC::Consts::MtuSize)\n${T(2)}{\n` +
					`${T(3)}auto& early = this->mapProducerEarlyRtp[producer];\n\n` +
					`${T(3)}if (!early.consumed)\n${T(3)}{\n` +
					`${T(4)}if (early.packets.size() >= 25u)\n${T(4)}{\n` +
					`${T(5)}delete early.packets.front().second;\n` +
					`${T(5)}early.packets.pop_front();\n${T(4)}}\n\n` +
					`${T(4)}early.packets.emplace_back(DepLibUV::GetTimeMs(), packet->Clone());\n` +
					`${T(3)}}\n${T(2)}}\n\n` +
					`${T(2)}if (!consumers.empty())\n`,
			},
			{
				find: `${T(1)}inline void Router::OnTransportConsumerClosed(RTC::Transport* /*transport*/, RTC::Consumer* consumer)\n`,
				replace:
					`${T(1)}// sip-webrtc-gateway: hands a producer's early RTP to its first consumer that can send.\n` +
					`${T(1)}void Router::OnTransportConsumerReady(RTC::Transport* /*transport*/, RTC::Consumer* consumer)\n` +
					`${T(1)}{\n${T(2)}MS_TRACE();\n\n` +
					`${T(2)}auto producerIt = this->mapConsumerProducer.find(consumer);\n\n` +
					`${T(2)}if (producerIt == this->mapConsumerProducer.end() || !consumer->IsActive())\n${T(2)}{\n${T(3)}return;\n${T(2)}}\n\n` +
					`${T(2)}auto earlyIt = this->mapProducerEarlyRtp.find(producerIt->second);\n\n` +
					`${T(2)}if (earlyIt == this->mapProducerEarlyRtp.end())\n${T(2)}{\n` +
					`${T(3)}// Nothing came before it: nothing is kept from now on.\n` +
					`${T(3)}this->mapProducerEarlyRtp[producerIt->second].consumed = true;\n\n` +
					`${T(3)}return;\n${T(2)}}\n\n` +
					`${T(2)}if (earlyIt->second.consumed)\n${T(2)}{\n${T(3)}return;\n${T(2)}}\n\n` +
					`${T(2)}auto packets = std::move(earlyIt->second.packets);\n` +
					`${T(2)}const auto nowMs = DepLibUV::GetTimeMs();\n` +
					`${T(2)}const auto& mid  = consumer->GetRtpParameters().mid;\n\n` +
					`${T(2)}earlyIt->second.packets.clear();\n` +
					`${T(2)}earlyIt->second.consumed = true;\n\n` +
					`${T(2)}for (auto& item : packets)\n${T(2)}{\n` +
					`${T(3)}if (nowMs - item.first <= 1000u)\n${T(3)}{\n` +
					`${T(4)}RTC::SharedRtpPacket sharedPacket;\n\n` +
					`${T(4)}if (!mid.empty())\n${T(4)}{\n${T(5)}item.second->UpdateMid(mid);\n${T(4)}}\n\n` +
					`${T(4)}consumer->SendRtpPacket(item.second, sharedPacket);\n` +
					`${T(3)}}\n\n` +
					`${T(3)}delete item.second;\n` +
					`${T(2)}}\n${T(1)}}\n\n` +
					`${T(1)}inline void Router::OnTransportConsumerClosed(RTC::Transport* /*transport*/, RTC::Consumer* consumer)\n`,
			},
		],
	},
	{
		name: 'unknown-source-warning',
		why:
			'RTP reaching a connected PlainTransport from another address (a phone behind a NAT that ' +
			'rebound it, or a stray) was dropped with a debug line nobody reads: the gateway asked ' +
			'every phone leg for its counters every 5 s to notice a phone that moved. Now it is an ' +
			"'rtp' warning naming the transport's local port, which the gateway hears (worker-pool.ts) " +
			'and answers by checking that one leg; the periodic check no longer has to be frequent.',
		file: 'src/RTC/PlainTransport.cpp',
		edits: [
			{
				find: `${T(3)}MS_DEBUG_TAG(rtp, "ignoring RTP packet from unknown IP:port");\n`,
				replace:
					`${T(3)}// sip-webrtc-gateway (unknown-source-warning): the gateway listens for this one\n` +
					`${T(3)}MS_WARN_TAG(\n` +
					`${T(3)}  rtp,\n` +
					`${T(3)}  "ignoring RTP packet from unknown IP:port [localPort:%" PRIu16 "]",\n` +
					`${T(3)}  this->udpSocket->GetLocalPort());\n`,
			},
		],
	},
];

/**
 * Applies the patch set to a staged worker directory (a copy of node_modules/mediasoup/worker).
 * Throws with the file and the text it looked for when that text is not found exactly once.
 */
export function applyWorkerPatches(stageDir, fs, path) {
	const applied = [];

	for (const patch of WORKER_PATCHES) {
		const file = path.join(stageDir, patch.file);
		let text = fs.readFileSync(file, 'utf8');

		for (const edit of patch.edits) {
			const count = text.split(edit.find).length - 1;

			if (count !== 1) {
				throw new Error(
					`worker patch ${patch.name}: expected exactly one occurrence in worker/${patch.file} of:\n` +
						`${edit.find}\nfound ${count} (this patch set is tied to mediasoup 3.19.3)`
				);
			}
			text = text.replace(edit.find, () => edit.replace);
		}
		fs.writeFileSync(file, text);
		if (!applied.includes(patch.name)) applied.push(patch.name);
	}

	return applied;
}
