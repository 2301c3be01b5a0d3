"""keyboard-interactive through a real PAM conversation (UsePAM yes), as sshd's
auth-pam.c: PAM's prompts go to the client as INFO_REQUESTs and its answers back to PAM.

``pam_kbdint`` runs pam_authenticate and pam_acct_mgmt of the ``sshd`` service in the
calling (worker) thread; the conversation function hands each batch of prompts to
``ask``, which blocks until the client answers (or returns None when the client gave up:
the conversation then fails). PAM's informational and error messages are shown with the
next prompts, as the INFO_REQUEST instruction. The ctypes bindings are python-pam's.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pyssh.sshd")

#: (prompt, echo) pairs and the instruction text -> the answers, or None to give up
Ask = Callable[[list[tuple[str, bool]], str], "list[str] | None"]

_ECHO_OFF, _ECHO_ON, _ERROR_MSG, _TEXT_INFO = 1, 2, 3, 4
_SUCCESS, _CONV_ERR = 0, 19


def pam_kbdint(user: str, ask: Ask, service: str = "sshd") -> bool:
    """Authenticate ``user`` through PAM, asking the client whatever PAM asks."""
    try:
        internals: Any = importlib.import_module("pam.__internals")
    except ImportError:
        log.error("UsePAM yes but the python-pam package is not installed")
        return False
    auth = internals.PamAuthenticator()
    info: list[str] = []

    @internals.conv_func  # type: ignore[untyped-decorator]
    def conversation(count: int, messages: Any, p_response: Any, _data: Any) -> int:
        # an exception must not cross back into C: it would read as PAM_SUCCESS
        try:
            return converse(count, messages, p_response)
        except Exception as exc:
            log.debug("PAM conversation failed: %s", exc)
            return _CONV_ERR

    def converse(count: int, messages: Any, p_response: Any) -> int:
        prompts: list[tuple[str, bool]] = []
        styles: list[int] = []
        for i in range(count):
            msg = messages[i].contents
            text = (msg.msg or b"").decode("utf-8", "replace")
            styles.append(msg.msg_style)
            if msg.msg_style in (_ECHO_OFF, _ECHO_ON):
                prompts.append((text, msg.msg_style == _ECHO_ON))
            elif msg.msg_style in (_ERROR_MSG, _TEXT_INFO):
                info.append(text if text.endswith("\n") else text + "\n")
        answers: list[str] = []
        if prompts:
            got = ask(prompts, "".join(info))
            info.clear()
            if got is None or len(got) != len(prompts):
                return _CONV_ERR
            answers = got
        addr = auth.calloc(count, ctypes.sizeof(internals.PamResponse))
        response = ctypes.cast(addr, ctypes.POINTER(internals.PamResponse))
        p_response[0] = response
        answer = iter(answers)
        for i, style in enumerate(styles):
            if style in (_ECHO_OFF, _ECHO_ON):
                data = next(answer).encode("utf-8", "surrogateescape")
                dst = auth.calloc(len(data) + 1, 1)
                ctypes.memmove(dst, data, len(data))
                response[i].resp = dst
            response[i].resp_retcode = 0
        return _SUCCESS

    conv = internals.PamConv(conversation, None)
    handle = internals.PamHandle()
    code = auth.pam_start(service.encode(), user.encode("utf-8", "surrogateescape"),
                          ctypes.byref(conv), ctypes.byref(handle))
    if code != _SUCCESS:
        log.error("pam_start failed: %d", code)
        return False
    try:
        code = auth.pam_authenticate(handle, 0)
        if code == _SUCCESS:
            code = auth.pam_acct_mgmt(handle, 0)
        if code != _SUCCESS:
            log.debug("PAM: %s for %s", auth.pam_strerror(handle, code).decode(errors="replace"),
                      user)
        return bool(code == _SUCCESS)
    finally:
        auth.pam_end(handle, code)
