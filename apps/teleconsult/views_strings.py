"""The words the consultation pages' scripts show, translated on the server (one catalogue).

`%s` in a string is replaced by the script (a name, a time, a number).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _


def call_strings() -> dict[str, Any]:
    """For static/js/consult.js."""
    return {
        "request_failed": _("That did not work. Please try again."),
        "seats": {"patient": _("patient"), "clinician": _("clinician"), "guest": _("guest")},
        "no_media_support": _(
            "This browser cannot use a camera here. Use a current Chrome, Firefox, Edge or Safari."
        ),
        "no_camera": _("No camera available: the others will hear you without seeing you."),
        "media_denied": _(
            "The browser was not allowed to use your camera and microphone. Allow them in the "
            "address bar, then reload the page."
        ),
        "no_media": _("No camera or microphone found: you can see and hear the others."),
        "no_microphone": _("No microphone available."),
        "muted": _("muted"),
        "camera_off": _("camera off"),
        "sharing": _("sharing their screen"),
        "video_of": _("Video of %s"),
        "ended": _("The clinician has ended the consultation."),
        "removed": _("You are no longer allowed in this consultation."),
        "denied": _(
            "The clinician could not let you in now. Please contact the clinic if you need help."
        ),
        "not_allowed": _("You cannot join this consultation."),
        "other_tab": _("You opened this consultation in another window or device."),
        "you_left": _("You left the consultation. Reload the page to join again."),
        "reconnecting": _("Connection lost. Reconnecting…"),
        "room_open": _("The room is open."),
        "admitted": _("You are in the consultation."),
        "in_call_with": _("You are in the call with %s."),
        "someone_waiting": _("%s is waiting to be let in."),
        "admit": _("Admit"),
        "admit_who": _("Admit %s"),
        "deny": _("Deny"),
        "deny_who": _("Deny %s"),
        "mute": _("Mute"),
        "unmute": _("Unmute"),
        "camera_off_action": _("Camera off"),
        "camera_on_action": _("Camera on"),
        "confirm_end": _("End the consultation for everyone?"),
        "switch_failed": _("The other camera could not be opened."),
        "no_fullscreen": _("Full screen is not available in this browser."),
        "share": _("Share my screen"),
        "stop_sharing": _("Stop sharing"),
        "no_screen_share": _("This browser cannot share its screen (phones usually cannot)."),
        "screen_share_failed": _("The screen could not be shared."),
        "your_screen": _("Your shared screen"),
        "screen_of": _("Screen shared by %s"),
        "snapshot_title": _("Annotated snapshot of the video consultation"),
        "snapshot_saved": _("The snapshot is saved in the record."),
        "snapshot_failed": _("No picture to save yet."),
        "quality": {
            "good": _("Connection: good"),
            "fair": _("Connection: fair"),
            "poor": _("Connection: poor"),
        },
        "fps": _("frames/s"),
        "loss": _("lost"),
        "invite_link": _("Link to send (shown once, expires at %s)"),
        "copy": _("Copy"),
        "copied": _("The link is copied."),
        "revoke": _("Revoke"),
        "revoked": _("The invitation is revoked."),
        "agrees": _("agrees"),
        "not_agreed": _("has not agreed"),
        "give_consent": _("I agree to the recording"),
        "withdraw_consent": _("I withdraw my agreement"),
        "start_recording": _("Start recording"),
        "stop_recording": _("Stop recording"),
        "recording": _("Recording…"),
        "recording_parts": _("Recording… %s parts saved."),
        "recording_saved": _("The recording is saved (%s parts)."),
        "upload_failed": _("Part of the recording could not be saved."),
        "no_recording_support": _("This browser cannot record."),
    }


def check_strings() -> dict[str, Any]:
    """For static/js/consult-check.js."""
    return {
        "running": _("Checking…"),
        "camera_ok": _("Passed: your camera works (%s)."),
        "camera_low": _(
            "Passed, in low resolution (%s): the clinician may see less detail. Close other "
            "programs using the camera."
        ),
        "camera_fail": _(
            "Problem: no camera picture. Allow the camera in the address bar, close other "
            "programs using it, then check again."
        ),
        "no_support": _(
            "Problem: this browser cannot use a camera here. Use a current Chrome, Firefox, Edge "
            "or Safari."
        ),
        "mic_ok": _("Passed: we can hear you."),
        "mic_listen": _("Say a few words…"),
        "mic_silent": _(
            "Problem: we hear nothing. Check that your microphone is not muted, then check again."
        ),
        "mic_fail": _("Problem: no microphone. Allow it in the address bar, then check again."),
        "server_ok": _("Passed: the hospital answers in %s ms."),
        "server_slow": _("Slow: the hospital answers in %s ms. The video may stutter."),
        "server_fail": _("Problem: the hospital's server does not answer. Check your internet."),
        "webrtc_ok": _("Passed: video connections work (%s)."),
        "webrtc_fail": _(
            "Problem: this browser or network blocks video connections. Try another network or "
            "browser."
        ),
        "candidates": {
            "host": _("direct"),
            "srflx": _("through your router"),
            "relay": _("through the hospital's relay"),
            "prflx": _("direct"),
        },
        "all_passed": _("All checks passed: you are ready for your video consultation."),
        "some_failed": _("Some checks failed: see the advice above."),
    }
