/** Microphones and speakers: listing them, opening the chosen microphone. */

export interface DeviceChoice {
  id: string;
  label: string;
}

export interface DeviceList {
  microphones: DeviceChoice[];
  speakers: DeviceChoice[];
}

/** Whether this browser can route an audio element to a chosen output (setSinkId). */
export const canChooseSpeaker = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

export async function listDevices(): Promise<DeviceList> {
  if (!navigator.mediaDevices?.enumerateDevices) return { microphones: [], speakers: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind: MediaDeviceKind, noun: string): DeviceChoice[] =>
    all
      .filter((d) => d.kind === kind && d.deviceId && d.deviceId !== 'default' && d.deviceId !== 'communications')
      .map((d, i) => ({ id: d.deviceId, label: d.label || `${noun} ${i + 1}` }));
  return { microphones: pick('audioinput', 'Microphone'), speakers: pick('audiooutput', 'Speaker') };
}

/** A user-facing error for a failed getUserMedia. */
export class MicrophoneError extends Error {
  override name = 'MicrophoneError';
}

/** Opens the microphone (`deviceId` '' = the default), with the usual voice processing. */
export async function openMicrophone(deviceId: string): Promise<MediaStream> {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new MicrophoneError('This page cannot use a microphone: open it over https:// (or from localhost).');
  }
  const audio: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) audio.deviceId = { exact: deviceId };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio, video: false });
  } catch (err) {
    const name = (err as DOMException).name;
    if (name === 'OverconstrainedError' && deviceId) return openMicrophone('');
    if (name === 'NotAllowedError' || name === 'SecurityError') {
      throw new MicrophoneError('Microphone access was denied: allow the microphone for this site and try again.');
    }
    if (name === 'NotFoundError') throw new MicrophoneError('No microphone was found.');
    if (name === 'NotReadableError') throw new MicrophoneError('The microphone is in use by another application.');
    throw new MicrophoneError(`The microphone could not be opened (${name || String(err)}).`);
  }
}
