/*
 * sip-webrtc-gateway: the only source of the placeholder static libraries in our local meson
 * subprojects (scripts/mediasoup/subprojects/*). mediasoup's worker/meson.build reads a library
 * variable from each subproject for link_whole of its static worker library (a target the
 * mediasoup-worker executable does not use); the real code comes from Debian's shared libraries
 * through dependency(). ensure-mediasoup-worker.mjs copies this file into each staged
 * subproject as stub.c.
 */
typedef int sip_webrtc_gateway_meson_stub;
