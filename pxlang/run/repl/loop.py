"""The read–eval–print loop on prompt_toolkit.

Enter runs the input when it is complete, else inserts a newline (indented by the open
brackets); the loop survives every exception; Ctrl-C at the prompt clears the input and,
during an evaluation, cancels only that evaluation (evaluation runs in the main thread,
where SIGINT raises KeyboardInterrupt once the prompt has handed the terminal back)."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from ...lang.errors import PxError
from .session import Session, format_value

BANNER = "pxlang — PixelMath for astrophotography. help() lists built-ins; Ctrl-D leaves."


def history_path() -> str | None:
    """The history file: $PXLANG_HISTORY_DIR/history, else in the user's data directory."""
    folder = os.environ.get("PXLANG_HISTORY_DIR")
    if not folder:
        try:
            from platformdirs import user_data_dir
        except ImportError:  # pragma: no cover - a dependency
            return None
        folder = user_data_dir("pxlang")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return os.path.join(folder, "history")


def _key_bindings(session: Session) -> Any:
    from prompt_toolkit.buffer import ValidationState
    from prompt_toolkit.enums import DEFAULT_BUFFER
    from prompt_toolkit.filters import has_completions, has_focus
    from prompt_toolkit.key_binding import KeyBindings

    from .cursor import scan

    kb = KeyBindings()
    editing = has_focus(DEFAULT_BUFFER)  # not while searching history (Ctrl-R)

    @kb.add("enter", filter=editing & ~has_completions)
    def _enter(event: Any) -> None:
        buf = event.current_buffer
        text = buf.document.text
        if buf.document.is_cursor_at_the_end and not session.is_complete(text):
            depth = len(scan(text).stack)
            buf.insert_text("\n" + "    " * depth)
        else:
            # the buffer caches a failed validation of unchanged text; the validator itself
            # decides (a second Enter on the same text runs it)
            buf.validation_state = ValidationState.UNKNOWN
            buf.validate_and_handle()

    @kb.add("enter", filter=editing & has_completions)
    def _pick(event: Any) -> None:
        # Enter on an open completion menu takes the highlighted entry (or closes the menu)
        buf = event.current_buffer
        state = buf.complete_state
        if state is not None and state.current_completion is not None:
            buf.apply_completion(state.current_completion)
        else:
            buf.cancel_completion()

    @kb.add("escape", "enter", filter=editing)
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return kb


def _style() -> Any:
    from prompt_toolkit.styles import Style

    return Style.from_dict(
        {
            "bottom-toolbar": "noreverse bg:#303030 #c0c0c0",
            "bottom-toolbar.name": "noreverse bg:#303030 #ffffff",
            "bottom-toolbar.current": "noreverse bg:#303030 #ffd75f bold",
            "bottom-toolbar.doc": "noreverse bg:#303030 #8a8a8a",
        }
    )


def run_repl(
    input: Any = None,  # noqa: A002 - prompt_toolkit's names
    output: Any = None,
    *,
    session: Session | None = None,
    history: str | None = None,
) -> int:
    """The interactive loop. ``input``/``output`` let tests drive it with pipes (then history
    stays in memory unless ``history`` names a file); ``session`` lets them inspect it."""
    if input is None and not sys.stdin.isatty():
        # piped or redirected: prompt_toolkit would warn and draw its screen into the pipe
        return run_lines(sys.stdin, session)
    import signal
    import threading

    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.lexers import PygmentsLexer

    from ...lexer import PxLexer
    from .completer import PxCompleter
    from .toolbar import signature_fragments
    from .validator import PxValidator

    if threading.current_thread() is threading.main_thread():
        # Ctrl-C must cancel an evaluation even when the REPL was started with SIGINT ignored
        # (a background job, nohup): Python leaves an inherited SIG_IGN in place
        signal.signal(signal.SIGINT, signal.default_int_handler)
    session = session or Session()
    path = history or (history_path() if input is None else None)
    store: Any = InMemoryHistory()
    if path:
        try:
            store = FileHistory(path)
        except OSError:
            pass

    def emit(text: str) -> None:
        if output is None:
            print(text, file=sys.stdout, flush=True)
        else:
            output.write(text + "\n")
            output.flush()

    prompt: Any = PromptSession(
        message="px> ",
        multiline=True,
        prompt_continuation=lambda width, line, soft: "... ".rjust(width),
        lexer=PygmentsLexer(PxLexer),
        completer=PxCompleter(session),
        complete_while_typing=False,
        validator=PxValidator(),
        validate_while_typing=False,
        bottom_toolbar=lambda: signature_fragments(
            session, prompt.default_buffer.document.text_before_cursor
        ),
        history=store,
        key_bindings=_key_bindings(session),
        style=_style(),
        search_ignore_case=True,
        input=input,
        output=output,
    )
    emit(BANNER)
    while True:
        try:
            text = prompt.prompt()
        except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the input
            continue
        except EOFError:  # Ctrl-D
            break
        _evaluate(session, text, emit)
    return 0


def _evaluate(session: Session, text: str, emit: Any) -> bool:
    """Run one input and show its value or its error; the loop survives every exception.
    False when it failed."""
    if not text.strip():
        return True
    session.busy = True
    try:
        value = session.run(text)
    except PxError as e:
        emit(e.render())
        return False
    except KeyboardInterrupt:
        session.cancelled()
        emit("cancelled")
        return False
    except RecursionError:
        session.cancelled()
        emit("error: too deeply nested")
        return False
    except Exception as e:  # noqa: BLE001 - the loop survives every exception
        session.cancelled()
        last = traceback.extract_tb(e.__traceback__)[-1:]
        where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
        emit(f"internal error: {type(e).__name__}: {e}{where}")
        return False
    finally:
        session.busy = False
    stripped = text.strip()
    is_text = isinstance(value, str) and stripped.startswith((":", "help"))
    shown = value if is_text else format_value(value)
    if shown:
        emit(shown)
    return True


def run_lines(lines: Any, session: Session | None = None, emit: Any = None) -> int:
    """The REPL without a terminal (``echo 'x = 1' | pxlang repl``, a here-document): each
    input as soon as it is complete (a block or open bracket waits for its end), no prompt,
    no editing. Exit status 1 when an input failed, else 0."""
    session = session or Session()
    emit = emit or (lambda text: print(text, flush=True))
    ok, text = True, ""
    for line in lines:
        text += line
        if text.strip() and session.is_complete(text):
            ok &= _evaluate(session, text, emit)
            text = ""
    if text.strip():  # unfinished at the end: its error (an open bracket…) is shown
        ok &= _evaluate(session, text, emit)
    return 0 if ok else 1
