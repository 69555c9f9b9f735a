// Device check before a video consultation: camera preview, microphone level, the server's
// round trip, and a WebRTC loopback between two local peer connections (proves the browser
// and the network allow peer-to-peer media, using the hospital's STUN/TURN servers).
// Each check sets data-result="running|pass|warn|fail" on its item; tests read those and
// window.vhCheck.

const config = JSON.parse(document.getElementById("check-config").textContent);
const S = config.strings;
const section = document.querySelector("[data-device-check]");
const item = (name) => section.querySelector(`[data-check="${name}"]`);

const results = {};
let stream = null;
let audio = null;
let run = 0;

function report(name, result, text) {
  results[name] = { result, text };
  const element = item(name);
  element.dataset.result = result;
  element.querySelector("[data-check-text]").textContent = text;
}

function summarise() {
  const values = Object.values(results);
  if (values.length < 4 || values.some((value) => value.result === "running")) return;
  const failed = values.some((value) => value.result === "fail");
  section.querySelector("[data-check-summary]").textContent = failed ? S.some_failed : S.all_passed;
  section.dataset.checkState = "done";
}

function stop() {
  for (const track of stream?.getTracks() || []) track.stop();
  stream = null;
  audio?.context.close?.();
  audio = null;
}

async function checkCamera() {
  report("camera", "running", S.running);
  report("microphone", "running", S.running);
  if (!navigator.mediaDevices?.getUserMedia) {
    report("camera", "fail", S.no_support);
    report("microphone", "fail", S.mic_fail);
    return;
  }
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      stream = null;
    }
  }
  const camera = stream?.getVideoTracks()[0];
  if (camera) {
    const preview = section.querySelector("[data-check-video]");
    preview.srcObject = stream;
    preview.play?.().catch(() => {});
    const { width, height } = camera.getSettings();
    const size = width && height ? `${width}×${height}` : "";
    report("camera", height && height < 480 ? "warn" : "pass", (height && height < 480 ? S.camera_low : S.camera_ok).replace("%s", size));
  } else {
    report("camera", "fail", S.camera_fail);
  }
  if (stream?.getAudioTracks().length) listen(stream);
  else report("microphone", "fail", S.mic_fail);
}

function listen(source) {
  const AudioContextClass = window.AudioContext || window.webkitAudioContext;
  if (!AudioContextClass) {
    report("microphone", "pass", S.mic_ok);
    return;
  }
  const context = new AudioContextClass();
  context.resume?.();
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(source).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const meter = section.querySelector("[data-mic-meter]");
  const started = performance.now();
  const mine = run;
  let heard = false;
  audio = { context };
  report("microphone", "running", S.mic_listen);
  const tick = () => {
    if (mine !== run || !audio) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    const level = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    meter.value = level;
    if (!heard && level > 0.02) {
      heard = true;
      report("microphone", "pass", S.mic_ok);
      summarise();
    }
    if (!heard && performance.now() - started > 8000) {
      report("microphone", "fail", S.mic_silent);
      summarise();
    }
    requestAnimationFrame(tick);
  };
  tick();
}

async function checkServer() {
  report("server", "running", S.running);
  const times = [];
  for (let i = 0; i < 5; i++) {
    const begin = performance.now();
    try {
      const response = await fetch(config.ping_url, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      times.push(performance.now() - begin);
    } catch {
      report("server", "fail", S.server_fail);
      return;
    }
  }
  times.sort((a, b) => a - b);
  const median = Math.round(times[2]);
  report("server", median < 800 ? "pass" : "warn", (median < 800 ? S.server_ok : S.server_slow).replace("%s", String(median)));
}

async function checkPeerConnection() {
  report("webrtc", "running", S.running);
  if (!("RTCPeerConnection" in window)) {
    report("webrtc", "fail", S.webrtc_fail);
    return;
  }
  const options = { iceServers: config.ice_servers };
  const a = new RTCPeerConnection(options);
  const b = new RTCPeerConnection(options);
  const kinds = new Set();
  a.addEventListener("icecandidate", ({ candidate }) => {
    if (!candidate) return;
    const kind = candidate.type || /typ (\w+)/.exec(candidate.candidate)?.[1];
    if (kind) kinds.add(kind);
    b.addIceCandidate(candidate).catch(() => {});
  });
  b.addEventListener("icecandidate", ({ candidate }) => {
    if (candidate) a.addIceCandidate(candidate).catch(() => {});
  });
  try {
    const channel = a.createDataChannel("check");
    const echoed = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timeout")), 10000);
      b.addEventListener("datachannel", ({ channel: incoming }) => {
        incoming.addEventListener("message", (message) => incoming.send(message.data));
      });
      channel.addEventListener("open", () => channel.send("ping"));
      channel.addEventListener("message", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
    await echoed;
    const ways = [...new Set([...kinds].map((kind) => S.candidates[kind] || kind))].join(", ");
    report("webrtc", "pass", S.webrtc_ok.replace("%s", ways));
  } catch {
    report("webrtc", "fail", S.webrtc_fail);
  } finally {
    a.close();
    b.close();
  }
}

async function runAll() {
  run += 1;
  stop();
  section.dataset.checkState = "running";
  section.querySelector("[data-check-summary]").textContent = "";
  for (const name of ["camera", "microphone", "server", "webrtc"]) results[name] = { result: "running" };
  await Promise.all([checkCamera(), checkServer(), checkPeerConnection()]);
  summarise();
}

section.querySelector("[data-check-again]").addEventListener("click", () => runAll());
window.addEventListener("pagehide", stop);
window.vhCheck = { results, run: runAll };
runAll();
