// The video consultation page: waiting room, WebRTC mesh between admitted people, controls,
// screen sharing with annotation, chat, consented recording.
//
// Protocols: the signalling socket /ws/consult/<room>/ (apps/teleconsult/consumers.py) and the
// room's JSON endpoints (apps/teleconsult/views_api.py); both are described in
// docs/teleconsult.md. Everything is feature-detected so the page works in current Chromium,
// Firefox and Safari (desktop and phone). Tests read `window.vhConsult` and the
// `data-call-state` attribute of <main> (waiting | admitted | in-call | ended).

const config = JSON.parse(document.getElementById("consult-config").textContent);
const S = config.strings;
const root = document.querySelector("[data-consult]");
const main = document.querySelector("main") || root;
const $ = (selector) => root.querySelector(selector);
const $$ = (selector) => Array.from(root.querySelectorAll(selector));
const isClinician = config.me.seat === "clinician";

// Close codes of the signalling socket (consumers.py).
const CLOSE = {
  unauthenticated: 4401,
  refused: 4403,
  notAllowed: 4404,
  sessionEnded: 4408,
  replaced: 4409,
  roomClosed: 4410,
  rateLimited: 4429,
};

const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const STATS_EVERY_MS = 2000;
const PING_EVERY_MS = 25000;
const MAX_POINTS = 400;

const state = {
  callState: "waiting",
  admitted: false,
  socket: null,
  reconnects: 0,
  iceServers: [],
  localStream: null,
  screenStream: null,
  screenSenders: new Map(), // peer key -> RTCRtpSender of the shared screen
  peers: new Map(), // peer key -> Peer
  waiting: new Map(), // peer key -> {key, name, seat} (clinicians)
  annotations: [],
  screenOwner: null, // "me" or a peer key: whose screen the stage shows
  tool: null,
  colour: "#d81b60",
  consents: { ...config.recording.consents },
  myConsent: Boolean(config.recording.mine), // a clinician records only with their own consent
  recordingId: config.recording.current,
  recorder: null,
  quality: null,
  ended: false,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function setCallState(next) {
  if (state.callState === "ended") return;
  state.callState = next;
  main.dataset.callState = next;
  root.dataset.callState = next;
  const inCall = next === "admitted" || next === "in-call";
  $("[data-waiting-room]").hidden = next !== "waiting";
  $("[data-ended]").hidden = next !== "ended";
  for (const element of $$("[data-call-only]")) element.hidden = !inCall;
  $(".consult-layout").hidden = next === "ended";
  if (inCall) loadChatOnce();
}

function announce(text) {
  $("[data-status]").textContent = text;
}

function endCall(text) {
  if (state.ended) return;
  setCallState("ended");
  state.ended = true;
  $("[data-ended-text]").textContent = text;
  stopRecording();
  for (const peer of state.peers.values()) peer.close();
  state.peers.clear();
  for (const track of state.localStream?.getTracks() || []) track.stop();
  for (const track of state.screenStream?.getTracks() || []) track.stop();
  clearInterval(statsTimer);
  if (state.socket && state.socket.readyState <= WebSocket.OPEN) state.socket.close(1000);
  $("#ended-title")?.focus();
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, url, body, headers = {}) {
  const response = await fetch(url, {
    method,
    body,
    credentials: "same-origin",
    headers: { "X-CSRFToken": config.csrf, Accept: "application/json", ...headers },
  });
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data?.error || S.request_failed);
  return data;
}

function send(message) {
  if (state.socket?.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

function formatTime(iso) {
  const moment = new Date(iso);
  return moment.toLocaleTimeString(document.documentElement.lang || undefined, {
    hour: "2-digit",
    minute: "2-digit",
  });
}

function seatLabel(seat) {
  return S.seats[seat] || seat;
}

// ---------------------------------------------------------------------------------------------
// Local media

function tuneVideoTrack(track) {
  // Keep the resolution (a rash, a wound, a document) rather than the frame rate when the
  // network or the CPU is short: Chromium and Safari honour the hint.
  if (track && "contentHint" in track) track.contentHint = "detail";
}

async function startLocalMedia() {
  const devices = navigator.mediaDevices;
  if (!devices?.getUserMedia) {
    announce(S.no_media_support);
    return new MediaStream();
  }
  try {
    return await devices.getUserMedia({ video: { ...CAMERA, facingMode: "user" }, audio: true });
  } catch (error) {
    try {
      const audioOnly = await devices.getUserMedia({ audio: true });
      announce(S.no_camera);
      return audioOnly;
    } catch {
      announce(error?.name === "NotAllowedError" ? S.media_denied : S.no_media);
      return new MediaStream();
    }
  }
}

function showLocal() {
  const video = $("[data-local-video]");
  video.srcObject = state.localStream;
  video.play?.().catch(() => {});
  updateSelfState();
}

function localTrack(kind) {
  return state.localStream?.getTracks().find((track) => track.kind === kind) || null;
}

function mediaState() {
  const audio = localTrack("audio");
  const video = localTrack("video");
  return {
    audio: Boolean(audio && audio.enabled),
    video: Boolean(video && video.enabled),
    sharing: Boolean(state.screenStream),
  };
}

function updateSelfState() {
  const now = mediaState();
  const words = [];
  if (!now.audio) words.push(S.muted);
  if (!now.video) words.push(S.camera_off);
  $("[data-self-state]").textContent = words.length ? `(${words.join(", ")})` : "";
}

function broadcastState() {
  if (state.admitted) send({ type: "state", data: mediaState() });
}

async function refreshCameraChoice() {
  const button = $('[data-action="switch-camera"]');
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    button.hidden = devices.filter((device) => device.kind === "videoinput").length < 2;
  } catch {
    button.hidden = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Peers: one RTCPeerConnection per admitted person, "perfect negotiation"

class Peer {
  constructor(info) {
    this.key = info.key;
    this.info = info;
    // Both sides must agree who yields on an offer collision: the lower key is impolite.
    this.polite = config.me.key > info.key;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.screenStreamId = null;
    this.cameraStream = null;
    this.tile = null;
    this.pc = new RTCPeerConnection({ iceServers: state.iceServers });
    this.pc.addEventListener("negotiationneeded", () => this.negotiate());
    this.pc.addEventListener("icecandidate", ({ candidate }) => {
      if (candidate) this.signal({ candidate: candidate.toJSON ? candidate.toJSON() : candidate });
    });
    this.pc.addEventListener("track", (event) => this.onTrack(event));
    this.pc.addEventListener("connectionstatechange", () => this.onConnectionState());
    this.pc.addEventListener("signalingstatechange", () => {
      if (this.pc.signalingState === "stable") tuneSenders(this.pc);
    });
    for (const track of state.localStream?.getTracks() || []) {
      this.pc.addTrack(track, state.localStream);
    }
    if (state.screenStream) this.addScreen(state.screenStream);
    this.makeTile();
  }

  signal(data) {
    send({ type: "signal", to: this.key, data });
  }

  async negotiate() {
    try {
      this.makingOffer = true;
      await setLocal(this.pc);
      this.signal({ description: plain(this.pc.localDescription) });
    } catch (error) {
      console.warn("negotiation failed", error);
    } finally {
      this.makingOffer = false;
    }
  }

  async onSignal(data) {
    if ("screen" in data) {
      this.screenStreamId = data.screen;
      if (!data.screen && state.screenOwner === this.key) hideScreen();
      return;
    }
    const pc = this.pc;
    try {
      if (data.description) {
        const description = data.description;
        const collision =
          description.type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return;
        await setRemote(pc, description);
        if (description.type === "offer") {
          await setLocal(pc);
          this.signal({ description: plain(pc.localDescription) });
        }
      } else if (data.candidate) {
        try {
          await pc.addIceCandidate(data.candidate);
        } catch (error) {
          if (!this.ignoreOffer) throw error;
        }
      }
    } catch (error) {
      console.warn("signal from", this.key, error);
    }
  }

  onTrack(event) {
    const stream = event.streams[0] || new MediaStream([event.track]);
    if (this.screenStreamId && stream.id === this.screenStreamId) {
      showScreen(this.key, stream);
      return;
    }
    this.cameraStream = stream;
    const video = this.tile.querySelector("video");
    const audio = this.tile.querySelector("audio");
    if (video.srcObject !== stream) video.srcObject = stream;
    if (audio.srcObject !== stream) audio.srcObject = stream;
    video.play?.().catch(() => {});
    playSound(audio);
  }

  onConnectionState() {
    const connection = this.pc.connectionState;
    this.tile.dataset.connection = connection;
    if (connection === "connected") {
      tuneSenders(this.pc);
      if (state.admitted) setCallState("in-call");
      if (this.info.name) announce(S.in_call_with.replace("%s", this.info.name));
    } else if (connection === "failed") {
      // A new ICE round (a network change on a phone); negotiation follows.
      this.pc.restartIce?.();
    }
    if (state.admitted && !anyConnected()) setCallState("admitted");
  }

  addScreen(stream) {
    this.signal({ screen: stream.id });
    const track = stream.getVideoTracks()[0];
    if (track) state.screenSenders.set(this.key, this.pc.addTrack(track, stream));
  }

  removeScreen() {
    const sender = state.screenSenders.get(this.key);
    if (sender) {
      try {
        this.pc.removeTrack(sender);
      } catch {
        // the connection is closing
      }
    }
    state.screenSenders.delete(this.key);
    this.signal({ screen: null });
  }

  makeTile() {
    const template = document.querySelector("[data-tile-template]");
    const tile = template.content.firstElementChild.cloneNode(true);
    tile.dataset.peer = this.key;
    tile.querySelector("[data-peer-name]").textContent = this.info.name;
    tile.querySelector("video").setAttribute("aria-label", S.video_of.replace("%s", this.info.name));
    $("[data-remote-videos]").append(tile);
    this.tile = tile;
  }

  setMediaState(data) {
    const words = [];
    if (data.audio === false) words.push(S.muted);
    if (data.video === false) words.push(S.camera_off);
    if (data.sharing) words.push(S.sharing);
    this.tile.querySelector("[data-peer-state]").textContent = words.length
      ? `(${words.join(", ")})`
      : "";
    this.tile.classList.toggle("camera-off", data.video === false);
  }

  close() {
    this.pc.close();
    this.tile?.remove();
    state.screenSenders.delete(this.key);
    if (state.screenOwner === this.key) hideScreen();
  }
}

function plain(description) {
  return { type: description.type, sdp: description.sdp };
}

async function setLocal(pc) {
  try {
    await pc.setLocalDescription();
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    // Browsers without the argument-less form.
    const description =
      pc.signalingState === "have-remote-offer" ? await pc.createAnswer() : await pc.createOffer();
    await pc.setLocalDescription(description);
  }
}

async function setRemote(pc, description) {
  try {
    await pc.setRemoteDescription(description);
  } catch (error) {
    if (description.type !== "offer" || pc.signalingState === "stable") throw error;
    // Browsers without implicit rollback: roll back our own offer explicitly.
    await pc.setLocalDescription({ type: "rollback" });
    await pc.setRemoteDescription(description);
  }
}

async function tuneSenders(pc) {
  for (const sender of pc.getSenders()) {
    if (sender.track?.kind !== "video") continue;
    try {
      const parameters = sender.getParameters();
      if (!parameters.encodings || parameters.encodings.length === 0) continue;
      if (parameters.degradationPreference === "maintain-resolution") continue;
      parameters.degradationPreference = "maintain-resolution";
      await sender.setParameters(parameters);
    } catch {
      // Firefox ignores or refuses the preference: the track's contentHint still applies.
    }
  }
}

function anyConnected() {
  for (const peer of state.peers.values()) {
    if (peer.pc.connectionState === "connected") return true;
  }
  return false;
}

function addPeer(info) {
  if (info.key === config.me.key) return null;
  let peer = state.peers.get(info.key);
  if (!peer) {
    peer = new Peer(info);
    state.peers.set(info.key, peer);
    api_.peers.set(info.key, peer.pc);
  } else if (info.name && !peer.info.name) {
    // Created on an early signal: now we know who it is.
    peer.info = info;
    peer.tile.querySelector("[data-peer-name]").textContent = info.name;
    peer.tile.querySelector("video").setAttribute("aria-label", S.video_of.replace("%s", info.name));
  }
  return peer;
}

function removePeer(key) {
  const peer = state.peers.get(key);
  if (peer) {
    peer.close();
    state.peers.delete(key);
    api_.peers.delete(key);
  }
  if (state.admitted && !anyConnected()) setCallState("admitted");
}

// Autoplay with sound may be refused until the person touches the page.
function playSound(audio) {
  audio.play?.().catch(() => {
    $('[data-action="sound"]').hidden = false;
  });
}

// ---------------------------------------------------------------------------------------------
// Signalling socket

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}${config.socket}`);
  state.socket = socket;
  let ping = null;
  socket.addEventListener("open", () => {
    ping = setInterval(() => send({ type: "ping" }), PING_EVERY_MS);
  });
  socket.addEventListener("message", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    handlers[event.type]?.(event);
  });
  socket.addEventListener("close", (closed) => {
    clearInterval(ping);
    if (state.socket !== socket || state.ended) return;
    onClosed(closed.code);
  });
}

function onClosed(code) {
  switch (code) {
    case CLOSE.roomClosed:
      endCall(S.ended);
      return;
    case CLOSE.refused:
      endCall(state.admitted ? S.removed : S.denied);
      return;
    case CLOSE.unauthenticated:
    case CLOSE.notAllowed:
      endCall(S.not_allowed);
      return;
    case CLOSE.replaced:
      endCall(S.other_tab);
      return;
    case CLOSE.sessionEnded:
      window.location.assign(`/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`);
      return;
    default: {
      announce(S.reconnecting);
      const delay = Math.min(30000, 1000 * 2 ** state.reconnects);
      state.reconnects += 1;
      setTimeout(connect, delay);
    }
  }
}

function becomeAdmitted(peers) {
  const first = !state.admitted;
  state.admitted = true;
  setCallState(anyConnected() ? "in-call" : "admitted");
  for (const info of peers) {
    if (info.admitted) addPeer(info);
  }
  if (first) {
    announce(isClinician ? S.room_open : S.admitted);
    broadcastState();
  }
}

const handlers = {
  welcome(event) {
    state.reconnects = 0;
    state.iceServers = event.ice_servers || [];
    announce("");
    // After a reconnection, drop the connections of people who are no longer there.
    const present = new Set(event.peers.map((peer) => peer.key));
    for (const key of Array.from(state.peers.keys())) {
      if (!present.has(key)) removePeer(key);
    }
    if (isClinician) {
      state.waiting.clear();
      for (const peer of event.peers) if (!peer.admitted) state.waiting.set(peer.key, peer);
      renderWaiting();
    }
    if (event.you.admitted) becomeAdmitted(event.peers);
    else setCallState("waiting");
  },
  admitted(event) {
    becomeAdmitted(event.peers);
  },
  denied() {
    endCall(S.denied);
  },
  "peer.joined"(event) {
    const peer = event.peer;
    if (peer.admitted) {
      state.waiting.delete(peer.key);
      if (state.admitted) addPeer(peer);
    } else if (isClinician) {
      state.waiting.set(peer.key, peer);
      announce(S.someone_waiting.replace("%s", peer.name));
    }
    renderWaiting();
  },
  "peer.admitted"(event) {
    state.waiting.delete(event.peer.key);
    renderWaiting();
    if (state.admitted) addPeer(event.peer);
  },
  "peer.left"(event) {
    state.waiting.delete(event.key);
    renderWaiting();
    removePeer(event.key);
  },
  signal(event) {
    if (!state.admitted) return;
    // A signal may come before the announcement of its sender: the server only relays
    // between admitted people, so the sender is one.
    const peer =
      state.peers.get(event.from) || addPeer({ key: event.from, name: "", seat: "", admitted: true });
    peer?.onSignal(event.data || {});
  },
  state(event) {
    const peer = state.peers.get(event.from);
    if (!peer) return;
    peer.setMediaState(event.data || {});
    if (event.data?.sharing === false && state.screenOwner === event.from) hideScreen();
  },
  annotation(event) {
    receiveAnnotation(event.data || {});
  },
  error(event) {
    if (event.code !== "rate_limited") announce(event.message || S.request_failed);
  },
  pong() {},
  "consult.chat"(event) {
    appendChat(event);
  },
  "consult.recording"(event) {
    applyRecordingState(event);
  },
  "consult.closed"() {
    endCall(S.ended);
  },
};

// ---------------------------------------------------------------------------------------------
// Waiting room (clinicians)

function renderWaiting() {
  const list = $("[data-waiting-list]");
  if (!list) return;
  list.replaceChildren();
  for (const person of state.waiting.values()) {
    const item = document.createElement("li");
    item.dataset.waiting = person.key;
    const name = document.createElement("span");
    name.textContent = `${person.name} (${seatLabel(person.seat)})`;
    const admit = document.createElement("button");
    admit.type = "button";
    admit.className = "small";
    admit.dataset.admit = person.key;
    admit.textContent = S.admit;
    admit.setAttribute("aria-label", S.admit_who.replace("%s", person.name));
    const deny = document.createElement("button");
    deny.type = "button";
    deny.className = "secondary outline small";
    deny.dataset.deny = person.key;
    deny.textContent = S.deny;
    deny.setAttribute("aria-label", S.deny_who.replace("%s", person.name));
    item.append(name, " ", admit, " ", deny);
    list.append(item);
  }
  $("[data-waiting-empty]").hidden = state.waiting.size > 0;
}

root.addEventListener("click", (event) => {
  const admit = event.target.closest("[data-admit]");
  if (admit) {
    admit.disabled = true;
    send({ type: "admit", key: admit.dataset.admit });
  }
  const deny = event.target.closest("[data-deny]");
  if (deny) {
    deny.disabled = true;
    send({ type: "deny", key: deny.dataset.deny });
  }
});

// ---------------------------------------------------------------------------------------------
// Controls

function pressed(button, on) {
  button.setAttribute("aria-pressed", on ? "true" : "false");
}

const controls = {
  mute(button) {
    const track = localTrack("audio");
    if (!track) return announce(S.no_microphone);
    track.enabled = !track.enabled;
    pressed(button, !track.enabled);
    button.textContent = track.enabled ? S.mute : S.unmute;
    updateSelfState();
    broadcastState();
  },
  camera(button) {
    const track = localTrack("video");
    if (!track) return announce(S.no_camera);
    track.enabled = !track.enabled;
    pressed(button, !track.enabled);
    button.textContent = track.enabled ? S.camera_off_action : S.camera_on_action;
    updateSelfState();
    broadcastState();
  },
  "switch-camera": () => switchCamera(),
  fullscreen: () => toggleFullscreen(),
  share(button) {
    if (state.screenStream) stopSharing();
    else startSharing(button);
  },
  sound(button) {
    for (const audio of $$("[data-remote-videos] audio")) audio.play?.().catch(() => {});
    button.hidden = true;
  },
  leave() {
    endCall(S.you_left);
  },
};

root.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action]");
  if (button && controls[button.dataset.action]) controls[button.dataset.action](button);
});

$("[data-end-form]")?.addEventListener("submit", (event) => {
  if (!window.confirm(S.confirm_end)) event.preventDefault();
});

async function switchCamera() {
  const old = localTrack("video");
  if (!old) return;
  const facing = old.getSettings?.().facingMode;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter(
    (device) => device.kind === "videoinput",
  );
  let video;
  if (facing) {
    video = { ...CAMERA, facingMode: { exact: facing === "user" ? "environment" : "user" } };
  } else {
    const current = devices.findIndex((device) => device.deviceId === old.getSettings?.().deviceId);
    const next = devices[(current + 1) % devices.length];
    video = { ...CAMERA, deviceId: { exact: next.deviceId } };
  }
  // Phones cannot open both cameras at once: release the current one first.
  const enabled = old.enabled;
  old.stop();
  let fresh;
  try {
    fresh = (await navigator.mediaDevices.getUserMedia({ video })).getVideoTracks()[0];
  } catch {
    fresh = (await navigator.mediaDevices.getUserMedia({ video: CAMERA })).getVideoTracks()[0];
    announce(S.switch_failed);
  }
  tuneVideoTrack(fresh);
  fresh.enabled = enabled;
  for (const peer of state.peers.values()) {
    const sender = peer.pc.getSenders().find((s) => s.track === old);
    await sender?.replaceTrack(fresh);
  }
  state.localStream.removeTrack(old);
  state.localStream.addTrack(fresh);
  const mirror = fresh.getSettings?.().facingMode !== "environment";
  $("[data-local-video]").classList.toggle("mirrored", mirror);
  showLocal();
}

function toggleFullscreen() {
  const stage = $("[data-stage]");
  const button = $('[data-action="fullscreen"]');
  const current = document.fullscreenElement || document.webkitFullscreenElement;
  if (current) {
    (document.exitFullscreen || document.webkitExitFullscreen)?.call(document);
    return;
  }
  const request = stage.requestFullscreen || stage.webkitRequestFullscreen;
  if (request) {
    Promise.resolve(request.call(stage)).catch(() => announce(S.no_fullscreen));
    return;
  }
  // iPhone Safari: only a video element can go full screen.
  const video = $("[data-remote-videos] video") || $("[data-local-video]");
  if (video?.webkitEnterFullscreen) video.webkitEnterFullscreen();
  else announce(S.no_fullscreen);
  pressed(button, false);
}

for (const name of ["fullscreenchange", "webkitfullscreenchange"]) {
  document.addEventListener(name, () => {
    const on = Boolean(document.fullscreenElement || document.webkitFullscreenElement);
    pressed($('[data-action="fullscreen"]'), on);
    redrawAnnotations();
  });
}

// ---------------------------------------------------------------------------------------------
// Screen sharing

async function startSharing(button) {
  if (!navigator.mediaDevices?.getDisplayMedia) {
    announce(S.no_screen_share);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    shareStream(stream);
  } catch (error) {
    if (error?.name !== "NotAllowedError") announce(S.screen_share_failed);
  }
  pressed(button, Boolean(state.screenStream));
}

// Share any video stream as "my screen" (getDisplayMedia's, or a canvas stream).
function shareStream(stream) {
  if (state.screenStream) stopSharing();
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  if ("contentHint" in track) track.contentHint = "detail";
  state.screenStream = stream;
  track.addEventListener("ended", () => stopSharing());
  for (const peer of state.peers.values()) peer.addScreen(stream);
  showScreen("me", stream);
  const button = $('[data-action="share"]');
  pressed(button, true);
  button.textContent = S.stop_sharing;
  broadcastState();
  updateSelfState();
}

function stopSharing() {
  const stream = state.screenStream;
  if (!stream) return;
  state.screenStream = null;
  for (const track of stream.getTracks()) track.stop();
  for (const peer of state.peers.values()) peer.removeScreen();
  if (state.screenOwner === "me") hideScreen();
  const button = $('[data-action="share"]');
  pressed(button, false);
  button.textContent = S.share;
  broadcastState();
}

function showScreen(owner, stream) {
  state.screenOwner = owner;
  state.annotations = [];
  api_.annotations = state.annotations;
  const tile = $("[data-screen-tile]");
  const video = $("[data-screen-video]");
  video.srcObject = stream;
  video.setAttribute(
    "aria-label",
    owner === "me" ? S.your_screen : S.screen_of.replace("%s", state.peers.get(owner)?.info.name || ""),
  );
  $("[data-screen-caption]").textContent =
    owner === "me" ? S.your_screen : S.screen_of.replace("%s", state.peers.get(owner)?.info.name || "");
  video.play?.().catch(() => {});
  tile.hidden = false;
  $("[data-annotate-tools]").hidden = false;
  root.classList.add("sharing");
  // A stream without video (the sharer stopped) ends the share on this side too.
  stream.addEventListener?.("removetrack", () => {
    if (stream.getVideoTracks().length === 0 && state.screenOwner === owner) hideScreen();
  });
  redrawAnnotations();
}

function hideScreen() {
  state.screenOwner = null;
  state.annotations = [];
  api_.annotations = state.annotations;
  const video = $("[data-screen-video]");
  video.srcObject = null;
  $("[data-screen-tile]").hidden = true;
  $("[data-annotate-tools]").hidden = true;
  root.classList.remove("sharing");
  selectTool(null);
  redrawAnnotations();
}

// ---------------------------------------------------------------------------------------------
// Annotation: strokes in coordinates 0..1 of the shared picture, drawn over it on every side

const canvas = $("[data-annotation-canvas]");
const drawing = { stroke: null };

function pictureBox() {
  // Where the picture sits inside the video element (object-fit: contain letterboxes it).
  const video = $("[data-screen-video]");
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  const vw = video.videoWidth || width;
  const vh = video.videoHeight || height;
  const scale = Math.min(width / vw, height / vh) || 1;
  const w = vw * scale;
  const h = vh * scale;
  return { x: (width - w) / 2, y: (height - h) / 2, w, h };
}

function drawStroke(ctx, stroke, box) {
  const points = stroke.points || [];
  if (points.length === 0) return;
  const at = ([x, y]) => [box.x + x * box.w, box.y + y * box.h];
  ctx.save();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = stroke.color || "#d81b60";
  const unit = Math.max(box.w, box.h) / 400;
  if (stroke.tool === "highlight") {
    ctx.globalAlpha = 0.35;
    ctx.lineWidth = 12 * unit;
  } else {
    ctx.lineWidth = 2.5 * unit;
  }
  ctx.beginPath();
  if (stroke.tool === "arrow") {
    const [x1, y1] = at(points[0]);
    const [x2, y2] = at(points[points.length - 1]);
    const angle = Math.atan2(y2 - y1, x2 - x1);
    const head = 10 * unit;
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 - head * Math.cos(angle - Math.PI / 6), y2 - head * Math.sin(angle - Math.PI / 6));
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 - head * Math.cos(angle + Math.PI / 6), y2 - head * Math.sin(angle + Math.PI / 6));
  } else {
    const [x0, y0] = at(points[0]);
    ctx.moveTo(x0, y0);
    for (const point of points.slice(1)) ctx.lineTo(...at(point));
    if (points.length === 1) ctx.lineTo(x0 + 0.1, y0 + 0.1);
  }
  ctx.stroke();
  ctx.restore();
}

function redrawAnnotations() {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const box = pictureBox();
  for (const stroke of state.annotations) drawStroke(ctx, stroke, box);
  if (drawing.stroke) drawStroke(ctx, drawing.stroke, box);
}

function validStroke(data) {
  if (data.tool === "clear") return true;
  if (!["pen", "arrow", "highlight"].includes(data.tool) || !Array.isArray(data.points)) {
    return false;
  }
  return data.points.every(
    (p) => Array.isArray(p) && p.length === 2 && p.every((n) => Number.isFinite(n) && n >= 0 && n <= 1),
  );
}

function receiveAnnotation(data) {
  if (!validStroke(data)) return;
  if (data.tool === "clear") state.annotations.length = 0;
  else
    state.annotations.push({
      tool: data.tool,
      color: /^#[0-9a-f]{6}$/i.test(data.color || "") ? data.color : "#d81b60",
      points: data.points,
    });
  redrawAnnotations();
}

function selectTool(tool) {
  state.tool = tool;
  for (const button of $$("[data-tool]")) pressed(button, button.dataset.tool === tool);
  canvas.classList.toggle("drawing", Boolean(tool));
}

function normalised(event) {
  const rect = canvas.getBoundingClientRect();
  const box = pictureBox();
  const x = (event.clientX - rect.left - box.x) / box.w;
  const y = (event.clientY - rect.top - box.y) / box.h;
  const clamp = (n) => Math.min(1, Math.max(0, Math.round(n * 10000) / 10000));
  return [clamp(x), clamp(y)];
}

canvas.addEventListener("pointerdown", (event) => {
  if (!state.tool) return;
  event.preventDefault();
  canvas.setPointerCapture?.(event.pointerId);
  drawing.stroke = { tool: state.tool, color: state.colour, points: [normalised(event)] };
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing.stroke) return;
  const points = drawing.stroke.points;
  const point = normalised(event);
  if (drawing.stroke.tool === "arrow") points[1] = point;
  else if (points.length < MAX_POINTS) points.push(point);
  redrawAnnotations();
});
function finishStroke() {
  const stroke = drawing.stroke;
  drawing.stroke = null;
  if (!stroke) return;
  state.annotations.push(stroke);
  send({ type: "annotation", data: stroke });
  redrawAnnotations();
}
canvas.addEventListener("pointerup", finishStroke);
canvas.addEventListener("pointercancel", finishStroke);

root.addEventListener("click", (event) => {
  const tool = event.target.closest("[data-tool]");
  if (tool) selectTool(state.tool === tool.dataset.tool ? null : tool.dataset.tool);
  if (event.target.closest("[data-tool-clear]")) {
    state.annotations.length = 0;
    send({ type: "annotation", data: { tool: "clear" } });
    redrawAnnotations();
  }
  if (event.target.closest("[data-snapshot]")) saveSnapshot();
});
$("[data-tool-colour]").addEventListener("input", (event) => {
  state.colour = event.target.value;
});
if ("ResizeObserver" in window) new ResizeObserver(() => redrawAnnotations()).observe(canvas);
$("[data-screen-video]").addEventListener("loadedmetadata", () => redrawAnnotations());
$("[data-screen-video]").addEventListener("resize", () => redrawAnnotations());

async function saveSnapshot() {
  const video = $("[data-screen-video]");
  if (!video.videoWidth) return announce(S.snapshot_failed);
  const picture = document.createElement("canvas");
  picture.width = video.videoWidth;
  picture.height = video.videoHeight;
  const ctx = picture.getContext("2d");
  ctx.drawImage(video, 0, 0, picture.width, picture.height);
  const box = { x: 0, y: 0, w: picture.width, h: picture.height };
  for (const stroke of state.annotations) drawStroke(ctx, stroke, box);
  const blob = await new Promise((resolve) => picture.toBlob(resolve, "image/png"));
  if (!blob) return announce(S.snapshot_failed);
  const form = new FormData();
  form.append("image", blob, "snapshot.png");
  form.append("title", S.snapshot_title);
  try {
    const saved = await api("POST", config.urls.snapshot, form);
    announce(S.snapshot_saved);
    api_.lastSnapshot = saved?.document_url || null;
  } catch (error) {
    announce(error.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Connection quality, from getStats

let statsTimer = null;
const previous = new Map();

async function measure(peer) {
  const report = await peer.pc.getStats();
  let lost = 0;
  let received = 0;
  let fps = null;
  let rtt = null;
  let width = null;
  let height = null;
  let framesDecoded = 0;
  report.forEach((stat) => {
    if (stat.type === "inbound-rtp" && !stat.isRemote) {
      lost += stat.packetsLost || 0;
      received += stat.packetsReceived || 0;
      if (stat.kind === "video" && (stat.framesDecoded || 0) >= framesDecoded) {
        framesDecoded = stat.framesDecoded || 0;
        fps = stat.framesPerSecond ?? fps;
        width = stat.frameWidth ?? width;
        height = stat.frameHeight ?? height;
      }
    }
    const chosen = stat.nominated || stat.selected;
    if (stat.type === "candidate-pair" && chosen && stat.state === "succeeded") {
      if (stat.currentRoundTripTime !== undefined) rtt = stat.currentRoundTripTime * 1000;
    }
  });
  const before = previous.get(peer.key) || { lost: 0, received: 0 };
  previous.set(peer.key, { lost, received });
  const newLost = Math.max(0, lost - before.lost);
  const newReceived = Math.max(0, received - before.received);
  const loss = newLost + newReceived > 0 ? (100 * newLost) / (newLost + newReceived) : 0;
  return { key: peer.key, loss, rtt, fps, width, height, framesDecoded };
}

function grade(sample) {
  if (sample.loss > 8 || (sample.rtt ?? 0) > 600 || (sample.fps !== null && sample.fps < 8)) {
    return "poor";
  }
  if (sample.loss > 2 || (sample.rtt ?? 0) > 250 || (sample.fps !== null && sample.fps < 18)) {
    return "fair";
  }
  return "good";
}

async function updateQuality() {
  const connected = Array.from(state.peers.values()).filter(
    (peer) => peer.pc.connectionState === "connected",
  );
  const box = $("[data-quality]");
  if (connected.length === 0) {
    box.hidden = true;
    return;
  }
  const samples = await Promise.all(connected.map((peer) => measure(peer).catch(() => null)));
  const valid = samples.filter(Boolean);
  if (valid.length === 0) return;
  const order = { good: 0, fair: 1, poor: 2 };
  const worst = valid.reduce((a, b) => (order[grade(b)] > order[grade(a)] ? b : a));
  const level = grade(worst);
  state.quality = { level, ...worst };
  api_.quality = state.quality;
  const details = [];
  if (worst.fps !== null && worst.fps !== undefined) details.push(`${Math.round(worst.fps)} ${S.fps}`);
  if (worst.rtt !== null) details.push(`${Math.round(worst.rtt)} ms`);
  details.push(`${worst.loss.toFixed(1)} % ${S.loss}`);
  if (worst.width) details.push(`${worst.width}×${worst.height}`);
  box.hidden = false;
  box.dataset.quality = level;
  box.querySelector("[data-quality-text]").textContent =
    `${S.quality[level]} (${details.join(", ")})`;
}

// ---------------------------------------------------------------------------------------------
// Chat

let chatLoaded = false;
const chatIds = new Set();

async function loadChatOnce() {
  if (chatLoaded) return;
  chatLoaded = true;
  try {
    const history = await api("GET", config.urls.chat);
    for (const line of history?.messages || []) appendChat(line);
  } catch {
    chatLoaded = false;
  }
}

function appendChat(line) {
  if (chatIds.has(line.id)) return;
  chatIds.add(line.id);
  const item = document.createElement("li");
  item.dataset.chatId = line.id;
  item.className = `chat-line seat-${line.seat}`;
  const meta = document.createElement("p");
  meta.className = "chat-meta";
  const author = document.createElement("strong");
  author.textContent = line.author;
  const time = document.createElement("time");
  time.dateTime = line.sent_at;
  time.textContent = formatTime(line.sent_at);
  meta.append(author, " ", time);
  item.append(meta);
  if (line.text) {
    const text = document.createElement("p");
    text.className = "chat-text";
    text.textContent = line.text;
    item.append(text);
  }
  if (line.file) {
    const link = document.createElement("a");
    link.href = line.file.url;
    link.textContent = `${line.file.name} (${Math.ceil(line.file.size / 1024)} kB)`;
    link.setAttribute("download", line.file.name);
    item.append(link);
  }
  const log = $("[data-chat-log]");
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

$("[data-chat-form]").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("[data-chat-error]");
  const data = new FormData(form);
  const file = data.get("file");
  if (!String(data.get("text") || "").trim() && !(file && file.size)) return;
  if (file && !file.size) data.delete("file");
  error.textContent = "";
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    appendChat(await api("POST", config.urls.chat, data));
    form.reset();
  } catch (failure) {
    error.textContent = failure.message;
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------------
// Guests (clinicians invite)

$("[data-invite-form]")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("[data-invite-error]");
  error.textContent = "";
  try {
    const invite = await api("POST", config.urls.invites, new URLSearchParams(new FormData(form)));
    form.reset();
    showInvite(invite);
  } catch (failure) {
    error.textContent = failure.message;
  }
});

function showInvite(invite) {
  const item = document.createElement("li");
  item.dataset.invite = invite.id;
  const url = new URL(invite.url, window.location.href).href;
  const label = document.createElement("label");
  const id = `invite-url-${invite.id}`;
  label.htmlFor = id;
  label.textContent = S.invite_link.replace("%s", formatTime(invite.expires_at));
  const input = document.createElement("input");
  input.id = id;
  input.readOnly = true;
  input.value = url;
  input.addEventListener("focus", () => input.select());
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "secondary small";
  copy.textContent = S.copy;
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(url);
      announce(S.copied);
    } catch {
      input.select();
    }
  });
  const revoke = document.createElement("button");
  revoke.type = "button";
  revoke.className = "secondary outline small";
  revoke.textContent = S.revoke;
  revoke.addEventListener("click", async () => {
    try {
      await api("POST", `${config.urls.invites}${invite.id}/revoke/`);
      item.remove();
      announce(S.revoked);
    } catch (failure) {
      announce(failure.message);
    }
  });
  item.append(label, input, copy, " ", revoke);
  $("[data-invites]").append(item);
  input.focus();
}

// ---------------------------------------------------------------------------------------------
// Recording: consent of both sides, MediaRecorder in the clinician's browser, chunked upload

function myConsent() {
  return config.me.seat === "patient" ? state.consents.patient : state.myConsent;
}

function applyRecordingState(event) {
  if (event.consents) state.consents = { ...state.consents, ...event.consents };
  if (!state.consents.clinician && config.me.seat === "clinician") state.myConsent = false;
  state.recordingId = event.recording ?? null;
  for (const seat of ["patient", "clinician"]) {
    const label = $(`[data-consent="${seat}"]`);
    if (label) label.textContent = state.consents[seat] ? S.agrees : S.not_agreed;
  }
  const toggle = $("[data-consent-toggle]");
  if (toggle) {
    pressed(toggle, myConsent());
    toggle.textContent = myConsent() ? S.withdraw_consent : S.give_consent;
  }
  $("[data-recording-flag]").hidden = state.recordingId === null && !state.recorder;
  const roomAllows = event.allowed ?? (state.consents.patient && state.consents.clinician);
  const allowed = Boolean(roomAllows) && (config.me.seat !== "clinician" || state.myConsent);
  api_.recordingAllowed = allowed;
  const record = $("[data-record]");
  if (record) {
    record.disabled = !state.recorder && !allowed;
    if (state.recorder && !allowed) stopRecording();
  }
}

$("[data-consent-toggle]")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  const given = !myConsent();
  try {
    const reply = await api("POST", config.urls.consent, new URLSearchParams({ given: given ? "1" : "0" }));
    if (config.me.seat === "clinician") state.myConsent = given;
    applyRecordingState(reply);
  } catch (failure) {
    announce(failure.message);
  } finally {
    button.disabled = false;
  }
});

$("[data-record]")?.addEventListener("click", () => {
  if (state.recorder) stopRecording();
  else startRecording();
});

function recorderType() {
  if (!("MediaRecorder" in window)) return null;
  const kinds = ["video/webm;codecs=vp8,opus", "video/webm", "video/mp4"];
  return kinds.find((kind) => MediaRecorder.isTypeSupported?.(kind)) || "";
}

function recordingStream() {
  // The patient's picture (else anyone's, else mine) and everybody's voice, mixed.
  const peers = Array.from(state.peers.values());
  const patient = peers.find((peer) => peer.info.seat === "patient") || peers[0];
  const video =
    patient?.cameraStream?.getVideoTracks()[0] || localTrack("video") || null;
  const AudioContextClass = window.AudioContext || window.webkitAudioContext;
  const tracks = video ? [video] : [];
  if (AudioContextClass) {
    const context = new AudioContextClass();
    context.resume?.();
    const mix = context.createMediaStreamDestination();
    const voices = [state.localStream, ...peers.map((peer) => peer.cameraStream)];
    for (const stream of voices) {
      if (stream?.getAudioTracks().length) context.createMediaStreamSource(stream).connect(mix);
    }
    tracks.push(...mix.stream.getAudioTracks());
    state.audioContext = context;
  }
  return new MediaStream(tracks);
}

async function startRecording() {
  const kind = recorderType();
  const record = $("[data-record]");
  const status = $("[data-record-status]");
  if (kind === null) return announce(S.no_recording_support);
  record.disabled = true;
  let created;
  try {
    const type = (kind || "video/webm").split(";")[0];
    created = await api("POST", config.urls.recordings, new URLSearchParams({ content_type: type }));
  } catch (failure) {
    status.textContent = failure.message;
    record.disabled = false;
    return;
  }
  const options = { videoBitsPerSecond: config.recording.bits_per_second };
  if (kind) options.mimeType = kind;
  const recorder = new MediaRecorder(recordingStream(), options);
  const contentType = (recorder.mimeType || kind || "video/webm").split(";")[0];
  const upload = { seq: 0, queue: Promise.resolve(), failed: false, sent: 0 };
  state.recorder = { recorder, created, upload };
  recorder.addEventListener("dataavailable", (event) => {
    if (!event.data || event.data.size === 0) return;
    const seq = upload.seq++;
    upload.queue = upload.queue.then(() => sendChunk(created.chunk_url, seq, event.data, contentType));
  });
  recorder.addEventListener("stop", async () => {
    await upload.queue;
    try {
      const done = await api("POST", created.stop_url);
      status.textContent = S.recording_saved.replace("%s", String(done?.chunks ?? upload.sent));
    } catch (failure) {
      status.textContent = failure.message;
    }
    state.audioContext?.close?.();
    state.recorder = null;
    api_.recording = null;
    applyRecordingState({ consents: state.consents, recording: null });
  });
  recorder.start(config.recording.timeslice);
  api_.recording = { id: created.id, upload };
  pressed(record, true);
  record.textContent = S.stop_recording;
  record.disabled = false;
  status.textContent = S.recording;
  $("[data-recording-flag]").hidden = false;

  async function sendChunk(baseUrl, seq, blob, type) {
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        await api("POST", `${baseUrl}${seq}/`, blob, { "Content-Type": type });
        upload.sent += 1;
        status.textContent = S.recording_parts.replace("%s", String(upload.sent));
        return;
      } catch (failure) {
        // 4xx will not get better by retrying; a network hiccup or a 5xx may.
        if (failure instanceof ApiError && failure.status < 500) {
          upload.failed = true;
          status.textContent = failure.message;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt));
      }
    }
    upload.failed = true;
    status.textContent = S.upload_failed;
  }
}

function stopRecording() {
  const current = state.recorder;
  if (!current || current.recorder.state === "inactive") return;
  current.recorder.stop();
  const record = $("[data-record]");
  if (record) {
    pressed(record, false);
    record.textContent = S.start_recording;
  }
}

// ---------------------------------------------------------------------------------------------
// htmx: the note form's validation errors (400) are swapped in like a success

document.body.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (event.detail.xhr.status === 400 && target?.closest?.("[data-note-panel]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// ---------------------------------------------------------------------------------------------
// For tests and debugging: a live view of the call

const api_ = {
  peers: new Map(),
  get localStream() {
    return state.localStream;
  },
  get screenStream() {
    return state.screenStream;
  },
  get state() {
    return state.callState;
  },
  get admitted() {
    return state.admitted;
  },
  get waiting() {
    return Array.from(state.waiting.values());
  },
  get consents() {
    return { ...state.consents };
  },
  annotations: state.annotations,
  quality: null,
  recording: null,
  recordingAllowed: false,
  lastSnapshot: null,
  shareStream,
  stopSharing,
  selectTool,
  remoteStream(key) {
    return state.peers.get(key)?.cameraStream || null;
  },
  stats: () => Promise.all(Array.from(state.peers.values()).map(measure)),
};
window.vhConsult = api_;

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  main.dataset.callState = "waiting";
  setCallState("waiting");
  applyRecordingState({
    consents: state.consents,
    recording: state.recordingId,
    allowed: state.consents.patient && state.consents.clinician,
  });
  renderWaiting();
  const stream = await startLocalMedia();
  for (const track of stream.getVideoTracks()) tuneVideoTrack(track);
  state.localStream = stream;
  $("[data-local-video]").classList.add("mirrored");
  showLocal();
  refreshCameraChoice();
  navigator.mediaDevices?.addEventListener?.("devicechange", refreshCameraChoice);
  connect();
  statsTimer = setInterval(updateQuality, STATS_EVERY_MS);
  root.dataset.ready = "true";
}

window.addEventListener("pagehide", () => {
  if (state.recorder) stopRecording();
});

start();
